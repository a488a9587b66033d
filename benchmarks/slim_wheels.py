"""Drop from the wheels in a folder what the GPU benchmark never reads, so that they travel with the tree.

A device machine takes the working tree and the carried wheels together up to 64 MiB; pyphot's wheel
alone is 16 MB, mostly a synphot filter library sedppl does not use (its passbands come from
``new_filters.hd5`` and Vega from ``alpha_lyr_*.fits``), and blackjax's carries a 4 MB animation of
its documentation. Each wheel is rewritten without those members and their RECORD lines.

    python benchmarks/slim_wheels.py .whl
"""

from __future__ import annotations

import re
import sys
import zipfile
from pathlib import Path

UNUSED = {"pyphot": r"^pyphot/libs/(synphot_nonhst\.hd5|ascii_sources/)", "blackjax": r"^docs/"}


def slim(wheel: Path, pattern: str) -> int:
    """Rewrite ``wheel`` in place without the members matching ``pattern``; returns bytes saved."""
    drop = re.compile(pattern)
    before = wheel.stat().st_size
    tmp = wheel.with_suffix(".tmp")
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            if drop.search(info.filename):
                continue
            data = src.read(info)
            if info.filename.endswith(".dist-info/RECORD"):
                data = b"".join(line for line in data.splitlines(True)
                                if not drop.search(line.split(b",")[0].decode()))
            dst.writestr(info, data)
    tmp.replace(wheel)
    return before - wheel.stat().st_size


def main(folder: str) -> None:
    if not Path(folder).is_dir():
        raise SystemExit(f"slim_wheels: no folder {folder!r} (run 'make wheels', which downloads the wheels first)")
    for name, pattern in UNUSED.items():
        for wheel in sorted(Path(folder).glob(f"{name}-*.whl")):
            print(f"{wheel.name}: {slim(wheel, pattern) / 1e6:.1f} MB dropped")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".whl")
