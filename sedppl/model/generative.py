"""The one NumPyro generative model of a star's photometry, and its log-joint.

Every method in sedppl -- simulation, NUTS, NPE training, importance
sampling, SBC -- goes through ``SEDModel``; none re-implements a prior, the
forward model or the likelihood.

``SEDModel(...)(mag_err, mask, mag)`` is a NumPyro model of one star::

    teff, logg, mh, av, rv ~ prior, restricted to the grid's validity region
                             (logg above the grid's gravity floor at (teff, mh))
    log10_theta            ~ Uniform            (angular diameter [mas])
    mag                    ~ Normal(forward(params, theta), sqrt(err^2 + floor^2)), absent bands masked

With ``marginalize_scale=True`` the scale is integrated out analytically
(see ``likelihood.scale_marginal_log_likelihood``); the five-parameter
posterior is the same. A star with a parallax (``astrometry``, see
``model.astrometry``) has theta = 2R/d instead of a free scale: mass and
distance are integrated out and the A_V prior may come from a dust map.
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints
from jaxtyping import Array, ArrayLike, Float
from numpyro.infer.util import log_density

from . import astrometry as astro
from .corrections import LibraryCorrection, load_correction
from .forward import MAS_IN_RAD, PARAMS, ForwardModel, dilution_mag, forward_model, log10_theta_from_dilution
from .likelihood import masked_normal, sanitize, scale_conditional, scale_marginal_log_likelihood, total_sigma
from .passbands import SURVEY_BANDS
from .priors import SCALE, Prior, PriorError


class AboveFloor(dist.Distribution):
    """``base`` restricted to values above ``floor``, unnormalised.

    The joint prior is the product prior restricted to the validity region and
    normalised once, so the restriction multiplies the density by an indicator
    and does not renormalise the conditional. What it changes is the support,
    [floor, base's upper bound], and so the unconstrained transform NumPyro
    gives samplers: a smooth map whose lower end moves with (teff, mh).
    Draws come from ``base``; draws below the floor fall outside the validity
    region and are rejected by the simulators.
    """

    arg_constraints = {}
    pytree_data_fields = ("base", "floor", "low", "high")

    def __init__(self, base: dist.Distribution, floor: ArrayLike, low: float, high: float):
        """``[low, high]`` is the support of ``base``."""
        self.base, self.floor, self.low, self.high = base, jnp.asarray(floor), low, high
        super().__init__(batch_shape=base.batch_shape, event_shape=base.event_shape)

    @constraints.dependent_property(is_discrete=False, event_dim=0)
    def support(self):
        return constraints.interval(jnp.maximum(self.floor, self.low), self.high)

    def sample(self, key, sample_shape=()):
        return self.base.sample(key, sample_shape)

    def log_prob(self, value):
        return jnp.where(value >= self.floor, self.base.log_prob(value), -jnp.inf)


class SEDModel(eqx.Module):
    """Prior x forward model x likelihood for one star; call it as a NumPyro model."""

    forward: ForwardModel
    prior: Prior = eqx.field(static=True)
    marginalize_scale: bool = eqx.field(static=True, default=False)
    astrometric: astro.AstrometricPrior = eqx.field(static=True, default=astro.AstrometricPrior())
    correction: LibraryCorrection | None = None  # empirical per-band offsets of the library (``corrections``)

    def __check_init__(self):
        support, domain = self.support(), self.forward.extinction_domain()
        for name in ("av", "rv"):
            (lo, hi), (d_lo, d_hi) = support[name], domain[name]
            if lo < d_lo - 1e-9 or hi > d_hi + 1e-9:
                hint = " or use the spectral forward path (--forward spectral)" if self.forward.path == "fast" else ""
                raise PriorError(f"prior [{name}]: its support [{lo:g}, {hi:g}] leaves the range the "
                                 f"{self.forward.path} forward model covers, [{d_lo:g}, {d_hi:g}]; narrow it{hint}")

    @property
    def bands(self) -> tuple[str, ...]:
        return self.forward.bands

    @property
    def grid_bounds(self) -> dict[str, tuple[float, float]]:
        return self.forward.grid.bounds

    def distributions(self) -> dict[str, dist.Distribution]:
        return self.prior.distributions(self.grid_bounds)

    def support(self) -> dict[str, tuple[float, float]]:
        return self.prior.support(self.grid_bounds)

    def dilution_bounds(self) -> tuple[float, float]:
        lo, hi = self.support()[SCALE]  # static numbers: stay in NumPy so this works under jit
        return tuple(float(-5.0 * (x + np.log10(MAS_IN_RAD / 2.0))) for x in (hi, lo))

    def surface(self, params: Float[Array, " 5"]) -> Float[Array, " nb"]:
        """The model's surface magnitudes: the library's, with its empirical correction if any. Every
        likelihood, simulation and check goes through this."""
        surface = self.forward.surface_magnitudes(params)
        return surface if self.correction is None else surface + self.correction(params)

    def magnitudes(self, params: Float[Array, " 5"], log10_theta_mas: ArrayLike) -> Float[Array, " nb"]:
        """Observed magnitudes of a star of angular diameter 10**log10_theta_mas mas."""
        return self.surface(params) + dilution_mag(log10_theta_mas)

    def sigma(self, mag_err: ArrayLike, params: Array) -> Array:
        """Each band's standard deviation: its reported error and the systematic floor at the star's
        Teff (``Prior.floor``) in quadrature."""
        return total_sigma(mag_err, self.prior.floor(self.bands, params[..., 0]))

    def sample_prior(self) -> tuple[Array, Array | None]:
        """The prior part of the model (NumPyro sites): the five parameters, restricted to the
        grid, and the scale unless it is marginalised. Returns (params, log10_theta or None)."""
        priors = self.distributions()
        teff = numpyro.sample("teff", priors["teff"])
        mh = numpyro.sample("mh", priors["mh"])
        floor = self.forward.logg_floor(teff, mh)
        logg = numpyro.sample("logg", AboveFloor(priors["logg"], floor, *self.support()["logg"]))
        params = jnp.stack([teff, logg, mh, numpyro.sample("av", priors["av"]), numpyro.sample("rv", priors["rv"])])
        numpyro.factor("in_grid", jnp.where(self.forward.in_grid(params), 0.0, -jnp.inf))
        if self.marginalize_scale:
            return params, None
        log10_theta = numpyro.sample(SCALE, priors[SCALE])
        numpyro.deterministic("theta_mas", 10.0**log10_theta)
        return params, log10_theta

    def __call__(self, mag_err: ArrayLike, mask: ArrayLike, mag: ArrayLike | None = None,
                 astrometry: ArrayLike | None = None) -> None:
        """``astrometry``: the star's (parallax, parallax_error, av_map, sin_b) (``astrometry.COLUMNS``),
        NaN where unknown, or None; only the scale-marginalised model uses it."""
        params, log10_theta = self.sample_prior()
        surface = self.surface(params)
        sigma = self.sigma(mag_err, params)
        mask = jnp.asarray(mask, bool)
        if self.marginalize_scale:
            if mag is None:
                raise ValueError("marginalize_scale=True needs observed magnitudes")
            bounds = self.dilution_bounds()
            if astrometry is None:
                log_lik = scale_marginal_log_likelihood(surface, mag, sigma, mask, bounds)
            else:
                astrometry = jnp.asarray(astrometry)
                has = astro.has_parallax(astrometry)

                def free_scale():  # as without astrometry; under a batched select, no gradient for parallax stars
                    hold = lambda a: jnp.where(has, jax.lax.stop_gradient(a), a)  # noqa: E731
                    return scale_marginal_log_likelihood(hold(surface), mag, hold(sigma), mask, bounds)

                log_lik = jax.lax.cond(has, lambda: self._astrometric_log_likelihood(
                    params, surface, mag, sigma, mask, astrometry), free_scale)
            numpyro.factor("mag_marginal", log_lik)
            return
        if astrometry is not None:
            raise NotImplementedError("a parallax needs the scale-marginalised model (marginalize_scale=True)")
        mu = surface + dilution_mag(log10_theta)
        obs = None if mag is None else sanitize(mag, mask, mu)
        numpyro.sample("mag", masked_normal(mu, sigma, mask), obs=obs)

    def _astrometric_log_likelihood(self, params, surface, mag, sigma, mask, astrometry) -> Array:
        """log p(mag, parallax | params) with mass and distance integrated out; where the dust map
        applies, its p(A_V | d) replaces the prior's own A_V density (divided out here)."""
        astrometry = jnp.asarray(astrometry)
        flat = scale_marginal_log_likelihood(surface, mag, sigma, mask)
        d_hat, d_sd = scale_conditional(surface, mag, sigma, mask)
        support = self.support()["av"]
        log_mass_distance = astro.log_marginal(params, d_hat, d_sd, astrometry, support, self.astrometric)
        own_av = self.distributions()["av"].log_prob(params[3])
        use_map = jnp.isfinite(astrometry[2]) & jnp.isfinite(astrometry[3]) & jnp.isfinite(own_av)
        return flat + log_mass_distance - jnp.where(use_map, own_av, 0.0)

    def sample_size_and_distance(self, key: Array, params: Array, mag_err, mask, mag, astrometry) -> dict[str, Array]:
        """One draw of theta_mas, and for a star with a parallax of radius_rsun, distance_pc and mass_msun
        (NaN without one), from their exact conditional given the five parameters. A star without a
        parallax gets the same theta draw as ``sample_log10_theta`` with ``key``."""
        astrometry = jnp.asarray(astrometry)
        theta_free = 10.0 ** sample_log10_theta(key, self, params, mag_err, mask, mag)

        def astrometric():
            sigma = self.sigma(mag_err, params)
            surface = self.surface(params)
            d_hat, d_sd = scale_conditional(surface, mag, sigma, jnp.asarray(mask, bool))
            log10_mass, u = astro.sample_mass_and_distance(jax.random.fold_in(key, 1), params, d_hat, d_sd, astrometry,
                                                           self.support()["av"], self.astrometric)
            sizes = astro.size_and_distance(log10_mass, u, params[1])
            theta = 10.0 ** sizes.pop("log10_theta")
            return {"theta_mas": theta.astype(theta_free.dtype)} | {k: v.astype(theta_free.dtype) for k, v in sizes.items()}

        def free():
            missing = jnp.full((), jnp.nan, theta_free.dtype)
            return {"theta_mas": theta_free, "radius_rsun": missing, "distance_pc": missing, "mass_msun": missing}

        return jax.lax.cond(astro.has_parallax(astrometry), astrometric, free)


def sed_model(
    library: str = "phoenix", bands=SURVEY_BANDS, prior: Prior | None = None, marginalize_scale: bool = False,
    path: str = "fast", astrometric: astro.AstrometricPrior = astro.AstrometricPrior(), correction: str = "default",
) -> SEDModel:
    """Build the generative model for a library, a band list and a prior (default prior if None), with the
    forward model's ``path`` (``forward.forward_model``: "fast", "spectral" or "multilinear") and the
    library's empirical ``correction`` ("default": its own if it has one, "none", or a name in
    ``corrections``)."""
    forward = forward_model(library, bands, path)
    return SEDModel(forward, prior or Prior.default(), marginalize_scale, astrometric,
                    load_correction(library, forward.bands, correction))


def log_joint(model: SEDModel, values: dict[str, Array], mag_err: ArrayLike, mask: ArrayLike, mag: ArrayLike,
              astrometry: ArrayLike | None = None) -> Array:
    """log p(values, mag[, parallax]) of one star under ``model`` (constrained-space values; -inf off the grid).

    ``values`` holds the five parameters and, unless the model marginalises
    the scale, ``log10_theta``. This is the log-joint every method imports.
    """
    values = {k: jnp.asarray(v) for k, v in values.items()}
    return log_density(model, (mag_err, mask, mag, astrometry), {}, values)[0]


def log_prior(model: SEDModel, values: dict[str, Array]) -> Array:
    """log prior density of ``values`` under the model's own prior part (-inf off the grid).

    Without ``log10_theta`` in ``values`` (or with a scale-marginalised model) it
    is the prior of the five stellar parameters alone.
    """
    values = {k: jnp.asarray(v) for k, v in values.items()}
    if SCALE not in values and not model.marginalize_scale:
        model = dataclasses.replace(model, marginalize_scale=True)
    return log_density(model.sample_prior, (), {}, values)[0]


def sample_log10_theta(
    key: Array, model: SEDModel, params: Array, mag_err: ArrayLike, mask: ArrayLike, mag: ArrayLike
) -> Array:
    """One exact draw of log10 theta [mas] from its conditional given the five parameters ``params``.

    With a flat prior the dilution is Gaussian given the rest, truncated to the
    prior's range (``likelihood.scale_conditional``): every method that samples
    the scale-marginalised posterior recovers the angular diameter with this.
    """
    sigma = model.sigma(mag_err, params)
    d_lo, d_hi = model.dilution_bounds()
    mean, sd = scale_conditional(model.surface(params), mag, sigma, mask)
    dilution = mean + sd * jax.random.truncated_normal(key, (d_lo - mean) / sd, (d_hi - mean) / sd)
    return log10_theta_from_dilution(dilution)


def stack_params(values: dict[str, ArrayLike]) -> Array:
    """dict of per-parameter arrays -> (..., 5) array in PARAMS order."""
    return jnp.stack([jnp.asarray(values[p]) for p in PARAMS], axis=-1)
