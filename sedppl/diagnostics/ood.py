"""Out-of-distribution checks: stars whose photometry a trained NPE (or the model) should not be trusted on.

Three checks, each a short reason string per star ("" when fine):

- ``error_range``: a band whose error lies far outside the range the network
  was trained on (it has never seen such a log sigma token);
- ``misfit``: no posterior draw reproduces the magnitudes within their errors.
  The best chi^2 over the draws (scale at its conditional optimum) is compared
  with chi^2(n_bands - 6): a one-band blunder or an atmosphere library the
  model does not describe shows up here, with the worst band named;
- ``parallax_tension``: the measured parallax is far from what the photometry
  predicts (its angular diameter and the mass prior's radius) at the posterior
  draws: a wrong cross-match, an unresolved binary, a giant fitted as a dwarf.

k̂ and the ESS of importance sampling are the fourth check; they live with the
importance sampler.
"""

from __future__ import annotations

import re

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float
from scipy.stats import chi2 as chi2_dist

from ..inference.batching import chunks, over_stars, resolve_batch
from ..model import astrometry as astro
from ..model.generative import SEDModel
from ..model.likelihood import scale_conditional

N_FREE = 6  # five stellar parameters and the scale
MISFIT_P = 1e-3  # chi^2 tail probability below which a star is flagged
MISFIT_BLOCK = 64  # stars per compiled misfit or parallax call (``_in_blocks``)
ERROR_MARGIN = 2.0  # errors this factor outside the training range are flagged


def error_range(err, mask, bands, err_min, err_max, margin: float = ERROR_MARGIN) -> list[str]:
    """Per star: the bands whose error is more than ``margin`` times outside the training range
    [err_min, err_max] (numbers, or one per band)."""
    err, mask = np.asarray(err), np.asarray(mask, bool)
    lo, hi = np.broadcast_to(err_min, err.shape[1:]), np.broadcast_to(err_max, err.shape[1:])
    low, high = mask & (err < lo / margin), mask & (err > hi * margin)
    reasons = []
    for i in range(len(err)):
        bad = [f"{bands[j]} err {err[i, j]:.2g} (trained on {lo[j]:.2g}-{hi[j]:.2g})"
               for j in np.nonzero(low[i] | high[i])[0]]
        reasons.append(f"errors outside the NPE training range: {', '.join(bad)}" if bad else "")
    return reasons


def _chi2_star(model: SEDModel, x: Float[Array, "n 5"], err, mask, mag) -> tuple[Array, Array]:
    """Smallest chi^2 over draws ``x`` (scale at its optimum) and that draw's residuals in sigma."""
    def residuals(params):
        sigma = model.sigma(err, params)
        surface = model.surface(params)
        dilution, _ = scale_conditional(surface, mag, sigma, mask)
        return jnp.where(mask, (mag - surface - dilution) / sigma, 0.0)

    z = jax.vmap(residuals)(x)
    chi2 = jnp.sum(z**2, axis=-1)
    best = jnp.argmin(chi2)
    return chi2[best], z[best]


@eqx.filter_jit
def _chi2_stars(model: SEDModel, valid, x, err, mask, mag, batch: str = "map"):
    """``_chi2_star`` over the ``valid`` stars of a block (``batching.over_stars``: one after another on a
    CPU, 3.5x faster there than side by side); the model is an argument, so every call on one model reuses
    one compilation."""
    return over_stars(lambda *a: _chi2_star(model, *a), batch)(valid, x, err, mask, mag)


def _in_blocks(f, *rows, block: int = MISFIT_BLOCK):
    """``f(valid, *block_rows, batch=...)`` over rows in chunks of ``block`` stars (``batching.chunks``:
    padded, so that one compiled program serves every catalogue and chunk size); outputs in row order."""
    batch = resolve_batch()
    if len(rows[0]) == 0:
        return tuple(np.asarray(a) for a in f(np.ones(0, bool), *rows, batch=batch))
    parts = [[np.asarray(a)[positions] for a in f(valid, *(r[slots] for r in rows), batch=batch)]
             for _, slots, valid, positions in chunks(len(rows[0]), block)]
    return tuple(np.concatenate(column) for column in zip(*parts))


