"""fit_catalog with npe-is: the summary's extra columns, the fallback (SMC, or NUTS), the proposals in the stored posterior."""

import jax
import numpy as np
import pytest

from sedppl.inference.importance import ISConfig
from sedppl.inference.nuts import NUTSConfig
from sedppl.io.catalog import read_catalog
from sedppl.io.fit import REPORTED, FitResult, fit_catalog
from sedppl.model.generative import sed_model
from sedppl.model.simulate import simulate_catalog

SMALL = ISConfig(proposals=300, draws=200, adapt_rounds=1)


@pytest.fixture(scope="module")
def catalog():
    table = simulate_catalog(jax.random.key(11), 4, sed_model())
    table["gaia_g_err"][3] = -1.0  # rejected by input validation, kept in the summary
    return read_catalog(table)


def test_npe_is_summary_and_posterior(catalog, tmp_path):
    result = fit_catalog(catalog, "npe-is", out=tmp_path, importance=SMALL, fallback=False, progress=False)
    s = result.summary
    assert list(s["method"][:3]) == ["npe-is"] * 3 and s["flag"][3].startswith("input:")
    for name in ("ess", "ess_per_draw", "khat", "khat_npe", "n_rejected", "proposals", "fallback", "chi2"):
        assert name in s.colnames, name
    # each star's proposals: the first pass's, or the wider rescue's for a star the rescue left unreliable
    assert set(s["proposals"][:3]) <= {SMALL.proposals, SMALL.wider_rescue * SMALL.proposals}
    assert np.all((s["proposals"][:3] == SMALL.proposals) | (s["adapt_rounds"][:3] == SMALL.rescue_rounds))
    assert np.all(s["ess"][:3] > 0) and np.allclose(s["ess_per_draw"][:3], s["ess"][:3] / s["proposals"][:3])
    assert not np.any(s["fallback"])
    for i in range(3):  # unreliable stars are flagged, never silently kept
        unreliable = s["khat"][i] > SMALL.khat_max or s["ess"][i] < SMALL.min_ess
        assert unreliable == ("npe-is:" in s["flag"][i]), (s["khat"][i], s["ess"][i], s["flag"][i])
    for p in REPORTED:
        assert np.all(np.isfinite(s[f"{p}_median"][:3]))
    # every input column is carried into the summary: the photometry under its own names, and the rest
    # (here the simulation's truths); the input's id and values come back unchanged
    np.testing.assert_array_equal(s["gaia_g"], catalog.mag[:, 0])
    np.testing.assert_array_equal(s["true_teff"], catalog.extra["true_teff"])
    assert list(s["id"]) == list(catalog.ids)
    tree = FitResult.read(tmp_path).posterior
    assert tree["posterior"]["teff"].shape == (1, 200, 3)
    assert tree["importance"]["log_weight"].shape == (3, 300)
    np.testing.assert_allclose(np.exp(tree["importance"]["log_weight"].values).sum(axis=1), 1.0, rtol=1e-3)


@pytest.mark.slow  # ~55 s on 2 cores (a NUTS compile); passed 2026-11-22, run with -m slow
def test_unreliable_stars_fall_back_to_nuts(catalog):
    strict = ISConfig(proposals=300, draws=200, adapt_rounds=1, min_ess=1e9)  # nothing passes
    nuts = NUTSConfig(chains=1, draws=50, warmup=50, retry=False)
    result = fit_catalog(catalog, "npe-is", importance=strict, config=nuts, fallback="nuts", progress=False)
    s = result.summary
    assert list(s["method"][:3]) == ["nuts"] * 3 and np.all(s["fallback"][:3])
    assert np.all(s["n_divergent"][:3] >= 0) and np.all(np.isfinite(s["khat"][:3]))  # NUTS diagnostics filled
    assert list(result.posterior["posterior"]["method"].values) == ["nuts"] * 3
    assert result.posterior["posterior"]["teff"].shape == (1, 200, 3)  # NUTS draws thinned to the IS length


def test_the_default_fallback_is_smc_in_the_api_and_the_cli():
    """SMC refits unreliable npe-is stars unless told otherwise, and the CLI says the same as the API."""
    import inspect

    from sedppl.io.cli import build_parser

    assert inspect.signature(fit_catalog).parameters["fallback"].default == "smc"
    fit = build_parser().parse_args(["fit", "stars.parquet", "--method", "npe-is", "--out", "x"])
    assert fit.fallback == "smc" and fit.adapt_rounds == ISConfig().adapt_rounds == 0


