"""The astrometric model: the mass and distance integral against brute force, the constants against
independent numbers, and stars without a parallax left exactly as they were."""

import astropy.constants as const
import astropy.units as u
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import logsumexp

from sedppl.model import astrometry as astro
from sedppl.model.forward import PARAMS, dilution_mag
from sedppl.model.generative import log_joint, sed_model
from sedppl.model.likelihood import scale_conditional, scale_marginal_log_likelihood

BANDS = ("gaia_g", "gaia_bp", "gaia_rp", "2mass_j", "2mass_h", "2mass_ks", "wise_w1")
PARAMS_K_DWARF = np.array([5000.0, 4.5, 0.0, 0.2, 3.1])


@pytest.fixture(scope="module")
def star():
    """A K dwarf of 0.8 M_sun at 80 pc: the model, its surface magnitudes and observed magnitudes (float64)."""
    model = sed_model(bands=BANDS, marginalize_scale=True)
    params = jnp.asarray(PARAMS_K_DWARF, jnp.float32)
    log10_radius = 0.5 * (np.log10(0.8) + astro.LOGG_SUN - 4.5)
    log10_theta = log10_radius + np.log10(1000.0 / 80.0) + astro.LOG_THETA_AT_UNIT
    surface = np.asarray(model.surface(params), float)
    mag = surface + float(dilution_mag(log10_theta)) + np.array([0.01, -0.02, 0.0, 0.015, -0.01, 0.0, 0.02])
    err = np.full(len(BANDS), 0.02)
    sigma = np.asarray(model.sigma(err, params), float)
    return model, params, surface, mag, err, sigma


def brute_force(model, surface, mag, sigma, vector, u_range=(-1.0, 3.5), v_sigmas=7.0):
    """log of the double integral over log10 M and u = log10 parallax of the full Gaussian photometric
    likelihood (float64, theta from M and d), the mass, distance and dust priors and the parallax."""
    config, (teff, logg, _, av, _) = model.astrometric, PARAMS_K_DWARF
    mu, s = float(astro.median_mass(teff, logg, config)), config.mass_sigma_dex
    v, uu = np.linspace(mu - v_sigmas * s, mu + v_sigmas * s, int(200 * v_sigmas) + 1), np.linspace(*u_range, 9001)
    V, U = np.meshgrid(v, uu, indexing="ij")
    D = -5 * (0.5 * (V + astro.LOGG_SUN - logg) + U + astro.LOG_THETA_AT_UNIT) + astro.DILUTION_ZERO
    w = 1 / sigma**2
    resid = mag - surface
    log_lik = (-0.5 * (w.sum() * D**2 - 2 * (w * resid).sum() * D + (w * resid**2).sum())
               - 0.5 * np.log(2 * np.pi * sigma**2).sum())
    log_p = -0.5 * ((V - mu) / s) ** 2 - np.log(s * np.sqrt(2 * np.pi))
    log_p += np.asarray(astro.log_distance_prior(U, config), float)
    parallax, error, av_map, sin_b = vector
    log_p += -0.5 * ((parallax - 10**U) / error) ** 2 - np.log(error * np.sqrt(2 * np.pi))
    if np.isfinite(av_map):
        log_p += np.asarray(astro.log_av_given_distance(av, U, av_map, sin_b, model.support()["av"], config), float)
    return logsumexp(log_lik + log_p) + np.log(v[1] - v[0]) + np.log(uu[1] - uu[0])


@pytest.fixture(scope="module")
def star_log_joint(star):
    """The star's log-joint as a function of its astrometric vector, compiled once for every case below."""
    model, params, _, mag, err, _ = star
    mask = np.ones(len(BANDS), bool)
    return jax.jit(lambda vector: log_joint(model, dict(zip(PARAMS, params)), err, mask, mag, vector))


