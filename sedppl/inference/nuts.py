"""NUTS on the model's own log-density: BlackJAX per star over a catalog, NumPyro as the reference.

The log-density is NumPyro's potential of the one ``SEDModel`` (built as
``initialize_model`` builds it: ``batching.scale_marginal_potential``), never
a second copy. We sample the scale-marginalised model -- the five stellar
parameters -- and then draw the angular diameter
exactly from its Gaussian conditional (``likelihood.scale_conditional``,
truncated to the prior's range). This removes the strongest posterior
correlation (theta with Teff) from the sampler's work without changing the
joint posterior.

Each star has its own chains, initial points (per chain, the best of a few
prior draws; or given points, such as NPE draws: ``sample(init=...)``), Stan's
window adaptation and set of present bands. Warm-up and draws are one scan whose
body calls the NUTS kernel once (``warmup``): the compiled program holds the
kernel once, not twice (a one-star program lowered and compiled in 51 s instead of 74 s). A chain that ends warm-up
``restart_gap`` nats below the star's best chain restarts from that chain's
state and tuning before drawing (``_restart_stuck_chains``): such chains were
found stuck in far less probable modes (validation/README.md, SBC run 3). Chains that still
end in different modes are pooled with each mode's posterior mass, estimated by
importance sampling after the run (``modes.mode_weights``), never by how many
chains found it: ``StarDraws.pooled``. The model samples
logg above the grid's continuous gravity floor (``atmospheres``), so
trajectories do not end on the staircase of missing models. Stars are batched:

- ``lax.map`` on CPU: stars run one after another inside one compiled call, so
  a slow star does not hold back the others. On the 2-core development
  machine it beat ``vmap`` (see BENCHMARKS.md, "NUTS batching").
- chunked ``vmap`` on GPU, where lockstep is the price of using the device's
  width: every step of a call lasts as long as the longest trajectory among all
  its chains (``benchmarks/bench_lockstep.py`` measures what that adds).

The running program reports every ``batching.STEPS_PER_REPORT`` steps, which
moves the progress bar within a call; ``compile`` builds a call's program ahead.

When JAX sees several local devices (GPUs, or CPU cores exposed as devices with
``jax.config.update("jax_num_cpu_devices", n)``, which the CLI does), each call's
stars are split over them, each device running the same one-device program
(``batching.compile_over_stars``), so a star's draws do not depend on the
number of devices. One process on the 2-core machine keeps about 1.4 cores
busy but gains nothing from the second; two CPU devices doubled the throughput
(BENCHMARKS.md).
"""

from __future__ import annotations

import dataclasses

from dataclasses import dataclass, replace

import blackjax
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from numpyro.infer import Predictive
from numpyro.infer.util import unconstrain_fn

from ..model.forward import PARAMS
from ..model.generative import SEDModel, log_joint
from .batching import (compile_ahead, compile_over_stars, exact_theta, report_steps, sample_in_chunks,
                       scale_marginal_potential)
from .modes import mode_weights, resample_chains
from .warmup import schedule, window_adaptation


@dataclass(frozen=True)
class NUTSConfig:
    """Sampler settings (hashable, so they can be static under jit)."""

    chains: int = 4
    draws: int = 1000
    warmup: int = 1000
    # smooth (fast) forward model, 60 stars: 62 divergences at 0.95, 5 at 0.98 (faster than 0.95 on the old,
    # creased model); validation/reports/divergences_forward_resimulated.md, divergences.md
    target_accept: float = 0.98
    max_tree_depth: int = 10
    dense_mass: bool = True  # 5 parameters: a dense mass matrix is cheap and follows the Teff-A_V ridge
    init_candidates: int = 64  # prior draws per chain; the most probable one starts the chain
    batch: str = "auto"  # "map", "vmap" or "auto" (map on CPU, vmap on GPU)
    stars_per_call: int = 8  # stars per compiled call (progress bar granularity); with vmap, per device
    retry: bool = True  # refit flagged stars once with twice the warm-up
    restart_gap: float = 10.0  # nats; a chain ending warm-up this far below the best restarts from it (inf: never)
    mode_draws: int = 256  # fresh draws per chain that estimate each mode's mass (``modes.mode_weights``)
    av_map: str = "softplus"  # A_V reached by a softplus, not a logit: divergences 147 -> 23 on 60 stars (coordinates.py)