def misfit(model: SEDModel, x, err, mask, mag, p_threshold: float = MISFIT_P, max_draws: int = 200
           ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Per star: best chi^2 over (up to ``max_draws`` of) its posterior draws ``x`` (star, draw, 5),
    its tail probability under chi^2(n_bands - 6), and a reason when that is below ``p_threshold``."""
    x = np.asarray(x)
    # always max_draws draws, spread over all chains (repeated when fewer: the minimum is the same)
    x = x[:, np.linspace(0, x.shape[1] - 1, max_draws).round().astype(int)]
    mask = np.asarray(mask, bool)
    err, mag = np.where(mask, err, 1.0), np.where(mask, mag, 0.0)
    chi2, z = _in_blocks(lambda *a, **k: _chi2_stars(model, *a, **k), x, err, mask, mag)
    dof = np.maximum(mask.sum(axis=1) - N_FREE, 1)
    p = chi2_dist.sf(chi2, dof)
    reasons = []
    for i in range(len(x)):
        if p[i] >= p_threshold:
            reasons.append("")
            continue
        worst = int(np.argmax(np.abs(z[i])))
        reasons.append(f"photometry not fitted by the model: chi2 {chi2[i]:.0f} for {mask[i].sum()} bands "
                       f"(p={p[i]:.1e}), worst {model.bands[worst]} {z[i, worst]:+.0f} sigma")
    return chi2, p, reasons


def _parallax_cdf_star(model: SEDModel, x: Float[Array, "n 5"], err, mask, mag, astrometry) -> tuple[Array, Array]:
    """Mean over draws of P(measured parallax <= observed) predicted from the photometry; median prediction."""
    def one(params):
        sigma = model.sigma(err, params)
        d_hat, d_sd = scale_conditional(model.surface(params), mag, sigma, mask)
        return astro.photometric_parallax_cdf(params, d_hat, d_sd, astrometry, model.support()["av"],
                                              model.astrometric)

    cdf, predicted = jax.vmap(one)(x)
    return jnp.mean(cdf), jnp.median(predicted)


@eqx.filter_jit
def _parallax_cdf_stars(model: SEDModel, valid, x, err, mask, mag, astrometry, batch: str = "map"):
    return over_stars(lambda *a: _parallax_cdf_star(model, *a), batch)(valid, x, err, mask, mag, astrometry)


def parallax_tension(model: SEDModel, x, err, mask, mag, astrometry, p_threshold: float = MISFIT_P,
                     max_draws: int = 200) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Per star: the two-sided tail probability of its (zero-point corrected) parallax under the
    photometry's prediction at (up to ``max_draws`` of) its posterior draws ``x`` (star, draw, 5), the
    predicted parallax [mas], and a reason when the probability is below ``p_threshold``. NaN and ""
    for stars without a parallax. The draws of a fit that used the parallax have already moved towards it,
    so this flags only what the fit could not reconcile."""
    x = np.asarray(x)
    x = x[:, np.unique(np.linspace(0, x.shape[1] - 1, max_draws).round().astype(int))]
    mask, astrometry = np.asarray(mask, bool), np.asarray(astrometry, float)
    err, mag = np.where(mask, err, 1.0), np.where(mask, mag, 0.0)
    has = np.asarray(astro.has_parallax(astrometry.T))
    cdf, predicted = (np.asarray(a, float) for a in
                      _in_blocks(lambda *a, **k: _parallax_cdf_stars(model, *a, **k), x, err, mask, mag, astrometry))
    p = np.where(has, np.clip(2.0 * np.minimum(cdf, 1.0 - cdf), 0.0, 1.0), np.nan)
    predicted = np.where(has, predicted, np.nan)
    reasons = [f"parallax disagrees with the photometry: {astrometry[i, 0]:.3g} +- {astrometry[i, 1]:.2g} mas "
               f"measured, {predicted[i]:.3g} mas predicted (p={p[i]:.1e})" if has[i] and p[i] < p_threshold else ""
               for i in range(len(x))]
    return p, predicted, reasons


def join(*reasons: str) -> str:
    """Combine non-empty reasons into one flag string."""
    return "; ".join(r for r in reasons if r)


def reason_counts(flags) -> dict[str, int]:
    """Stars per kind of reason in a column of flag strings, numbers stripped, most common first.

    "ood: photometry not fitted by the model: chi2 35 for 8 bands" counts as
    "ood: photometry not fitted by the model"; "rhat 1.20 > 1.01" as "rhat".
    """
    counts: dict[str, int] = {}
    for flag in flags:
        kinds = {_reason_kind(piece) for piece in str(flag).split("; ") if piece.strip()}
        for kind in kinds:
            counts[kind] = counts.get(kind, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def _reason_kind(piece: str) -> str:
    head = ":".join(piece.split(":")[:2]).split(" [")[0].split(" (")[0]
    return re.sub(r"\s+", " ", re.sub(r"[<>]?\s*\d[\d.]*%?", "", head)).strip(" ,")
