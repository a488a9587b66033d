"""Mode weighting of non-mixing chains: known masses of a two-mode target, whatever the chain counts."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sedppl.inference.modes import mode_masses, mode_weights, resample_chains, same_mode

# Two well separated modes of different widths: the narrow one has the higher peak but 15% of the mass.
LOCS = jnp.array([[0.0, 0.0], [8.0, 3.0]])
SDS = jnp.array([[1.0, 2.0], [0.2, 0.3]])
MASS = jnp.array([0.85, 0.15])


def log_target(z):
    comp = jax.scipy.stats.norm.logpdf(z, LOCS, SDS).sum(-1)
    return jax.nn.logsumexp(comp + jnp.log(MASS)) + 7.0  # any constant


def chains_in(modes, n=1000, seed=0):
    """Exact draws of each mode's component, one chain per entry of ``modes``."""
    rng = np.random.default_rng(seed)
    return jnp.asarray(np.stack([np.asarray(LOCS[m]) + np.asarray(SDS[m]) * rng.normal(size=(n, 2)) for m in modes]))


@pytest.mark.parametrize("modes", [(0, 1, 1, 1), (0, 0, 0, 1), (1, 0), (0, 1, 0, 1, 1, 1)])
def test_mode_masses_do_not_depend_on_how_many_chains_found_them(modes):
    z = chains_in(modes)
    w = mode_weights(jax.random.key(1), log_target, z)
    assert int(w.n_modes) == 2
    masses = np.asarray(mode_masses(w))
    minor = masses[list(modes).index(1)]
    assert abs(minor - 0.15) < 0.02, (modes, masses)
    assert abs(float(w.log_evidence) - 7.0) < 0.05
    assert float(w.khat) < 0.7
    # chains of one mode share its mass equally
    labels = np.asarray(w.mode)
    for m in set(labels):
        assert np.ptp(np.asarray(w.chain_weight)[labels == m]) < 1e-6


def test_one_mode_keeps_equal_chain_weights():
    w = mode_weights(jax.random.key(2), log_target, chains_in((0, 0, 0, 0), seed=3))
    assert int(w.n_modes) == 1
    np.testing.assert_allclose(np.asarray(w.chain_weight), 0.25, atol=1e-6)


def test_same_mode_is_transitive():
    mean = jnp.array([[0.0], [2.5], [5.0], [20.0]])
    cov = jnp.ones((4, 1, 1))
    assert same_mode(mean, cov).tolist() == [0, 0, 0, 3]  # 0~1 and 1~2 join 0 and 2


def test_resampling_keeps_each_chains_share():
    draws = np.stack([np.full(100, k, float) for k in range(4)])  # chain k's draws all equal k
    out = resample_chains(draws, np.array([0.7, 0.1, 0.1, 0.1]), 1000)
    np.testing.assert_array_equal(np.bincount(out.astype(int)), [700, 100, 100, 100])
    np.testing.assert_array_equal(resample_chains(draws, np.ones(4), 400), draws.reshape(-1))