def test_unknown_fallback_and_init_are_refused_before_any_work(catalog):
    with pytest.raises(ValueError, match="unknown fallback 'mcmc'"):
        fit_catalog(catalog, "npe-is", fallback="mcmc", progress=False)
    with pytest.raises(ValueError, match="unknown nuts_init 'optimiser'"):
        fit_catalog(catalog, "nuts", nuts_init="optimiser", progress=False)


def test_flagged_smc_stars_are_refitted_with_twice_the_particles(monkeypatch):
    """The retry logic of fit_catalog, on a stand-in sampler (no compilation): a star whose runs disagree is
    rerun alone with twice the particles, its diagnostics and draws replaced (a random half of the larger
    run's, so every star keeps the same number of draws); the other star is left as it was."""
    from sedppl.inference.smc import SMCConfig, SMCDraws, SMCSampler

    calls = []

    def stand_in(self, key, err, mask, mag, progress=True, astrometry=None):
        cfg, n = self.config, len(mag)
        calls.append((cfg.particles, n))
        rng = np.random.default_rng(len(calls))
        shape = (n, cfg.runs, cfg.particles * cfg.final_moves)
        centre = {"teff": 5000.0, "logg": 4.5, "mh": 0.0, "av": 0.5, "rv": 3.1, "theta_mas": 0.1}
        params = {p: c + 0.01 * abs(c or 1.0) * rng.normal(size=shape) for p, c in centre.items()}
        if len(calls) == 1:
            params["teff"][0, 1] += 300.0  # star 0's second run sits elsewhere: flagged
        full = np.ones((n, cfg.runs))
        return SMCDraws(params, 0 * full, 10 * full, full, 0.5 * cfg.particles * full, 0.8 * full, 0.6 * full,
                        np.ones(n), cfg)

    def build(self, model, config):  # no tracing: the stand-in needs the settings only
        self.model, self.config = model, config

    import sedppl.io.fit as fit_module

    monkeypatch.setattr(SMCSampler, "__init__", build)
    monkeypatch.setattr(SMCSampler, "sample", stand_in)
    monkeypatch.setattr(fit_module, "_SAMPLERS", type(fit_module._SAMPLERS)())  # stand-ins never reach later tests
    two = read_catalog(simulate_catalog(jax.random.key(12), 2, sed_model()))
    fit = fit_catalog(two, "smc", smc=SMCConfig(particles=256), progress=False)
    s = fit.summary
    assert calls == [(256, 2), (512, 1)], list(s["flag"])
    assert list(s["retried"]) == [True, False] and not any("smc:" in f for f in s["flag"]), list(s["flag"])
    teff = fit.posterior["posterior"]["teff"].values  # chain, draw, star
    assert teff.shape == (1, 2 * 256 * 4, 2) and abs(np.median(teff[0, :, 0]) - 5000.0) < 10.0


def _two_library_stars(prior, seeds=(31, 32)):
    """One star simulated with Kurucz and one with Phoenix, every band at 0.01-0.02 mag, under the prior the
    averaged fit uses (bounded to the range both libraries cover)."""
    from astropy.table import vstack

    from sedppl.inference.averaging import shared_prior
    from sedppl.model.simulate import NoiseModel

    noise = NoiseModel(err_min=0.01, err_max=0.02, p_missing=0.0)
    stars = []
    for name, seed in zip(("kurucz", "phoenix"), seeds):
        star = simulate_catalog(jax.random.key(seed), 1, sed_model(name, prior=shared_prior(prior, ("phoenix", "kurucz"))),
                                noise)
        star["id"] = [name]
        stars.append(star)
    return vstack(stars)


def _assert_each_star_weighs_its_own_library(fit):
    """Star 0 (Kurucz-made) and star 1 (Phoenix-made) each give > 0.9 to their own library; the weights sum to
    one, the averaged evidence is the mean of the two, and the posterior says which libraries it averages."""
    s = fit.summary
    weights = np.stack([s["library_weight_phoenix"], s["library_weight_kurucz"]], axis=1)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-9)
    assert weights[0, 1] > 0.9 and weights[1, 0] > 0.9, weights
    log_z = np.stack([s["log_evidence_phoenix"], s["log_evidence_kurucz"]], axis=1)
    np.testing.assert_allclose(s["log_evidence"], np.log(np.exp(log_z - log_z.max(1, keepdims=True)).mean(1))
                               + log_z.max(1), rtol=1e-9)
    assert fit.posterior.attrs["sedppl_library"] == "phoenix,kurucz"
    group = fit.posterior["library_average"]
    assert list(group["library"].values) == ["phoenix", "kurucz"]
    np.testing.assert_allclose(group["weight"].values, weights)
    assert fit.posterior["posterior"]["teff"].shape[-1] == 2 and np.all(np.isfinite(s["teff_median"]))


