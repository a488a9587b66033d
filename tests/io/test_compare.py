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


def _fake_fit(draws: dict[str, np.ndarray], trusted: list[bool]):
    """A FitResult whose star k has the draws draws[k] (draw,) for every parameter, ESS = number of draws."""
    import arviz_base as azb
    from astropy.table import Table

    from sedppl.io.fit import REPORTED, FitResult

    ids = list(draws)
    post = {p: np.stack(list(draws.values()), -1)[None] for p in REPORTED}
    tree = azb.from_dict({"posterior": post}, dims={p: ["star"] for p in REPORTED}, coords={"star": ids})
    n = float(len(next(iter(draws.values()))))
    return FitResult(Table({"id": ids, "trusted": trusted, "ess_bulk_min": [n] * len(ids),
                            "ess_tail_min": [n] * len(ids)}), tree)


def test_each_star_is_judged_against_its_cross_checked_exact_posterior():
    from sedppl.diagnostics.crosscheck import AGREE_Z
    from sedppl.io.compare import exact_references

    rng = np.random.default_rng(0)
    ids = ["both", "smc", "disputed", "none"]
    nuts = {i: 10 + rng.normal(size=2000) for i in ids}  # positive: theta_mas is shown as log10
    smc = {i: 10 + rng.normal(size=3000) + (1.0 if i == "disputed" else 0.0) for i in ids}
    fits = {"nuts": _fake_fit(nuts, [True, False, True, False]), "smc": _fake_fit(smc, [True, True, True, False])}
    rows = {m: np.arange(len(ids)) for m in fits}
    draws, checks = exact_references(fits, ids, rows)
    assert list(checks["reference"]) == ["nuts+smc", "smc", "disputed", "none"]
    assert draws["teff"].shape == (4, 1, 2000)  # one length for every star
    both = draws["teff"][0, 0]
    assert np.isin(both[:1000], nuts["both"]).all() and np.isin(both[1000:], smc["both"]).all()  # pooled
    assert np.isin(draws["teff"][1, 0], smc["smc"]).all()
    for k in (2, 3):  # untrusted: NUTS's draws, marked
        np.testing.assert_array_equal(draws["teff"][k, 0], nuts[ids[k]])
    assert checks["reference_gap_z"][2] > AGREE_Z
    assert np.all(np.array(checks["reference_gap_z"])[[0, 1, 3]] < AGREE_Z)


def test_reference_grade_raises_the_exact_engines_to_the_measured_settings(tmp_path, monkeypatch):
    """--reference-grade runs NUTS and SMC as validation/exact_reference.py measured them, never less
    than asked for."""
    import sedppl.io.compare as compare

    seen = {}

    def capture(catalog, out, **kw):
        seen.update(kw)
        raise SystemExit(0)

    monkeypatch.setattr(compare, "compare_catalog", capture)
    table = simulate_catalog(jax.random.key(21), 2, sed_model())
    path = write_table(table, tmp_path / "stars.ecsv")
    for extra, draws, particles, moves in (([], 1000, 512, 4), (["--reference-grade"], 4000, 1024, 16),
                                           (["--reference-grade", "--draws", "6000"], 6000, 1024, 16)):
        with pytest.raises(SystemExit):
            main(["compare", str(path), "--out", str(tmp_path / "cmp"), "--quiet", *extra])
        assert (seen["config"].draws, seen["smc"].particles, seen["smc"].final_moves) == (draws, particles, moves)


def test_a_catalogue_without_usable_stars_is_refused_naming_their_flags(tmp_path, capsys):
    """Once 'error: Could not find node at posterior', after every method had run on nothing."""
    path = tmp_path / "flagged.csv"
    path.write_text("id,gaia_g,gaia_g_err,2mass_j,2mass_j_err\na,10,0.01,9,-1\nb,11,0.01,,\n")
    assert main(["compare", str(path), "--out", str(tmp_path / "cmp"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "no usable star to compare (2 flagged: star 'a': 2mass_j: magnitude without a positive" in err
    assert not (tmp_path / "cmp").exists()
