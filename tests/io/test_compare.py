"""sedppl compare: three methods on the same stars, per-star measures and a report with figures."""

import jax
import numpy as np
import pytest

from sedppl.io.cli import main
from sedppl.io.catalog import write_table
from sedppl.model.generative import sed_model
from sedppl.model.simulate import simulate_catalog


@pytest.mark.slow  # ~110 s on 2 cores; passed 2026-11-22, run with -m slow
def test_compare_writes_a_report(tmp_path, capsys):
    table = simulate_catalog(jax.random.key(21), 2, sed_model())
    path = write_table(table, tmp_path / "stars.ecsv")
    code = main(["compare", str(path), "--out", str(tmp_path / "cmp"), "--chains", "2", "--draws", "100",
                 "--warmup", "100", "--proposals", "300", "--corners", "1", "--no-retry", "--quiet"])
    assert code == 0
    out = tmp_path / "cmp"
    assert "report:" in capsys.readouterr().out
    report = (out / "report.md").read_text()
    assert "| npe-is | mean abs z |" in report and "noise floor" in report
    assert len(list(out.glob("corner_*.png"))) == 1
    for name in ("comparison.png", "comparison.parquet", "nuts/summary.parquet",
                 "npe/posterior/000000.nc", "npe-is/summary.parquet"):
        assert (out / name).exists(), name
    from astropy.table import Table

    stars = Table.read(out / "comparison.parquet")
    assert len(stars) == 2
    for column in ("npe_z_teff", "npe-is_width_logg", "npe-is_swd", "swd_floor", "npe-is_khat", "nuts_seconds"):
        assert np.all(np.isfinite(stars[column])), column


def _fake_fit(values: dict[str, float], trusted: list[bool], n_draws: int):
    """A FitResult whose star k has every draw of every parameter equal to values[k]."""
    import arviz_base as azb
    from astropy.table import Table

    from sedppl.io.fit import REPORTED, FitResult

    ids = list(values)
    post = {p: np.broadcast_to(np.array(list(values.values()), float), (1, n_draws, len(ids))).copy()
            for p in REPORTED}
    tree = azb.from_dict({"posterior": post}, dims={p: ["star"] for p in REPORTED}, coords={"star": ids})
    return FitResult(Table({"id": ids, "trusted": trusted}), tree)


def test_each_star_is_judged_against_its_trusted_exact_posterior():
    from sedppl.io.compare import _reference

    ids = ["a", "b", "c"]
    fits = {"nuts": _fake_fit({"a": 1.0, "b": 2.0, "c": 3.0}, [True, False, False], 400),
            "smc": _fake_fit({"a": 10.0, "b": 20.0, "c": 30.0}, [True, True, False], 600)}
    rows = {m: np.arange(3) for m in fits}
    draws, which = _reference(fits, ids, rows)
    assert list(which) == ["nuts", "smc", "none"]  # nuts first; smc where nuts fails; none when both fail
    np.testing.assert_array_equal(draws["teff"][:, 0, 0], [1.0, 20.0, 3.0])
    assert draws["teff"].shape == (3, 1, 400)  # one length for every star
