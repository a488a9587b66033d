"""Reference stars for agreement checks: a Sun-like dwarf in chosen bands, and a converged NUTS run on it.

The agreement tests (``tests/``) and ``validation/reference_stars.py`` use these same
stars and the same NUTS settings, so a number in a report is the number a test asserts on.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..inference.nuts import NUTSConfig, NUTSSampler, StarDraws
from ..model.forward import PARAMS
from ..model.generative import SEDModel

SUN_LIKE = np.array([5600.0, 4.4, -0.1, 0.5, 3.1])  # teff, logg, mh, av, rv
SUN_LIKE_LOG10_THETA = -1.3
GAIA_2MASS_WISE = ("gaia_g", "gaia_bp", "gaia_rp", "2mass_j", "2mass_h", "2mass_ks", "wise_w1", "wise_w2")


def reference_star(model: SEDModel, bands=GAIA_2MASS_WISE, err_mag: float = 0.05, seed: int = 3):
    """The Sun-like dwarf observed in ``bands`` at ``err_mag`` (noise from the model's likelihood,
    systematic floor included): (err, mask, mag), each with a leading star axis of one."""
    mu = np.asarray(model.magnitudes(jnp.asarray(SUN_LIKE), SUN_LIKE_LOG10_THETA))
    err, mask = np.full(len(model.bands), err_mag), np.isin(model.bands, bands)
    mag = mu + np.random.default_rng(seed).normal(0, np.asarray(model.sigma(err, jnp.asarray(SUN_LIKE))))
    return err[None], mask[None], mag[None]


def reference_survey_star(model: SEDModel, seed: int = 0, theta_dex: float = 0.0, noise=None):
    """The same Sun-like dwarf as the surveys would catalogue it: each band's presence and error drawn from
    its magnitude by ``noise`` (default ``SurveyNoise()``, the default model's training noise), its angular
    diameter ``theta_dex`` dex larger (-0.4 dex: 2 mag fainter). Returns (err, mask, mag) like
    ``reference_star``; refuses a draw with fewer bands than the noise model's ``min_bands``."""
    from ..model.surveys import SurveyNoise

    if not np.isfinite(theta_dex):
        raise ValueError(f"theta_dex must be finite, got {theta_dex}")
    noise = SurveyNoise() if noise is None else noise
    k_survey, k_noise = jax.random.split(jax.random.key(seed))
    mu = model.magnitudes(jnp.asarray(SUN_LIKE), SUN_LIKE_LOG10_THETA + theta_dex)
    err, mask = noise.draw(k_survey, model.bands, mu)
    if int(mask.sum()) < noise.min_bands:
        raise ValueError(f"seed {seed}, theta_dex {theta_dex}: {int(mask.sum())} bands catalogued, "
                         f"fewer than {noise.min_bands}; choose another seed")
    mag = mu + jax.random.normal(k_noise, mu.shape) * model.sigma(err, jnp.asarray(SUN_LIKE))
    return np.asarray(err)[None], np.asarray(mask)[None], np.asarray(mag)[None]


def nuts_reference(model: SEDModel, err, mask, mag, max_rhat: float = 1.05) -> StarDraws:
    """NUTS on one star (4 chains x (500 warm-up + 500 draws)); refuses to serve as a reference unless
    its chains agree (with 2 chains, one once sat in a minor mode)."""
    from arviz_stats.base import array_stats

    nuts = NUTSSampler(model, NUTSConfig(chains=4, draws=500, warmup=500, stars_per_call=1)).sample(
        jax.random.key(0), err, mask, mag, progress=False)
    draws = np.stack([nuts.params[p][0] for p in PARAMS], axis=-1)
    rhat = np.asarray(array_stats.rhat(draws, chain_axis=0, draw_axis=1))
    if rhat.max() >= max_rhat:
        raise RuntimeError(f"NUTS reference not converged: R-hat {rhat.round(3)} (limit {max_rhat})")
    return nuts
