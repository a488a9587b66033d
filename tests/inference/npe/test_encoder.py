"""The set encoder: permutation and padding invariance, gradients everywhere."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from sedppl.inference.npe.encoder import SetEncoder

N_BANDS = 10


def _star(key, n=N_BANDS):
    k1, k2, k3 = jax.random.split(key, 3)
    return (jnp.arange(n), jax.random.normal(k1, (n,)), -2 + 0.3 * jax.random.normal(k2, (n,)),
            jax.random.uniform(k3, (n,)) > 0.4)


def test_permutation_invariance():
    enc = SetEncoder(N_BANDS, width=16, depth=2, heads=2, summary_dim=8, key=jax.random.key(0))
    tokens = _star(jax.random.key(1))
    perm = jax.random.permutation(jax.random.key(2), N_BANDS)
    a, b = enc(*tokens), enc(*(t[perm] for t in tokens))
    np.testing.assert_allclose(a, b, atol=2e-5)


def test_padding_invariance_and_absent_tokens_ignored():
    enc = SetEncoder(N_BANDS, width=16, depth=2, heads=2, summary_dim=8, key=jax.random.key(0))
    band, value, log_err, present = _star(jax.random.key(3))
    base = enc(band, value, log_err, present)
    pad = 7  # more absent tokens, with arbitrary contents
    padded = (jnp.concatenate([band, jnp.zeros(pad, int)]), jnp.concatenate([value, 99.0 * jnp.ones(pad)]),
              jnp.concatenate([log_err, jnp.ones(pad)]), jnp.concatenate([present, jnp.zeros(pad, bool)]))
    np.testing.assert_allclose(base, enc(*padded), atol=2e-5)
    changed = value.at[~present].set(-50.0)  # the values of absent bands do not matter
    np.testing.assert_allclose(base, enc(band, changed, log_err, present), atol=2e-5)
    assert not np.allclose(base, enc(band, value.at[jnp.argmax(present)].add(1.0), log_err, present))


def test_gradients_reach_every_part():
    enc = SetEncoder(N_BANDS, width=16, depth=2, heads=2, summary_dim=8, key=jax.random.key(0))
    batch = jax.vmap(_star)(jax.random.split(jax.random.key(4), 16))
    grads = eqx.filter_grad(lambda e: jnp.sum(jnp.sin(jax.vmap(e)(*batch))))(enc)
    leaves = jax.tree_util.tree_leaves_with_path(eqx.filter(grads, eqx.is_inexact_array))
    dead = [jax.tree_util.keystr(path) for path, g in leaves if not bool(jnp.any(g != 0))]
    assert not dead, dead
    assert any("band_embedding" in jax.tree_util.keystr(p) for p, _ in leaves)
