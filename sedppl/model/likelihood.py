"""Gaussian likelihood in magnitudes, with absent bands masked and the scale marginal.

Magnitudes are m_b ~ Normal(M_b + d, s_b) with s_b^2 = err_b^2 + floor^2,
where M_b are surface magnitudes and d = dilution_mag(theta) is the same for
every band. Because d enters linearly, its posterior given the other
parameters is Gaussian, and with a flat prior on d over [d_lo, d_hi]
(equivalently flat on log10 theta) the marginal likelihood is analytic:
``scale_marginal_log_likelihood``. NPE and importance sampling use it; NUTS
may sample d instead -- both describe the same model.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from jax.scipy.special import log_ndtr
from jaxtyping import Array, ArrayLike, Bool, Float


def total_sigma(err: ArrayLike, sys_floor: float) -> Float[Array, " nb"]:
    """Per-band error with the systematic floor added in quadrature."""
    return jnp.sqrt(jnp.asarray(err) ** 2 + sys_floor**2)


def masked_normal(mu: Array, sigma: Array, mask: Array) -> dist.Distribution:
    """Independent Normals over bands; absent bands contribute nothing (NaN-safe)."""
    mask = jnp.asarray(mask, bool)
    sigma = jnp.where(mask, sigma, 1.0)
    return dist.Normal(mu, sigma).mask(mask).to_event(1)


def sanitize(mag: ArrayLike, mask: ArrayLike, fill: ArrayLike = 0.0) -> Array:
    """Replace absent magnitudes (often NaN) with a finite fill value."""
    return jnp.where(jnp.asarray(mask, bool), jnp.asarray(mag), fill)


def scale_conditional(
    surface_mag: Float[Array, " nb"], mag: Float[Array, " nb"], sigma: Float[Array, " nb"], mask: Bool[Array, " nb"]
) -> tuple[Float[Array, ""], Float[Array, ""]]:
    """Mean and standard deviation of the dilution d given the other parameters (flat prior, untruncated)."""
    w = jnp.where(mask, 1.0 / sigma**2, 0.0)
    resid = sanitize(mag, mask) - surface_mag
    precision = jnp.sum(w)
    return jnp.sum(w * resid) / precision, 1.0 / jnp.sqrt(precision)


def scale_marginal_log_likelihood(
    surface_mag: Float[Array, " nb"],
    mag: Float[Array, " nb"],
    sigma: Float[Array, " nb"],
    mask: Bool[Array, " nb"],
    dilution_bounds: tuple[float, float] | None = None,
) -> Float[Array, ""]:
    """log integral of the Gaussian likelihood over the dilution d under a flat prior.

    With ``dilution_bounds=(d_lo, d_hi)`` the prior is the proper uniform
    density on that interval (truncation included exactly); with ``None`` it
    is the improper flat prior (density 1).
    """
    mask = jnp.asarray(mask, bool)
    sigma = jnp.where(mask, sigma, 1.0)
    w = jnp.where(mask, 1.0 / sigma**2, 0.0)
    resid = sanitize(mag, mask) - surface_mag
    precision = jnp.sum(w)
    d_hat = jnp.sum(w * resid) / precision
    chi2 = jnp.sum(w * (resid - d_hat) ** 2)
    log_norm = -0.5 * jnp.sum(jnp.where(mask, jnp.log(2 * np.pi * sigma**2), 0.0))
    out = -0.5 * chi2 + log_norm + 0.5 * jnp.log(2 * np.pi / precision)
    if dilution_bounds is not None:
        d_lo, d_hi = dilution_bounds
        root = jnp.sqrt(precision)
        upper, lower = log_ndtr((d_hi - d_hat) * root), log_ndtr((d_lo - d_hat) * root)
        mass = upper + jnp.log1p(-jnp.exp(jnp.minimum(lower - upper, -1e-30)))
        out = out + mass - jnp.log(d_hi - d_lo)
    return out
