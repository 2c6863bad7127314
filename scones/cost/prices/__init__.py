"""Price tables for ``scones cost``: one JSON file per region (``us-east-1.json`` ships)."""
