"""Fixtures for ``scones cost`` (helpers and data live in ``cost_helpers``)."""

from cost_helpers import round_prices  # noqa: F401  (a fixture)