@dataclass
class StarDraws:
    """Draws and sampler statistics of a batch of stars (leading axis: star)."""

    params: dict[str, np.ndarray]  # name -> (star, chain, draw), constrained; includes theta_mas
    diverging: np.ndarray  # (star, chain, draw) bool
    tree_depth: np.ndarray  # (star, chain, draw) int
    n_steps: np.ndarray  # (star, chain, draw) leapfrog steps (gradient evaluations) behind each draw
    acceptance: np.ndarray  # (star, chain, draw)
    logdensity: np.ndarray  # (star, chain, draw) of the sampled (unconstrained) position
    step_size: np.ndarray  # (star, chain)
    seconds: np.ndarray  # (star,) wall time share of each star
    restarted: np.ndarray  # (star,) chains moved to the best chain's state after warm-up
    chain_weight: np.ndarray  # (star, chain) each chain's share of the posterior mass (``modes``)
    mode: np.ndarray  # (star, chain) label of each chain's mode
    n_modes: np.ndarray  # (star,)
    mode_khat: np.ndarray  # (star,) PSIS k̂ behind the chain weights
    mode_ess: np.ndarray  # (star,) ESS of the mass estimate's importance ratios

    def sample_stats(self) -> dict[str, np.ndarray]:
        """The per-draw sampler statistics under ArviZ's names: name -> (star, chain, draw)."""
        return {"diverging": self.diverging, "tree_depth": self.tree_depth, "n_steps": self.n_steps,
                "acceptance_rate": self.acceptance, "lp": self.logdensity}

    def pooled(self, i: int, n_out: int | None = None) -> dict[str, np.ndarray]:
        """Star ``i``'s draws pooled over chains with their modes' masses: name -> (n_out,) equal weight
        (default: as many as the chains hold)."""
        n_out = n_out or self.diverging[i].size
        return {p: resample_chains(v[i], self.chain_weight[i], n_out) for p, v in self.params.items()}


