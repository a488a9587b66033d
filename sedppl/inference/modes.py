"""Mode weights for chains that do not mix: each mode's posterior mass, not its number of chains.

Chains that settle in separate modes each sample the posterior restricted to
their own mode, so pooling them gives every mode the share of chains that
found it. We estimate the mass instead, by importance sampling from the
*deterministic mixture* of per-chain approximations (the balance heuristic of
Veach & Guibas 1995; Owen & Zhou 2000): every chain k contributes a Student t
q_k fitted to its draws (scale inflated), fresh draws come from each q_k in
equal numbers, and each draw y carries p(y) / q(y) with q = mean_k q_k. That
ratio is unbiased for the normalising constant whatever the overlap of the
q_k; splitting it by responsibility, q_k(y) / (K q(y)), gives each chain's
share of the mass. Chains whose approximations overlap form one mode (their
means within ``SAME_MODE`` sds); a mode's mass is the sum of its chains'
shares and is split equally between them, so a star with one mode keeps
equal chain weights exactly. PSIS k̂ of the mixture's ratios says whether the
approximations cover the posterior well enough to trust the weights.

Why this and not stacking (Yao, Vehtari & Gelman 2022): stacking weights chains
by leave-one-out predictive performance, which converges to the best
predictive mixture, not to the posterior's mode masses; an SED fit has too few
bands for LOO to separate modes, and the comparison with other exact methods
needs the masses themselves.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from jaxtyping import Array, Float

INFLATE = 1.5  # each chain's approximation is its draws' covariance widened by this factor (in sd)
DF = 5.0  # Student t degrees of freedom: heavier tails than the chain's draws show
SAME_MODE = 3.0  # chains whose means lie within this many sds of each other sample one mode
JITTER = 1e-6  # added to each chain's covariance diagonal (a chain that never moved)


class ModeWeights(NamedTuple):
    """Mass estimate for one star's chains (K chains)."""

    chain_weight: Float[Array, " K"]  # each chain's share of the posterior mass; sums to 1
    mode: Array  # (K,) int: label of each chain's mode (the lowest chain index in it)
    n_modes: Array  # int
    khat: Array  # PSIS k̂ of the mixture's importance ratios (> 0.7: the weights are not reliable)
    ess: Array  # effective sample size of those ratios
    log_evidence: Array  # log of the mean ratio: the normalising constant of ``logdensity``


def chain_approximations(z: Float[Array, "K n d"]) -> tuple[Array, Array]:
    """Mean and (jittered) covariance of each chain's draws."""
    mean = jnp.mean(z, axis=1)
    centred = z - mean[:, None]
    cov = jnp.einsum("kni,knj->kij", centred, centred) / z.shape[1]
    return mean, cov + JITTER * jnp.eye(z.shape[-1])


def same_mode(mean: Float[Array, "K d"], cov: Float[Array, "K d d"], threshold: float = SAME_MODE) -> Array:
    """(K,) labels: chains joined when their means lie within ``threshold`` sds under their average covariance,
    closed transitively; each label is the lowest chain index of its mode."""
    k = mean.shape[0]
    diff = mean[:, None] - mean[None]
    avg = 0.5 * (cov[:, None] + cov[None])
    dist2 = jnp.einsum("abi,abi->ab", diff, jnp.linalg.solve(avg, diff[..., None])[..., 0])
    linked = (dist2 <= threshold**2) | jnp.eye(k, dtype=bool)  # a chain with a broken fit still labels itself
    for _ in range(k):  # transitive closure: paths of any length up to K
        linked = linked | (linked.astype(jnp.int32) @ linked.astype(jnp.int32) > 0)
    return jnp.argmax(linked, axis=1)  # first linked chain: itself or a lower one


def mode_weights(
    key: Array, logdensity, z: Float[Array, "K n d"], draws_per_chain: int = 256, threshold: float = SAME_MODE,
) -> ModeWeights:
    """Each chain's share of the mass of ``exp(logdensity)`` from its draws ``z`` (one star).

    ``logdensity`` takes one flat position (d,) and may return -inf outside the support.
    """
    from .importance import smoothed_weights  # PSIS, written once

    n_chain, _, d = z.shape
    mean, cov = chain_approximations(z)
    tril = INFLATE * jnp.linalg.cholesky(cov)
    component = dist.MultivariateStudentT(DF, mean, tril)
    y = component.sample(key, (draws_per_chain,)).reshape(-1, d)  # (n * K, d), equal numbers from each
    log_qk = component.log_prob(y[:, None, :])  # (n * K, K)
    log_q = jax.nn.logsumexp(log_qk, axis=1) - jnp.log(n_chain)
    log_p = jax.vmap(logdensity)(y)
    log_p = jnp.where(jnp.isnan(log_p), -jnp.inf, log_p)
    log_ratio = log_p - log_q
    log_w, khat, ess = smoothed_weights(log_ratio)
    responsibility = jnp.exp(log_qk - log_q[:, None] - jnp.log(n_chain))  # rows sum to 1
    share = jnp.exp(log_w) @ responsibility  # (K,) each chain's share of the smoothed mass
    mode = same_mode(mean, cov, threshold)
    members = mode[None, :] == mode[:, None]  # (K, K): chain j in chain i's mode
    mode_mass = members.astype(share.dtype) @ share  # mass of chain i's mode
    weight = mode_mass / jnp.sum(members, axis=1)
    finite = jnp.all(jnp.isfinite(weight)) & (jnp.sum(weight) > 0)
    weight = jnp.where(finite, weight / jnp.sum(weight), 1.0 / n_chain)
    n_modes = jnp.sum(mode == jnp.arange(n_chain))
    log_evidence = jax.nn.logsumexp(log_ratio) - jnp.log(log_ratio.shape[0])
    return ModeWeights(weight, mode, n_modes, khat, ess, log_evidence)


def mode_masses(weights: ModeWeights) -> Array:
    """(K,) mass of each mode, at its label's index (zero at indices that label no mode)."""
    return jnp.zeros_like(weights.chain_weight).at[weights.mode].add(weights.chain_weight)


def resample_chains(draws: np.ndarray, chain_weight: np.ndarray, n_out: int) -> np.ndarray:
    """``n_out`` equal-weight draws from chains (K, n, ...) weighted by ``chain_weight``.

    Systematic resampling with a fixed offset (deterministic, float64): every
    draw of chain k has weight w_k / n. With equal weights and ``n_out`` = K n,
    every draw is kept once, in order.
    """
    draws, chain_weight = np.asarray(draws), np.asarray(chain_weight, float)
    n_chain, n = draws.shape[:2]
    cdf = np.cumsum(np.repeat(chain_weight / chain_weight.sum() / n, n))
    u = (0.5 + np.arange(n_out)) / n_out
    idx = np.minimum(np.searchsorted(cdf, u, side="right"), n_chain * n - 1)
    return draws.reshape((n_chain * n,) + draws.shape[2:])[idx]
