"""What can stop ``scones monitor``; the CLI maps each to its documented exit code.

All three are ``CommandError``s: their message alone tells the user what to do.
"""

from __future__ import annotations

from scones.errors import CommandError


class MonitorUsageError(CommandError, ValueError):
    """An option value the monitor cannot use (bad time, classes, model archive, output folder)."""


class CaptureSourceError(CommandError, RuntimeError):
    """The capture source (folder or S3 prefix) cannot be listed or read."""


class NoCapturesError(CommandError, LookupError):
    """The source holds no readable Data Capture records (in the requested window)."""
