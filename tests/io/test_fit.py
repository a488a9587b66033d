"""fit_catalog with npe-is: the summary's extra columns, the NUTS fallback, the proposals in the stored posterior."""

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
    for name in ("ess", "ess_per_draw", "khat", "khat_npe", "n_rejected", "fallback", "chi2"):
        assert name in s.colnames, name
    assert np.all(s["ess"][:3] > 0) and np.all(s["ess_per_draw"][:3] <= 1.0) and not np.any(s["fallback"])
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
    result = fit_catalog(catalog, "npe-is", importance=strict, config=nuts, progress=False)
    s = result.summary
    assert list(s["method"][:3]) == ["nuts"] * 3 and np.all(s["fallback"][:3])
    assert np.all(s["n_divergent"][:3] >= 0) and np.all(np.isfinite(s["khat"][:3]))  # NUTS diagnostics filled
    assert list(result.posterior["posterior"]["method"].values) == ["nuts"] * 3
    assert result.posterior["posterior"]["teff"].shape == (1, 200, 3)  # NUTS draws thinned to the IS length


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

    monkeypatch.setattr(SMCSampler, "sample", stand_in)
    two = read_catalog(simulate_catalog(jax.random.key(12), 2, sed_model()))
    fit = fit_catalog(two, "smc", smc=SMCConfig(particles=256), progress=False)
    s = fit.summary
    assert calls == [(256, 2), (512, 1)], list(s["flag"])
    assert list(s["retried"]) == [True, False] and not any("smc:" in f for f in s["flag"]), list(s["flag"])
    teff = fit.posterior["posterior"]["teff"].values  # chain, draw, star
    assert teff.shape == (1, 2 * 256 * 4, 2) and abs(np.median(teff[0, :, 0]) - 5000.0) < 10.0


@pytest.mark.slow  # ~4 min on 2 cores (SMC compiled and run under two libraries); `make test-all`
def test_library_averaging_weighs_the_library_that_made_each_star():
    """One star simulated with Kurucz and one with Phoenix (all bands, 0.01-0.02 mag errors and a 0.005 mag
    floor, so that the libraries' 0.02-0.5 mag differences show), fitted with SMC under both: each star's
    weight goes to its own library, the weights sum to one, the averaged evidence is the mean of the two, and
    the draws and groups say which libraries they average."""
    from astropy.table import vstack

    from sedppl.inference.averaging import shared_prior
    from sedppl.inference.smc import SMCConfig
    from sedppl.model.priors import Prior
    from sedppl.model.simulate import NoiseModel

    prior = Prior.from_dict(Prior.default().to_dict() | {"likelihood": {"sys_floor": 0.005}})
    noise = NoiseModel(err_min=0.01, err_max=0.02, p_missing=0.0)
    stars = []
    for name, seed in (("kurucz", 31), ("phoenix", 32)):
        model = sed_model(name, prior=shared_prior(prior, ("phoenix", "kurucz")))  # the prior the fit uses
        star = simulate_catalog(jax.random.key(seed), 1, model, noise)
        star["id"] = [name]
        stars.append(star)
    fit = fit_catalog(vstack(stars), "smc", prior=prior, library="phoenix,kurucz",
                      smc=SMCConfig(particles=256, stars_per_call=2), progress=False)
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