@pytest.mark.slow  # ~4 min on 2 cores (SMC compiled and run under two libraries); `make test-all`
def test_library_averaging_weighs_the_library_that_made_each_star():
    """One star simulated with Kurucz and one with Phoenix (all bands, 0.01-0.02 mag errors and a 0.005 mag
    floor, so that the libraries' 0.02-0.5 mag differences show), fitted with SMC under both: each star's
    weight goes to its own library, the weights sum to one, the averaged evidence is the mean of the two, and
    the draws and groups say which libraries they average."""
    from sedppl.inference.smc import SMCConfig
    from sedppl.model.priors import Prior

    prior = Prior.from_dict(Prior.default().to_dict() | {"likelihood": {"sys_floor": 0.005}})
    fit = fit_catalog(_two_library_stars(prior), "smc", prior=prior, library="phoenix,kurucz",
                      smc=SMCConfig(particles=256, stars_per_call=2), progress=False)
    _assert_each_star_weighs_its_own_library(fit)


def test_npe_is_averages_libraries_by_the_importance_evidence():
    """The Phoenix NPE proposes for both libraries (Kurucz is a change of target, as a prior swap is); the mean
    raw weight is each library's evidence under the one prior. Each star's weight goes to its own library
    (a 0.005 mag floor, so that the libraries' 0.02-0.5 mag differences show), the weights sum to one, and the
    averaged evidence is the mean of the two."""
    from sedppl.model.priors import Prior

    prior = Prior.from_dict(Prior.default().to_dict() | {"likelihood": {"sys_floor": 0.005}})
    fit = fit_catalog(_two_library_stars(prior), "npe-is", prior=prior, library="phoenix,kurucz", fallback=None,
                      importance=ISConfig(proposals=1000, draws=400, stars_per_call=2), progress=False)
    _assert_each_star_weighs_its_own_library(fit)
    s = fit.summary
    assert list(s["method"]) == ["npe-is", "npe-is"] and np.all(np.isfinite(s["khat"]))
    assert fit.posterior["posterior"]["teff"].shape == (1, 400, 2)
    with pytest.raises(Exception, match="trained on library 'phoenix', not 'kurucz'"):
        fit_catalog(_two_library_stars(prior), "npe", library="kurucz", progress=False)


def _stand_in_samplers(monkeypatch, khat: dict[str, list[float]]) -> tuple[list, list]:
    """Importance sampling and SMC replaced by stand-ins (no compilation) that log their calls: IS gives each
    library's stars the k̂ of ``khat`` (above 0.7: unreliable) and fixed evidences; SMC fixed draws and
    evidences. Returns the two call logs, (library, stars) per call."""
    import sedppl.io.fit as fit_module
    from sedppl.inference.importance import ImportanceSampler, ISDraws
    from sedppl.inference.smc import SMCDraws, SMCSampler

    is_calls, smc_calls = [], []
    log_z_is = {"phoenix": np.array([-10.0, -20.0]), "kurucz": np.array([-12.0, -19.0])}

    def importance(self, key, err, mask, mag, progress=True, astrometry=None):
        library, n, cfg = self.target.forward.library, len(mag), self.config
        is_calls.append((library, n))
        rng = np.random.default_rng(len(is_calls))
        params = {p: np.full((n, 1, cfg.draws), c) + rng.normal(0, 0.01, (n, 1, cfg.draws))
                  for p, c in zip(REPORTED, (5000.0, 4.5, 0.0, 0.5, 3.1, 0.1))}
        k = np.array(khat[library])
        return ISDraws(params, np.zeros((n, cfg.proposals, 5)), np.zeros((n, cfg.proposals)),
                       np.full((n, cfg.proposals), -np.log(cfg.proposals)), k, np.full(n, 500.0), k,
                       np.full(n, 500.0), np.zeros(n, int), log_z_is[library], np.ones(n), np.ones(n, int),
                       np.full(n, cfg.proposals), cfg)

    def smc(self, key, err, mask, mag, progress=True, astrometry=None):
        library, n, cfg = self.model.forward.library, len(mag), self.config
        smc_calls.append((library, n))
        shape = (n, cfg.runs, cfg.particles * cfg.final_moves)
        params = {p: np.full(shape, c) + np.random.default_rng(5).normal(0, 0.01, shape)
                  for p, c in zip(REPORTED, (6000.0, 4.0, 0.0, 0.5, 3.1, 0.1))}
        full = np.ones((n, cfg.runs))
        log_z = full * {"phoenix": -30.0, "kurucz": -30.0 + np.log(3.0)}[library]
        return SMCDraws(params, log_z, 10 * full, full, 0.5 * cfg.particles * full, 0.8 * full, 0.6 * full,
                        np.ones(n), cfg)

    monkeypatch.setattr(ImportanceSampler, "sample", importance)
    def build(self, model, config):  # no tracing: the stand-in needs the model and the settings only
        self.model, self.config = model, config

    monkeypatch.setattr(SMCSampler, "__init__", build)
    monkeypatch.setattr(SMCSampler, "sample", smc)
    monkeypatch.setattr(fit_module, "_SAMPLERS", type(fit_module._SAMPLERS)())  # stand-ins never reach later tests
    monkeypatch.setattr(fit_module, "valid_prior_mass", lambda model: {"phoenix": 0.5, "kurucz": 0.25}[model.forward.library])
    return is_calls, smc_calls


