"""benchmarks/slim_wheels.py: the wheels carried to a GPU machine lose only what sedppl never reads."""

import importlib.util
import zipfile
from pathlib import Path

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "slim_wheels.py"
KEPT = ["pyphot/__init__.py", "pyphot/libs/new_filters.hd5", "pyphot/libs/alpha_lyr_stis_011.fits",
        "pyphot/libs/vega.hd5"]  # SkyMapper curves and Vega: read by sedppl.model.passbands
DROPPED = ["pyphot/libs/synphot_nonhst.hd5", "pyphot/libs/ascii_sources/hst_wfpc2_f336w.csv"]


def _load():
    spec = importlib.util.spec_from_file_location("slim_wheels", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_slim_keeps_what_sedppl_reads(tmp_path):
    wheel = tmp_path / "pyphot-2.1.1-py3-none-any.whl"
    record = "pyphot-2.1.1.dist-info/RECORD"
    with zipfile.ZipFile(wheel, "w") as z:
        for name in KEPT + DROPPED:
            z.writestr(name, name * 100)
        z.writestr(record, "".join(f"{n},sha256=x,1\n" for n in KEPT + DROPPED + [record]))
    _load().main(str(tmp_path))
    with zipfile.ZipFile(wheel) as z:
        assert sorted(z.namelist()) == sorted(KEPT + [record])
        assert all(z.read(n) == (n * 100).encode() for n in KEPT)
        listed = [line.split(",")[0] for line in z.read(record).decode().splitlines()]
    assert listed == KEPT + [record]