@pytest.mark.parametrize("vector, u_range, v_sigmas", [
    ((12.5, 0.02, np.nan, np.nan), (-1.0, 3.5), 7),   # a Gaia-bright parallax: narrower than the photometry
    ((12.5, 0.5, np.nan, np.nan), (-1.0, 3.5), 7),    # comparable widths
    ((12.5, 4.0, np.nan, np.nan), (-1.0, 3.5), 7),    # a 3-sigma parallax
    ((30.0, 0.05, np.nan, np.nan), (-1.0, 3.5), 7),   # in tension with the photometry
    ((-2.0, 1.0, np.nan, np.nan), (-1.5, 2.0), 16),   # negative: far and massive, the priors decide
    ((12.5, 0.05, 1.0, 0.3), (-1.0, 3.5), 7),         # with the dust map's A_V prior
])
def test_log_joint_integrates_mass_and_distance_exactly(star, star_log_joint, vector, u_range, v_sigmas):
    model, params, surface, mag, err, sigma = star
    without = float(star_log_joint(jnp.full(4, jnp.nan)))  # no parallax: today's log-joint (next test)
    with_parallax = float(star_log_joint(jnp.asarray(vector, jnp.float32)))
    mask = np.ones(len(BANDS), bool)
    bounded = float(scale_marginal_log_likelihood(jnp.asarray(surface), mag, sigma, mask, model.dilution_bounds()))
    own_av = float(model.distributions()["av"].log_prob(params[3])) if np.isfinite(vector[2]) else 0.0
    ours = with_parallax - without + bounded + own_av  # the prior terms cancel; what is left is the likelihood
    expected = brute_force(model, surface, mag, sigma, np.asarray(vector), u_range, v_sigmas)
    assert ours == pytest.approx(expected, abs=2e-3)


def test_star_without_parallax_keeps_its_log_joint_and_gradient(star):
    model, params, _, mag, err, _ = star
    mask = np.ones(len(BANDS), bool)
    before = lambda p: log_joint(model, dict(zip(PARAMS, p)), err, mask, mag)  # noqa: E731
    after = lambda p: log_joint(model, dict(zip(PARAMS, p)), err, mask, mag, jnp.full(4, jnp.nan))  # noqa: E731
    assert float(after(params)) == float(before(params))
    np.testing.assert_array_equal(jax.grad(after)(params), jax.grad(before)(params))
    with_parallax = jax.grad(lambda p: log_joint(model, dict(zip(PARAMS, p)), err, mask, mag,
                                                 jnp.array([12.5, 0.05, 1.0, 0.3])))(params)
    assert np.all(np.isfinite(with_parallax))


def test_constants_match_independent_numbers():
    # the Sun at 10 pc: theta = 2 R_sun / 10 pc, from astropy's constants (IAU 2015 nominal radius)
    theta = (2 * const.R_sun / (10 * u.pc)).to(u.mas, equivalencies=u.dimensionless_angles()).value
    assert 10 ** (0.0 + np.log10(100.0) + astro.LOG_THETA_AT_UNIT) == pytest.approx(theta, rel=1e-6)
    g_sun = (const.GM_sun / const.R_sun**2).to(u.cm / u.s**2).value
    assert astro.LOGG_SUN == pytest.approx(np.log10(g_sun), abs=1e-6)
    assert astro.DILUTION_ZERO == pytest.approx(float(dilution_mag(0.0)), abs=1e-5)
    config = astro.AstrometricPrior()
    # Pecaut & Mamajek (2013, v2022.04.16): G2V 5770 K 1.00, M0V 3850 K 0.57, A0V 9700 K 2.18 M_sun
    for teff, mass in ((5770, 1.00), (3850, 0.57), (9700, 2.18)):
        assert 10 ** float(astro.median_mass(teff, 4.5, config)) == pytest.approx(mass, rel=1e-5)
    assert 10 ** float(astro.median_mass(3850, 2.0, config)) == pytest.approx(config.evolved_mass, rel=1e-5)
    assert astro.AV_PER_EBV["SFD"] == 2.742 and astro.GAIA_DR3_PARALLAX_ZERO_POINT == -0.017


def test_dust_prior_is_normalised_for_every_distance():
    config, support = astro.AstrometricPrior(), (0.003, 15.0)
    av = np.linspace(*support, 200001)
    for u_ in (2.0, 0.5, -0.5):  # 10 pc, 316 pc, 3.2 kpc
        density = np.exp(np.asarray(astro.log_av_given_distance(av, u_, 2.0, 0.2, support, config), float))
        assert np.trapezoid(density, av) == pytest.approx(1.0, abs=1e-4)
    nearby = np.asarray(astro.log_av_given_distance(np.array([0.01, 1.0]), 2.0, 2.0, 0.2, support, config))
    assert nearby[0] - nearby[1] > 50  # at 10 pc the map allows almost no dust