def test_unreliable_npe_is_stars_are_refitted_with_smc_by_default(monkeypatch):
    """Stand-in samplers: star 1's weights fail, so star 1 alone is refitted by the default fallback, SMC (one
    library: no averaging), its draws thinned to the importance draws' length; star 0 keeps its result."""
    from sedppl.model.priors import Prior

    is_calls, smc_calls = _stand_in_samplers(monkeypatch, {"phoenix": [0.2, 0.9]})
    fit = fit_catalog(_two_library_stars(Prior.default()), "npe-is", importance=ISConfig(proposals=100, draws=50),
                      progress=False)
    s = fit.summary
    assert is_calls == [("phoenix", 2)] and smc_calls == [("phoenix", 1)]
    assert list(s["method"]) == ["npe-is", "smc"] and list(s["fallback"]) == [False, True]
    assert list(fit.posterior["posterior"]["method"].values) == ["npe-is", "smc"]
    teff = fit.posterior["posterior"]["teff"].values
    assert teff.shape == (1, 50, 2)
    assert abs(np.median(teff[..., 0]) - 5000.0) < 1 and abs(np.median(teff[..., 1]) - 6000.0) < 1  # SMC's draws
    assert s["trusted"][1] and "smc:" not in s["flag"][1]  # SMC's own verdict (it passes); the misfit check may flag


def test_averaged_npe_is_falls_back_to_averaged_smc_where_weights_fail(monkeypatch):
    """Stand-in samplers (no compilation): star 1's weights fail under Kurucz, so star 1 alone is averaged
    again with SMC, whose evidences (put on the one prior by each library's validity mass) replace its
    weights; star 0 keeps its importance-sampling result. The columns are npe-is's (SMC's own would exist only
    in chunks where a star fell back)."""
    from sedppl.model.priors import Prior

    is_calls, smc_calls = _stand_in_samplers(monkeypatch, {"phoenix": [0.2, 0.3], "kurucz": [0.2, 0.9]})
    fit = fit_catalog(_two_library_stars(Prior.default()), "npe-is", library="phoenix,kurucz", fallback="nuts",
                      importance=ISConfig(proposals=100, draws=50), progress=False)
    s = fit.summary
    assert is_calls == [("phoenix", 2), ("kurucz", 2)] and smc_calls == [("phoenix", 1), ("kurucz", 1)]
    assert list(s["method"]) == ["npe-is", "smc"] and list(s["fallback"]) == [False, True]
    w0 = 1.0 / (1.0 + np.exp(-2.0))  # star 0: importance evidences -10 and -12
    np.testing.assert_allclose([s["library_weight_phoenix"][0], s["library_weight_kurucz"][0]], [w0, 1 - w0], rtol=1e-6)
    # star 1: SMC's evidences times the validity masses, 0.5 and 3 x 0.25: odds 2 : 3
    np.testing.assert_allclose([s["library_weight_phoenix"][1], s["library_weight_kurucz"][1]], [0.4, 0.6], rtol=1e-6)
    np.testing.assert_allclose(fit.posterior["library_average"]["weight"].values[1], [0.4, 0.6], rtol=1e-6)
    assert "smc_steps" not in s.colnames and np.isfinite(s["khat"][1])
    teff = fit.posterior["posterior"]["teff"].values[0]  # draw, star: star 1 has SMC's draws, thinned to 50
    assert teff.shape == (50, 2) and abs(np.median(teff[:, 0]) - 5000) < 1 and abs(np.median(teff[:, 1]) - 6000) < 1