class NUTSSampler:
    """Batched BlackJAX NUTS for one ``SEDModel`` (must marginalise the scale)."""

    def __init__(self, model: SEDModel, config: NUTSConfig = NUTSConfig()):
        if config.warmup < 1 or config.draws < 1 or config.chains < 1:
            raise ValueError(f"NUTS needs at least one chain, warm-up step and draw; got chains={config.chains}, "
                             f"warmup={config.warmup}, draws={config.draws}")
        model, self._sampled, self._potential, self._constrain = scale_marginal_potential(model, config.av_map)
        self.model, self.config = model, config
        self.support_mid = {p: 0.5 * (lo + hi) for p, (lo, hi) in model.support().items()}
        self._compiled = compile_over_stars(self._run_one, config.batch)

    # -- one star ---------------------------------------------------------------
    def logdensity(self, z: dict, err, mask, mag, astrometry=None):
        return -self._potential(err, mask, mag, astrometry)(z)

    def _starting_points(self, key, err, mask, mag, astrometry, init):
        """Per chain, unconstrained: ``init`` (constrained, (chain, 5)) where it is finite and has a finite
        density, else the most probable of the chain's own ``init_candidates`` prior draws.

        Independent candidate sets keep the starts dispersed, so that chains
        which settle in different modes show up as modes (``modes``). (Resampling one
        shared set by likelihood was tried: it started every chain in the same
        mode, and the SBC then found truths outside all draws of unflagged stars.
        Climbing each start with Adam was tried too: it sent chains to the highest
        peak, not the most mass; validation/README.md, the seed-5 star.)
        Candidates and given points are scored in one batch: one copy of the model in the program.
        """
        cfg = self.config
        draws = Predictive(self.model.sample_prior, num_samples=cfg.chains * cfg.init_candidates)(key)
        given = {p: jnp.nan_to_num(init[:, i], nan=self.support_mid[p]) for i, p in enumerate(PARAMS)}
        values = {p: jnp.concatenate([draws[p], given[p]]) for p in PARAMS}
        logp = jax.vmap(lambda v: log_joint(self.model, v, err, mask, mag, astrometry))(values)
        candidates = logp[:-cfg.chains].reshape(cfg.chains, cfg.init_candidates)
        best = jnp.argmax(jnp.where(jnp.isfinite(candidates), candidates, -jnp.inf), axis=1)
        candidate = {p: draws[p].reshape(cfg.chains, cfg.init_candidates)[jnp.arange(cfg.chains), best] for p in PARAMS}
        both = {p: jnp.concatenate([given[p], candidate[p]]) for p in PARAMS}
        z = jax.vmap(lambda v: unconstrain_fn(self._sampled, (err, mask, mag, astrometry), {}, v))(both)
        # a given point on the support's edge has a finite density but no unconstrained coordinates
        finite = jnp.all(jnp.stack([jnp.isfinite(v[:cfg.chains]) for v in jax.tree.leaves(z)]), axis=0)
        use = jnp.all(jnp.isfinite(init), axis=1) & jnp.isfinite(logp[-cfg.chains:]) & finite
        return jax.tree.map(lambda v: jnp.where(use, v[:cfg.chains], v[cfg.chains:]), z)

    def _run_star(self, key, err, mask, mag, astrometry, init):
        """Warm-up and draws as one scan over steps, the chains side by side: the program holds one
        NUTS kernel (``warmup``). At the last warm-up step the tuning is fixed and stuck chains restart."""
        cfg = self.config
        logdensity = lambda z: self.logdensity(z, err, mask, mag, astrometry)  # noqa: E731
        kernel = blackjax.nuts.build_kernel()
        adaptation = window_adaptation(cfg.target_accept, cfg.dense_mass)
        k_init, k_warm, k_draw, k_modes = jax.random.split(key, 4)
        # per chain, its warm-up keys then its draw keys: (step, chain)
        chain_keys = lambda k, n: jax.vmap(lambda c: jax.random.split(c, n))(jax.random.split(k, cfg.chains))  # noqa: E731
        keys = jnp.concatenate([chain_keys(k_warm, cfg.warmup), chain_keys(k_draw, cfg.draws)], axis=1).swapaxes(0, 1)
        stages = schedule(cfg.warmup, cfg.warmup + cfg.draws)

        z0 = self._starting_points(k_init, err, mask, mag, astrometry, init)
        state = jax.vmap(lambda z: blackjax.nuts.init(z, logdensity))(z0)
        adapt = jax.vmap(adaptation.init)(z0)
        tuned = {"step_size": adapt.step_size, "inverse_mass_matrix": adapt.inverse_mass_matrix}

        def adapt_step(i, stage, window_end, state, adapt, acceptance):
            adapt = jax.vmap(adaptation.update, (0, None, None, 0, 0))(adapt, stage, window_end, state.position,
                                                                        acceptance)
            tuned = {"step_size": adapt.step_size, "inverse_mass_matrix": adapt.inverse_mass_matrix}

            def end_of_warmup(state, tuned):
                step_size, imm = jax.vmap(adaptation.final)(adapt)
                return _restart_stuck_chains(state, {"step_size": step_size, "inverse_mass_matrix": imm},
                                             cfg.restart_gap)

            return *jax.lax.cond(i == cfg.warmup - 1, end_of_warmup, lambda s, t: (s, t, jnp.int32(0)),
                                 state, tuned), adapt

        def step(carry, x):
            state, adapt, tuned, restarted = carry
            i, key, stage, window_end = x
            report_steps(i)  # the progress bar moves within a call
            state, info = jax.vmap(lambda k, s, e, m: kernel(k, s, logdensity, e, m,
                                                             max_num_doublings=cfg.max_tree_depth))(
                key, state, tuned["step_size"], tuned["inverse_mass_matrix"])
            state, tuned, moved, adapt = jax.lax.cond(
                i < cfg.warmup, adapt_step, lambda i, st, w, s, a, acc: (s, tuned, jnp.int32(0), a),
                i, stage, window_end, state, adapt, info.acceptance_rate)
            return (state, adapt, tuned, restarted + moved), (
                state.position, info.is_divergent, info.num_trajectory_expansions, info.num_integration_steps,
                info.acceptance_rate, state.logdensity)

        steps = jnp.arange(cfg.warmup + cfg.draws)
        (_, _, tuned, restarted), out = jax.lax.scan(step, (state, adapt, tuned, jnp.int32(0)),
                                                     (steps, keys, stages[:, 0], stages[:, 1] == 1))
        # keep the draws: (chain, draw, ...)
        z, div, depth, n_steps, acc, logp = jax.tree.map(lambda a: jnp.swapaxes(a[cfg.warmup:], 0, 1), out)
        params = jax.vmap(jax.vmap(self._constrain(err, mask, mag, astrometry)))(z)
        flat = jax.vmap(jax.vmap(lambda v: ravel_pytree(v)[0]))(z)  # (chain, draw, 5)
        unravel = ravel_pytree(jax.tree.map(lambda a: a[0, 0], z))[1]
        modes = mode_weights(k_modes, lambda y: logdensity(unravel(y)), flat, cfg.mode_draws)
        return {"params": params, "diverging": div, "tree_depth": depth, "n_steps": n_steps, "acceptance": acc,
                "logdensity": logp, "step_size": tuned["step_size"], "restarted": restarted,
                "chain_weight": modes.chain_weight, "mode": modes.mode, "n_modes": modes.n_modes,
                "mode_khat": modes.khat, "mode_ess": modes.ess}

    def _run_one(self, key, err, mask, mag, astrometry, init) -> dict:
        """One star's ``StarDraws`` fields (all but ``seconds``), theta_mas drawn from its exact conditional."""
        k_nuts, k_theta = jax.random.split(key)
        out = self._run_star(k_nuts, err, mask, mag, astrometry, init)
        params = {n: out["params"][n] for n in PARAMS}
        params.update(exact_theta(k_theta, self.model, params, err, mask, mag, astrometry))
        return out | {"params": params}

    # -- many stars ---------------------------------------------------------------
    def sample(self, key, err, mask, mag, progress: bool = True, init=None, astrometry=None) -> StarDraws:
        """Sample every star (rows of err/mask/mag; absent bands may hold NaN).

        ``astrometry`` (star, 4): each star's parallax and dust-map values (``model.astrometry``), or None.

        ``init`` (star, chain, 5), constrained in PARAMS order, starts chains there (e.g. NPE draws,
        which come from where the posterior's mass is); NaN rows, and points of zero density,
        start from the prior candidates instead.
        """
        init = self._init(len(np.asarray(mag)), init)
        cfg = self.config
        out, seconds = sample_in_chunks(self._compiled, key, err, mask, mag, cfg.stars_per_call, "NUTS",
                                        progress, astrometry, init, batch=cfg.batch, steps=cfg.warmup + cfg.draws)
        return StarDraws(**out | {"diverging": out["diverging"].astype(bool)}, seconds=seconds)

    def compile(self, err, mask, mag, astrometry=None) -> float:
        """Compile the program ``sample`` runs on these stars, without running it; seconds taken. (A first
        ``sample`` compiles and then samples a whole padded call: a benchmark times the two apart.) It is the
        program of typed keys (``jax.random.key``), no ``init`` or any, and ``astrometry`` given or not as here."""
        return compile_ahead(self._compiled, jax.random.key(0), err, mask, mag, self.config.stars_per_call,
                             astrometry, self._init(len(np.asarray(mag)), None))

    def _init(self, n: int, init) -> np.ndarray:
        """``init`` checked, or NaN (every chain from the prior candidates): (star, chain, 5)."""
        chains = self.config.chains
        init = np.full((n, chains, len(PARAMS)), np.nan) if init is None else np.asarray(init, float)
        if init.shape != (n, chains, len(PARAMS)):
            raise ValueError(f"init must have shape (stars, chains, 5) = {(n, chains, len(PARAMS))}, got {init.shape}")
        return init

    def with_config(self, **changes) -> NUTSSampler:
        return NUTSSampler(self.model, replace(self.config, **changes))


