import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import quad
from scipy.stats import norm

from sedppl.model.likelihood import masked_normal, scale_conditional, scale_marginal_log_likelihood, total_sigma


def _data():
    surface = jnp.array([-38.0, -37.5, -37.2, -36.9])
    mag = jnp.array([4.2, 4.75, jnp.nan, 5.3])
    sigma = jnp.array([0.03, 0.05, 0.02, 0.1])
    mask = jnp.array([True, True, False, True])
    return surface, mag, sigma, mask


def test_floor_adds_in_quadrature():
    """3-4-5: a 0.03 mag error with a 0.04 mag floor is 0.05 mag; no floor leaves the error alone."""
    np.testing.assert_allclose(total_sigma(jnp.array([0.03, 0.0, 0.12]), 0.04), [0.05, 0.04, 0.1264911], rtol=1e-6)
    np.testing.assert_allclose(total_sigma(jnp.array([0.03, 0.2]), 0.0), [0.03, 0.2], rtol=1e-7)


@pytest.mark.parametrize("d_lo, d_hi", [(40.0, 44.0), (40.0, 42.2), (42.22, 45.0), (42.16, 42.19)])
def test_scale_marginal_matches_quadrature(d_lo, d_hi):
    """Proper uniform prior on the dilution, truncation included (d_hat is about 42.21, its sd 0.025): the
    prior's range around it, cutting either side, and wholly on one side (both tails of Phi matter)."""
    surface, mag, sigma, mask = _data()

    def integrand(d):
        m = np.asarray(mask)
        return np.prod(norm.pdf(np.asarray(mag)[m], np.asarray(surface)[m] + d, np.asarray(sigma)[m])) / (d_hi - d_lo)

    ref = np.log(quad(integrand, d_lo, d_hi, points=[42.21] if d_lo < 42.21 < d_hi else None, limit=200, epsabs=0, epsrel=1e-10)[0])
    ours = float(scale_marginal_log_likelihood(surface, mag, sigma, mask, (d_lo, d_hi)))
    assert abs(ours - ref) < 5e-4  # float32: d_hat ~ 42 carries ~4e-6, times sqrt(precision) = 40 inside Phi


def test_improper_flat_prior_is_the_wide_limit():
    surface, mag, sigma, mask = _data()
    wide = float(scale_marginal_log_likelihood(surface, mag, sigma, mask, (30.0, 50.0)))
    flat = float(scale_marginal_log_likelihood(surface, mag, sigma, mask)) - np.log(20.0)
    assert abs(wide - flat) < 1e-5


def test_conditional_is_the_weighted_mean():
    surface, mag, sigma, mask = _data()
    mean, sd = scale_conditional(surface, mag, sigma, mask)
    w = np.where(mask, 1 / np.asarray(sigma) ** 2, 0)
    r = np.where(mask, np.asarray(mag) - np.asarray(surface), 0)
    assert float(mean) == np.float32(np.sum(w * r) / np.sum(w))
    np.testing.assert_allclose(float(sd), 1 / np.sqrt(w.sum()), rtol=1e-6)


def test_absent_bands_contribute_nothing_and_nan_is_safe():
    surface, mag, sigma, mask = _data()
    f = lambda mu: masked_normal(mu, sigma, mask).log_prob(jnp.where(mask, mag, 0.0))  # noqa: E731
    mu = surface + 42.0
    g = jax.grad(f)(mu)
    assert np.isfinite(float(f(mu))) and np.all(np.isfinite(np.asarray(g)))
    assert float(g[2]) == 0.0
    g2 = jax.grad(lambda s: scale_marginal_log_likelihood(s, mag, sigma, mask, (30.0, 50.0)))(surface)
    assert np.all(np.isfinite(np.asarray(g2))) and float(g2[2]) == 0.0
    # the errors too (a fitted floor differentiates through them): finite, and nothing from the absent band
    g3 = jax.grad(lambda s: scale_marginal_log_likelihood(surface, mag, s, mask, (30.0, 50.0)))(sigma.at[2].set(0.0))
    assert np.all(np.isfinite(np.asarray(g3))) and float(g3[2]) == 0.0