def test_fits_with_the_same_model_and_settings_share_their_samplers(catalog):
    """Chunks, partitions and runs in one process reuse a sampler (and its compiled programs) when its
    model and settings are the same, and only then."""
    from dataclasses import replace

    from sedppl.io.fit import Fitter
    from sedppl.model.priors import Prior

    first, again = Fitter(catalog, "nuts"), Fitter(catalog, "nuts")
    assert first.sampler("nuts") is again.sampler("nuts")
    assert first.sampler("nuts", draws=50) is not first.sampler("nuts")
    narrower = replace(Prior.default(), sys_floor=0.03)
    assert Fitter(catalog, "nuts", prior=narrower).sampler("nuts") is not first.sampler("nuts")
    assert Fitter(catalog, "nuts", library="kurucz").sampler("nuts") is not first.sampler("nuts")
    assert Fitter(catalog, "nuts", config=NUTSConfig(chains=2)).sampler("nuts") is not first.sampler("nuts")
    proposals = Fitter(catalog, "npe-is", importance=SMALL)
    assert proposals.sampler("npe-is") is Fitter(catalog, "npe-is", importance=SMALL).sampler("npe-is")
    assert proposals.sampler("npe-is") is not Fitter(catalog, "npe-is").sampler("npe-is")


def test_errors_outside_a_cards_training_range_are_flagged_per_band_for_either_noise_model():
    """The out-of-range flag reads the training range from the card's noise model: one range for the
    idealised noise, one per band for the survey model (whose card has no err_min or err_max)."""
    from types import SimpleNamespace

    from sedppl.inference.npe.simulations import TrainingNoise
    from sedppl.io.columns import Verdict
    from sedppl.io.fit import _flag_errors_outside_training
    from sedppl.model.surveys import SurveyNoise

    bands = ("gaia_g", "2mass_j")
    catalog = SimpleNamespace(bands=bands, err=np.array([[1e-4, 0.03], [0.003, 0.03]]), mask=np.ones((2, 2), bool))
    for noise, flagged in ((TrainingNoise(), [True, False]), (SurveyNoise(), [False, False])):
        result = SimpleNamespace(verdicts=[Verdict(), Verdict()])
        _flag_errors_outside_training(result, catalog, np.arange(2), SimpleNamespace(noise=noise.to_dict()))
        assert ["gaia_g err 0.0001" in v.flag for v in result.verdicts] == flagged, noise
    result = SimpleNamespace(verdicts=[Verdict(), Verdict()])
    catalog.err[1, 0] = 0.2  # a G error the survey model never draws (its faint end is 0.043)
    _flag_errors_outside_training(result, catalog, np.arange(2), SimpleNamespace(noise=SurveyNoise().to_dict()))
    assert "gaia_g err 0.2" in result.verdicts[1].flag and result.verdicts[0].flag == ""


def test_the_fit_records_its_correction_and_plain_npe_keeps_its_cards(catalog):
    """A run's settings carry each library's correction with its numbers (a resumed run cannot mix two);
    a named correction goes to its own library when averaging; plain npe answers under its card's."""
    from pathlib import Path

    from sedppl.io.fit import Fitter

    corrected, bare = (Fitter(catalog, "smc", correction=c).settings()["correction"] for c in ("default", "none"))
    assert corrected["phoenix"].startswith("phoenix-m-dwarfs: offsets [") and bare == {"phoenix": "none"}
    averaged = Fitter(catalog, "smc", library="phoenix,kurucz", correction="phoenix-m-dwarfs")
    assert averaged.models["phoenix"].correction.name == "phoenix-m-dwarfs" and averaged.models["kurucz"].correction is None
    old = Path(__file__).resolve().parents[2] / "models" / "survey"  # trained before the correction
    with pytest.warns(UserWarning, match="plain npe answers under the correction its NPE was trained with"):
        npe = Fitter(catalog, "npe", npe_model=old, correction="phoenix-m-dwarfs")
    assert npe.model.correction is None and npe.settings()["correction"] == {"phoenix": "none"}
