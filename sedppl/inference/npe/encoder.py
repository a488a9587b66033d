"""A permutation-invariant set encoder of a star's photometry (Equinox).

One token per present band: a learned embedding of the band, plus an MLP of
its centred magnitude, plus an MLP of its log error. A learned summary (CLS)
token joins the set; pre-norm transformer blocks attend only to present tokens
(the padding mask reaches every attention), and the summary is the CLS output
next to the masked mean of the band tokens. No positional encoding: the
output does not depend on the order of tokens or on how many absent tokens
pad the set.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray


def _magnitude_features(value: Float[Array, ""]) -> Float[Array, " 2"]:
    # centred magnitudes reach tens of mag for bands far in a spectrum's tail; keep them O(1)
    return jnp.stack([value / 10.0, jnp.arcsinh(value)])


class Block(eqx.Module):
    """Pre-norm transformer block: masked self-attention, then an MLP, each residual."""

    norm1: eqx.nn.LayerNorm
    attention: eqx.nn.MultiheadAttention
    norm2: eqx.nn.LayerNorm
    mlp: eqx.nn.MLP

    def __init__(self, width: int, heads: int, *, key: PRNGKeyArray):
        k1, k2 = jax.random.split(key)
        self.norm1, self.norm2 = eqx.nn.LayerNorm(width), eqx.nn.LayerNorm(width)
        self.attention = eqx.nn.MultiheadAttention(heads, width, key=k1)
        self.mlp = eqx.nn.MLP(width, width, 2 * width, 1, activation=jax.nn.gelu, key=k2)

    def __call__(self, x: Float[Array, "n w"], attend: Bool[Array, "n n"]) -> Float[Array, "n w"]:
        h = jax.vmap(self.norm1)(x)
        x = x + self.attention(h, h, h, mask=attend)
        return x + jax.vmap(self.mlp)(jax.vmap(self.norm2)(x))


class SetEncoder(eqx.Module):
    """Band tokens -> a fixed-size summary of one star."""

    band_embedding: eqx.nn.Embedding
    magnitude_mlp: eqx.nn.MLP
    error_mlp: eqx.nn.MLP
    cls: Float[Array, " w"]
    blocks: tuple[Block, ...]
    out_norm: eqx.nn.LayerNorm
    out: eqx.nn.Linear
    n_bands: int = eqx.field(static=True)
    width: int = eqx.field(static=True)
    summary_dim: int = eqx.field(static=True)

    def __init__(self, n_bands: int, *, width: int = 64, depth: int = 2, heads: int = 4,
                 summary_dim: int = 64, key: PRNGKeyArray):
        keys = jax.random.split(key, 5 + depth)
        self.n_bands, self.width, self.summary_dim = n_bands, width, summary_dim
        self.band_embedding = eqx.nn.Embedding(n_bands, width, key=keys[0])
        self.magnitude_mlp = eqx.nn.MLP(2, width, width, 1, activation=jax.nn.gelu, key=keys[1])
        self.error_mlp = eqx.nn.MLP(1, width, width, 1, activation=jax.nn.gelu, key=keys[2])
        self.cls = 0.02 * jax.random.normal(keys[3], (width,))
        self.blocks = tuple(Block(width, heads, key=k) for k in keys[5:])
        self.out_norm = eqx.nn.LayerNorm(2 * width)
        self.out = eqx.nn.Linear(2 * width, summary_dim, key=keys[4])

    def __call__(
        self, band: Int[Array, " n"], value: Float[Array, " n"], log_err: Float[Array, " n"], present: Bool[Array, " n"]
    ) -> Float[Array, " s"]:
        """Summary of one star's tokens (any length, any order; absent tokens are ignored)."""
        tokens = (
            jax.vmap(self.band_embedding)(band)
            + jax.vmap(self.magnitude_mlp)(jax.vmap(_magnitude_features)(value))
            + jax.vmap(self.error_mlp)(log_err[:, None])
        )
        x = jnp.concatenate([self.cls[None], tokens])
        keep = jnp.concatenate([jnp.ones(1, bool), present])
        attend = jnp.broadcast_to(keep[None, :], (keep.size, keep.size))
        for block in self.blocks:
            x = block(x, attend)
        weights = present / jnp.maximum(jnp.sum(present), 1)
        pooled = jnp.concatenate([x[0], weights @ x[1:]])
        return self.out(self.out_norm(pooled))