def _restart_stuck_chains(state, params, gap: float):
    """Move chains that end warm-up ``gap`` nats or more below the best chain onto its state and tuning.

    Such a chain sits where the density is exp(-gap) of the best chain's; unless
    its region were e^gap times wider, its share of the mass is negligible, yet it
    would spend every draw there and fail R-hat. Chains within ``gap`` nats keep
    their own state, so modes of comparable weight still show up in R-hat. Each
    moved chain draws with its own key. A non-finite end point always moves.
    """
    logp = state.logdensity
    best = jnp.argmax(jnp.where(jnp.isfinite(logp), logp, -jnp.inf))
    stuck = ~(logp > logp[best] - gap)
    move = lambda a: jnp.where(stuck.reshape((-1,) + (1,) * (a.ndim - 1)), a[best], a)  # noqa: E731
    return jax.tree.map(move, state), jax.tree.map(move, params), jnp.sum(stuck, dtype=jnp.int32)


def numpyro_reference(key, model: SEDModel, err, mask, mag, chains=4, draws=1000, warmup=1000) -> dict[str, np.ndarray]:
    """Single-star NumPyro ``MCMC(NUTS)`` on the full model (theta sampled): the reference path."""
    from numpyro.infer import MCMC, NUTS

    if model.marginalize_scale:
        model = dataclasses.replace(model, marginalize_scale=False)
    mask = np.asarray(mask, bool)
    err, mag = np.where(mask, err, 1.0), np.where(mask, mag, 0.0)
    mcmc = MCMC(NUTS(model), num_warmup=warmup, num_samples=draws, num_chains=chains,
                chain_method="vectorized", progress_bar=False)
    mcmc.run(key, jnp.asarray(err), jnp.asarray(mask), jnp.asarray(mag))
    samples = mcmc.get_samples(group_by_chain=True)
    return {k: np.asarray(v) for k, v in samples.items() if k in PARAMS + ("theta_mas",)}
