import subprocess
import sys

import numpy as np
import pytest
from astropy.table import Table

from sedppl.io.catalog import read_catalog
from sedppl.io.cli import main
from sedppl.model.passbands import SURVEY_BANDS
from sedppl.model.priors import Prior


def test_bands_lists_the_registry(capsys):
    assert main(["bands"]) == 0
    out = capsys.readouterr().out
    for band in SURVEY_BANDS:
        assert band in out


@pytest.mark.parametrize("option, value, words", [
    ("--chains", "0", "must be >= 2"), ("--chains", "1", "R-hat compares chains"),
    ("--seed", "99999999999999999999", "<= 4294967295"), ("--draws", "100000000", "<= 100000"),
    ("--warmup", "-1", ">= 10"), ("--draws", "0", ">= 10"), ("--khat-max", "nan", "> 0"),
    ("--particles", "3", ">= 16"), ("--chains", "x", "not an integer"),
    ("--library", "phoenix,atlas", "unknown library 'atlas'"), ("--library", "kurucz,kurucz", "twice")])
def test_bad_options_are_refused_by_name_before_any_work(tmp_path, capsys, option, value, words):
    with pytest.raises(SystemExit) as stop:
        main(["fit", str(tmp_path / "absent.csv"), "--out", str(tmp_path / "o"), option, value])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}: " in err and words in err and not (tmp_path / "o").exists()


