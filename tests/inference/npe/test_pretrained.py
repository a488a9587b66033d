"""The pretrained default model: calibrated on simulations, agrees with NUTS, and fits catalogs."""

import functools
from pathlib import Path

import jax
import numpy as np
import pytest

from sedppl.diagnostics.sbc import binomial_band, interval_coverage, pit_values
from sedppl.inference.npe.card import load_npe
from sedppl.inference.npe.estimator import NPEEstimator
from sedppl.inference.npe.simulations import TrainingNoise, simulate_batch
from sedppl.io.catalog import read_catalog
from sedppl.io.fit import REPORTED, fit_catalog
from sedppl.model.forward import PARAMS
from sedppl.model.simulate import simulate_catalog

MODEL = Path(__file__).resolve().parents[3] / "models" / "default"


@pytest.fixture(scope="module")
def pretrained():
    return load_npe(MODEL)


def test_pretrained_model_is_calibrated_on_simulations(pretrained):
    """68% and 95% intervals contain the truth at their nominal rates (3-sigma binomial bands)."""
    posterior, card = pretrained
    n = 400
    sims = jax.jit(lambda k: simulate_batch(k, card.model(), TrainingNoise(**card.noise), n))(jax.random.key(7))
    draws = NPEEstimator(posterior, card.model(), draws=400, stars_per_call=200).sample(
        jax.random.key(8), sims["err"], sims["mask"], sims["mag"], progress=False)
    for level in (0.68, 0.95):
        lo, hi = binomial_band(level, n)
        for i, p in enumerate(PARAMS):
            cover = interval_coverage(pit_values(draws.params[p][:, 0], np.asarray(sims["params"][:, i])), level)
            assert lo <= cover <= hi, (p, level, cover)


def _npe_and_nuts(pretrained, nuts_reference, star):
    posterior, card = pretrained
    model = card.model(marginalize_scale=True)
    err, mask, mag = star(model)
    nuts = nuts_reference(model, err, mask, mag)
    npe = NPEEstimator(posterior, model, draws=2000, stars_per_call=1).sample(
        jax.random.key(1), err, mask, mag, progress=False)
    return nuts, npe


def _assert_agree(nuts, npe):
    for p in ("teff", "logg", "av", "theta_mas"):
        a, b = nuts.params[p][0].ravel(), npe.params[p][0].ravel()
        if p == "theta_mas":
            a, b = np.log10(a), np.log10(b)
        assert abs(np.median(a) - np.median(b)) < 0.5 * np.std(a), p
        assert 0.5 < np.std(b) / np.std(a) < 2.0, p


@pytest.mark.slow
def test_npe_agrees_with_nuts_on_a_typical_star(pretrained, nuts_reference, reference_star):
    """Same star, same model: NPE (scale marginalised by centring, theta from its exact conditional)
    against NUTS on the scale-marginalised log-joint, for a Gaia + 2MASS + WISE star at 0.05 mag.
    KNOWN FAILURE (2026-11-22): NPE's Teff median is 5847 K against NUTS's 5308 K (NUTS sd 209 K):
    the CPU-trained default model is calibrated on simulations but too broad and off-centre per star.
    Kept as a slow study; it must pass before the NPE issue is resolved."""
    _assert_agree(*_npe_and_nuts(pretrained, nuts_reference, reference_star))


@pytest.mark.slow
def test_npe_agrees_with_nuts_on_a_bright_star(pretrained, nuts_reference, reference_star):
    """KNOWN FAILURE (2026-11-22): all 26 bands at 0.02 mag. The default model's Teff posterior is
    624 K wide against NUTS's 51 K (medians agree): the CPU-trained model is far too broad on
    high signal-to-noise stars. Kept as a slow study until a better-trained model passes it."""
    all_bands = functools.partial(reference_star, bands=pretrained[1].bands, err_mag=0.02)
    _assert_agree(*_npe_and_nuts(pretrained, nuts_reference, all_bands))


def test_fit_catalog_with_npe(pretrained, tmp_path):
    table = simulate_catalog(jax.random.key(4), 6, pretrained[1].model())
    table["gaia_g_err"][5] = -1.0  # rejected by input validation, kept in the summary
    result = fit_catalog(read_catalog(table), "npe", out=tmp_path, draws=200, progress=False)
    s = result.summary
    assert len(s) == 6 and list(s["method"]) == ["npe"] * 6
    assert s["flag"][5].startswith("input:") and s["n_rejected"][5] == -1
    assert np.all(s["n_rejected"][:5] >= 0)
    for p in REPORTED:
        assert np.all(np.isfinite(s[f"{p}_median"][:5]))
        assert np.all(s[f"{p}_p16"][:5] <= s[f"{p}_p84"][:5])
    assert result.posterior["posterior"]["teff"].shape == (1, 200, 5)
    assert (tmp_path / "summary.parquet").exists() and (tmp_path / "posterior.nc").exists()