def test_prior_draws_of_mass_and_distance_follow_the_prior_densities():
    """What simulations draw is what the log-joint scores: u against ``log_distance_prior`` (a
    Kolmogorov-Smirnov distance on 20,000 draws), log10 M against ``median_mass`` and its width."""
    config = astro.AstrometricPrior()
    teff, logg = np.full(20000, 5800.0), np.full(20000, 4.4)
    log10_mass, u_draws = (np.asarray(a, float) for a in
                           astro.sample_mass_and_distance_prior(jax.random.key(3), teff, logg, config))
    grid = np.linspace(-2.5, 3.0, 200001)
    cdf = np.cumsum(np.exp(np.asarray(astro.log_distance_prior(grid, config), float)))
    assert cdf[-1] * (grid[1] - grid[0]) == pytest.approx(1.0, abs=1e-3)
    ks = np.max(np.abs(np.searchsorted(np.sort(u_draws), grid) / len(u_draws) - cdf / cdf[-1]))
    assert ks < 1.36 / np.sqrt(len(u_draws))  # 95% critical value
    assert np.mean(log10_mass) == pytest.approx(float(astro.median_mass(5800.0, 4.4, config)), abs=0.005)
    assert np.std(log10_mass) == pytest.approx(config.mass_sigma_dex, rel=0.03)


def test_mass_and_distance_draws_follow_their_posterior(star):
    """The draws of u = log10 parallax match the brute-force conditional posterior's mean and spread."""
    model, params, surface, mag, err, sigma = star
    vector = jnp.array([12.5, 0.5, jnp.nan, jnp.nan])
    d_hat, d_sd = scale_conditional(jnp.asarray(surface), jnp.asarray(mag), jnp.asarray(sigma), jnp.ones(7, bool))
    draw = lambda k: astro.sample_mass_and_distance(k, params, d_hat, d_sd, vector, model.support()["av"],  # noqa
                                                    model.astrometric)
    log10_mass, u_draws = (np.asarray(a, float) for a in jax.vmap(draw)(jax.random.split(jax.random.key(0), 4000)))
    safe, use_map = astro._safe(vector)
    integrand = astro._Star(params, d_hat, d_sd, safe, model.support()["av"], model.astrometric, use_map)
    grid = np.linspace(0.5, 1.7, 24001)
    w = np.exp(np.asarray(jax.vmap(integrand.log_f)(jnp.asarray(grid)), float) - 0)
    w /= w.sum()
    mean = (w * grid).sum()
    sd = np.sqrt((w * (grid - mean) ** 2).sum())
    assert u_draws.mean() == pytest.approx(mean, abs=4 * sd / np.sqrt(4000))
    assert u_draws.std() == pytest.approx(sd, rel=0.06)
    sizes = astro.size_and_distance(log10_mass, u_draws, 4.5)
    assert np.median(sizes["radius_rsun"]) == pytest.approx(10 ** (0.5 * (np.log10(0.8) + astro.LOGG_SUN - 4.5)),
                                                            rel=0.05)


def test_gradient_is_finite_where_the_free_scale_has_no_mass(star):
    """A prior whose angular-diameter range excludes the star: the free-scale likelihood is -inf there,
    and a star with a parallax (which does not use that range) must still have a finite gradient."""
    import dataclasses
    import tomllib

    from sedppl.model.priors import DEFAULT_PRIOR_TOML, Prior

    model, params, _, mag, err, _ = star
    tables = tomllib.loads(DEFAULT_PRIOR_TOML)
    tables["log10_theta"] = {"dist": "uniform", "low": -6.0, "high": -4.0}  # the star has ~0.1 mas
    narrow = dataclasses.replace(model, prior=Prior.from_dict(tables))
    mask = np.ones(len(BANDS), bool)
    joint = lambda p, a: log_joint(narrow, dict(zip(PARAMS, p)), err, mask, mag, a)  # noqa: E731
    assert not np.isfinite(float(joint(params, jnp.full(4, jnp.nan))))
    vector = jnp.array([12.5, 0.05, jnp.nan, jnp.nan])
    assert np.isfinite(float(joint(params, vector)))
    assert np.all(np.isfinite(jax.grad(joint)(params, vector)))
    batched = jax.vmap(jax.grad(joint), in_axes=(None, 0))(params, jnp.stack([vector, jnp.full(4, jnp.nan)]))
    assert np.all(np.isfinite(batched[0]))  # batched over stars, the cond becomes a select: still finite