def test_parsing_every_fit_option_leaves_jax_unstarted():
    """The CLI makes every CPU core a JAX device after parsing, which only works before JAX's first operation:
    no option's parser may start it (a --library check importing io.fit once did)."""
    code = ("from sedppl.io.cli import build_parser, use_cpu_cores\n"
            "build_parser().parse_args(['fit', 'c.csv', '--out', 'o', '--library', 'phoenix,kurucz', '--method', "
            "'smc', '--chains', '4', '--seed', '3', '--forward', 'spectral', '--dust-map', 'none'])\n"
            "assert use_cpu_cores() > 0, 'JAX was started while parsing'\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_npe_is_rounds_are_checked_by_their_flags(tmp_path, capsys):
    """A rescue no longer than the first pass is refused in the flags' words, for npe-is only."""
    args = ["fit", str(tmp_path / "absent.csv"), "--out", str(tmp_path / "o"), "--adapt-rounds", "8"]
    assert main(args + ["--method", "npe-is"]) == 2
    assert "--rescue-rounds (8) must exceed --adapt-rounds (8), or be 0" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    assert main(args + ["--method", "nuts"]) != 0  # refused for the missing catalogue, not for the rounds
    assert "adapt-rounds" not in capsys.readouterr().err


def test_averaging_libraries_needs_an_engine_with_evidence(tmp_path, capsys):
    args = ["fit", str(tmp_path / "absent.csv"), "--out", str(tmp_path / "o"), "--library", "phoenix, kurucz"]
    for method in ("npe", "nuts"):
        assert main(args + ["--method", method]) == 2
        assert f"only --method smc and npe-is compute (not {method})" in capsys.readouterr().err
        assert not (tmp_path / "o").exists()


def test_simulate_writes_a_readable_reproducible_catalog(tmp_path):
    args = ["simulate", "40", "--seed", "5", "--bands", "gaia_g", "gaia_bp", "gaia_rp", "2mass_ks", "wise_w1"]
    assert main(args + ["--out", str(tmp_path / "a.csv")]) == 0
    assert main(args + ["--out", str(tmp_path / "b.parquet")]) == 0
    a, b = read_catalog(tmp_path / "a.csv"), read_catalog(tmp_path / "b.parquet")
    assert len(a) == 40 and a.bands == ("gaia_g", "gaia_bp", "gaia_rp", "2mass_ks", "wise_w1")
    np.testing.assert_allclose(a.mag, b.mag, atol=1e-5)
    assert "true_teff" in a.extra.colnames


def test_simulate_with_survey_noise_and_its_refusals(tmp_path, capsys):
    out = tmp_path / "survey.ecsv"
    assert main(["simulate", "30", "--noise", "survey", "--out", str(out)]) == 0
    assert read_catalog(out).mask.sum(1).min() >= 3
    assert Table.read(out).meta["sedppl_noise_kind"] == "survey"
    assert main(["simulate", "3", "--noise", "survey", "--p-missing", "0.1", "--out", str(out)]) == 2
    assert "--p-missing set the idealised noise model" in capsys.readouterr().err
    assert Table.read(out).meta["sedppl_noise_error_scatter"] == 0.25
    assert main(["simulate", "30", "--noise", "survey", "--error-scatter", "0", "--out", str(out)]) == 0
    assert Table.read(out).meta["sedppl_noise_error_scatter"] == 0.0
    assert main(["simulate", "3", "--error-scatter", "0.1", "--out", str(out)]) == 0  # survey is the default
    assert Table.read(out).meta["sedppl_noise_kind"] == "survey"
    assert Table.read(out).meta["sedppl_noise_error_scatter"] == 0.1
    assert main(["simulate", "3", "--p-missing", "0.1", "--out", str(out)]) == 2
    assert "--p-missing set the idealised noise model (--noise ideal)" in capsys.readouterr().err
    assert main(["simulate", "3", "--noise", "ideal", "--error-scatter", "0.1", "--out", str(out)]) == 2
    assert "--error-scatter belongs to the survey noise model" in capsys.readouterr().err
    assert main(["simulate", "3", "--noise", "ideal", "--dropout", "0", "--error-scatter", "0", "--out", str(out)]) == 2
    assert "--error-scatter and --dropout belong to the survey noise model" in capsys.readouterr().err
    assert main(["simulate", "30", "--noise", "survey", "--dropout", "0.1", "--out", str(out)]) == 0
    assert Table.read(out).meta["sedppl_noise_dropout"] == 0.1


def test_simulate_on_each_forward_path_and_a_prior_beyond_the_tables(tmp_path, capsys):
    args = ["simulate", "20", "--seed", "3", "--bands", "gaia_g", "galex_nuv", "2mass_ks"]
    for path in ("fast", "spectral"):
        assert main(args + ["--forward", path, "--out", str(tmp_path / f"{path}.csv")]) == 0
    fast, spectral = read_catalog(tmp_path / "fast.csv"), read_catalog(tmp_path / "spectral.csv")
    np.testing.assert_array_equal(fast.mask, spectral.mask)
    np.testing.assert_allclose(fast.mag[fast.mask], spectral.mag[fast.mask], atol=0.01)  # same draws, same physics
    capsys.readouterr()
    assert main(["prior"]) == 0
    wide = tmp_path / "wide.toml"
    wide.write_text(capsys.readouterr().out.replace("high = 15.0", "high = 25.0"))
    assert main(["simulate", "2", "--prior", str(wide), "--out", str(tmp_path / "w.csv")]) == 2
    assert "[av]" in (err := capsys.readouterr().err) and "--forward spectral" in err
    assert main(["simulate", "2", "--prior", str(wide), "--forward", "spectral", "--out", str(tmp_path / "w.csv")]) == 0


def test_prior_file_is_taken_and_checked(tmp_path, capsys):
    assert main(["prior"]) == 0
    default = capsys.readouterr().out
    narrow = default.replace("loc = 3.13\nscale = 0.18", "loc = 3.6\nscale = 0.01")
    path = tmp_path / "narrow.toml"
    path.write_text(narrow)
    assert main(["simulate", "30", "--prior", str(path), "--out", str(tmp_path / "n.csv")]) == 0
    rv = read_catalog(tmp_path / "n.csv").extra["true_rv"]
    assert abs(np.mean(rv) - 3.6) < 0.01
    bad = tmp_path / "bad.toml"
    bad.write_text(default.replace('dist = "uniform"\nlow = 0.1', 'dist = "unifrom"\nlow = 0.1'))
    assert main(["simulate", "5", "--prior", str(bad), "--out", str(tmp_path / "x.csv")]) == 2
    assert "[logg]: unknown dist 'unifrom'" in capsys.readouterr().err
    assert main(["prior", str(path)]) == 0 and capsys.readouterr().err == ""
    wide = tmp_path / "wide.toml"  # valid, but beyond the fast forward model's A_V range: said, not refused
    wide.write_text(default.replace("high = 15.0", "high = 30.0"))
    assert main(["prior", str(wide)]) == 0
    assert "note: prior [av]: its support [0.003, 30] leaves the range the fast forward model covers" in \
        capsys.readouterr().err


def test_check_reports_flagged_stars(tmp_path, capsys):
    path = tmp_path / "c.csv"
    path.write_text("id,gaia_g,gaia_g_err,2mass_j,2mass_j_err,wise_w1,wise_w1_err\n"
                    "good,10,0.01,9,0.02,8.5,0.03\nbad,10,0,9,0.02,8.5,0.03\n")
    assert main(["check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "usable: 1, flagged: 1" in out and "star 'bad': gaia_g" in out


def test_module_entry_point_reports_errors_cleanly(tmp_path):
    result = subprocess.run([sys.executable, "-m", "sedppl", "check", str(tmp_path / "none.csv")],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "does not exist" in result.stderr and "Traceback" not in result.stderr


def test_fit_command_writes_summary_and_posterior(tmp_path, capsys):
    """All survey bands and tests/inference/test_nuts.py's SHORT settings: the same compiled NUTS program."""
    import csv

    from astropy.table import Table

    cat = tmp_path / "c.csv"
    assert main(["simulate", "2", "--seed", "1", "--out", str(cat)]) == 0
    with open(cat) as fh:
        header = next(csv.reader(fh))
    row = {name: "nan" for name in header} | {"id": "nan_star", "gaia_rp": "12.0", "gaia_rp_err": "0.01",
                                             "2mass_ks": "11.0", "2mass_ks_err": "0.02"}
    with open(cat, "a") as fh:
        fh.write(",".join(row[name] for name in header) + "\n")
    out = tmp_path / "fit"
    assert main(["fit", str(cat), "--out", str(out), "--chains", "2", "--draws", "300", "--warmup", "300",
                 "--no-retry", "--quiet"]) == 0
    summary = Table.read(out / "summary.parquet")
    assert list(summary["id"]) == ["sim0", "sim1", "nan_star"]
    assert list(summary["chains_restarted"][2:]) == [-1] and set(summary["chains_restarted"][:2]) <= {0, 1}
    assert "only 2 usable band(s)" in summary["flag"][2]
    from sedppl.io.fit import FitResult

    assert FitResult.read(out).posterior["posterior"].sizes["star"] == 2
    assert "fitted 2/3 stars" in capsys.readouterr().out


def test_fit_options_reach_the_sampler_settings(tmp_path, monkeypatch):
    import math

    import sedppl.io.run as run

    seen = {}

    def capture(fitter, out, **kw):
        seen["fitter"] = fitter
        raise SystemExit(0)

    monkeypatch.setattr(run, "fit_to_folder", capture)
    cat = tmp_path / "c.csv"
    assert main(["simulate", "2", "--seed", "1", "--out", str(cat)]) == 0
    with pytest.raises(SystemExit):
        main(["fit", str(cat), "--out", str(tmp_path / "fit"), "--chains", "3", "--draws", "70", "--warmup", "60",
              "--no-retry", "--restart-gap", "inf", "--proposals", "500", "--method", "npe-is", "--adapt-rounds", "2",
              "--rescue-rounds", "5", "--wider-rescue", "3", "--fallback", "nuts", "--quiet"])
    nuts, importance = seen["fitter"].config, seen["fitter"].importance
    assert (nuts.chains, nuts.draws, nuts.warmup, nuts.retry, nuts.restart_gap) == (3, 70, 60, False, math.inf)
    assert (importance.proposals, importance.draws) == (500, 70)
    assert (importance.adapt_rounds, importance.rescue_rounds, seen["fitter"].fallback) == (2, 5, "nuts")
    assert importance.wider_rescue == 3 and importance.rescues() == [(5, 500), (5, 1500)]


def test_fit_npe_uses_the_pretrained_model_and_refuses_a_mismatch(tmp_path, capsys):
    from astropy.table import Table

    cat = tmp_path / "c.parquet"
    assert main(["simulate", "3", "--seed", "2", "--out", str(cat)]) == 0
    out = tmp_path / "npe"
    assert main(["fit", str(cat), "--method", "npe", "--out", str(out), "--draws", "300", "--quiet"]) == 0
    summary = Table.read(out / "summary.parquet")
    assert list(summary["method"]) == ["npe"] * 3 and "n_rejected" in summary.colnames
    prior = tmp_path / "p.toml"
    prior.write_text(Prior.default().to_toml().replace("loc = 3.13", "loc = 3.6"))
    assert main(["fit", str(cat), "--method", "npe", "--out", str(out), "--prior", str(prior)]) == 2
    assert "another prior" in capsys.readouterr().err
    assert main(["fit", str(cat), "--method", "npe", "--out", str(out), "--model", str(tmp_path)]) == 2
    assert "no card.json" in capsys.readouterr().err


def test_a_catalogue_without_usable_stars_still_writes_their_flags(tmp_path, capsys):
    path = tmp_path / "none.csv"
    path.write_text("id,gaia_g,gaia_g_err,2mass_j,2mass_j_err,note\na,10,0.01,9,-1,x\nb,11,0.01,,,y\n")
    assert main(["fit", str(path), "--out", str(tmp_path / "o"), "--method", "npe"]) == 2
    assert "no usable star" in capsys.readouterr().err
    from sedppl.io.fit import FitResult

    summary = FitResult.read(tmp_path / "o").summary
    assert list(summary["id"]) == ["a", "b"] and not summary["trusted"].any()
    assert "2mass_j_err=-1.0" in summary["flag"][0] and list(summary["note"]) == ["x", "y"]
    from sedppl.io.columns import DIAGNOSTICS

    assert {"chi2", "chi2_p", *DIAGNOSTICS} <= set(summary.colnames)  # a fit's columns, every number absent
    assert np.isnan(summary["chi2"]).all() and np.isnan(summary["rhat_max"]).all() and (summary["n_divergent"] == -1).all()
