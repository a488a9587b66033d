"""The package as a user installs it: a wheel, outside the source tree, with its default NPE model."""

import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import jax
import pytest

from sedppl.model.simulate import simulate_catalog

ROOT = Path(__file__).resolve().parents[2]


def test_packages_listed_in_pyproject_are_every_package():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = [ROOT / "sedppl", *(d for d in (ROOT / "sedppl").rglob("*") if d.is_dir() and d.name != "__pycache__")]
    found = {".".join(d.relative_to(ROOT).parts) for d in folders if any(d.glob("*.py")) or any(d.glob("*.npz"))}
    assert found | {"sedppl.pretrained", "sedppl.pretrained.default"} == listed


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A wheel built offline from the tracked sources, unpacked into a fresh virtual environment whose
    only other packages are this one's dependencies (a path line: the editable install is not seen)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    files = subprocess.run(["git", "ls-files", "pyproject.toml", "README.md", "sedppl", "models/README.md",
                            "models/default"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for f in files:
        (src / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / f, src / f)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "-w", str(tmp / "dist"), str(src)], check=True, capture_output=True)
    (wheel,) = (tmp / "dist").glob("sedppl-*.whl")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", str(site),
                    str(wheel)], check=True, capture_output=True)
    return python, site, wheel


def test_wheel_ships_the_default_model_and_fits_with_it(installed, tmp_path):
    python, site, wheel = installed
    where = subprocess.run([python, "-c", "import sedppl.io.fit as f; print(f.__file__); print(f.DEFAULT_NPE_MODEL)"],
                           cwd=tmp_path, capture_output=True, text=True, check=True).stdout.split()
    assert where[0].startswith(str(site)) and where[1] == str(site / "sedppl" / "pretrained" / "default")
    for name in ("card.json", "weights.eqx", "prior.toml"):
        assert (Path(where[1]) / name).read_bytes() == (ROOT / "models" / "default" / name).read_bytes()

    from sedppl.inference.npe.card import read_card

    table = simulate_catalog(jax.random.key(5), 3, read_card(ROOT / "models" / "default").model())
    table.write(tmp_path / "stars.ecsv")
    run = subprocess.run([python, "-m", "sedppl", "fit", "stars.ecsv", "--method", "npe", "--draws", "300",
                          "--out", "fit", "--quiet"], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    from astropy.table import Table

    summary = Table.read(tmp_path / "fit" / "summary.parquet")
    assert len(summary) == 3 and all(summary["teff_median"] > 2000)
