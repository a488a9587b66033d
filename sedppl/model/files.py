"""Reading the TOML files users write (priors, band offsets, training configs, survey mappings)."""

from __future__ import annotations

import tomllib
from pathlib import Path


def read_toml(path: str | Path, what: str, error: type[Exception] = ValueError) -> dict:
    """The tables of ``path``; a missing file or invalid TOML raises ``error`` naming ``what`` it should be
    ("prior file", "offsets file") and the path."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text())
    except (FileNotFoundError, IsADirectoryError):
        raise error(f"{what} {path} does not exist") from None
    except tomllib.TOMLDecodeError as err:
        raise error(f"{what} {path} is not valid TOML: {err}") from None
