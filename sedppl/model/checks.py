"""Type checks for settings from files and keywords, where a bool must never pass for a number.

TOML and JSON give ``true`` where a number was meant to be, and Python's ``bool`` is an ``int``, so
every check of a setting's type starts here. Only Python's own numbers pass (``np.float64`` is a
``float``): settings are written back to JSON and TOML, which refuse NumPy's integers.
"""

from __future__ import annotations


def is_whole(value, low: int | None = None) -> bool:
    """A Python ``int`` (not a bool), of at least ``low`` when given."""
    return isinstance(value, int) and not isinstance(value, bool) and (low is None or value >= low)


def is_real(value) -> bool:
    """A Python ``int`` or ``float`` (not a bool); the caller checks its range, which also refuses NaN."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)
