"""Adaptive tempered SMC: a second exact engine, built for posteriors with several modes.

Particles start as prior draws and move through p(x) L(x)^λ as λ rises from 0
to 1. Each step reweights the particles to the next λ, chosen on those same
particles so that the weights keep ``target_ess`` of them (BlackJAX's
``ess_solver``), then resamples and moves every particle with a few HMC steps
under the new tempered target (BlackJAX's ``tempered_smc`` kernel). This is
the order of Chopin & Papaspiliopoulos (2020, ch. 17). BlackJAX's own
``adaptive_tempered_smc`` solves λ on the particles before they move but
weights them after, and when the move finds a far better region the weights
collapse onto one particle (6 of 200 simulated stars did, 2026-11-30).
At λ = 1 the particles move ``final_moves`` more times and the particles after
each move are the draws. Each star runs ``runs`` independent particle
systems; like chains, their agreement (R-hat across runs) is the check that
the answer does not depend on the run.
Modes are found by the prior's particles and keep the mass the tempering path
gives them, whatever their number, so SMC is the engine for stars where NUTS's
chains disagree. Its byproduct is the log-evidence (the product of the mean
incremental weights; relative to the prior restricted to the grid's validity
region).

The prior and the likelihood are the one model's: log prior is NumPyro's
potential of ``SEDModel.sample_prior``, and log likelihood is the full
potential minus it, both in the same unconstrained space NUTS samples; the
angular diameter is marginalised and drawn afterwards from its exact
conditional, as for NUTS.

The HMC mutation uses a dense mass matrix from the particles' covariance and a
step size that follows the acceptance rate (Buchholz, Chopin & Jacob 2021).
BlackJAX 1.7.1 carries the fix for the adaptive-tempering ESS sign
(blackjax#914); ``tests/inference/test_smc.py`` checks the schedule on an
asymmetric likelihood, where the old sign fails.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import NamedTuple

import blackjax
import jax
import jax.numpy as jnp
import numpy as np
from blackjax.smc import resampling
from blackjax.smc.base import extend_params
from blackjax.smc.ess import ess as smc_ess
from blackjax.smc.ess import log_ess
from blackjax.smc.solver import dichotomy
from blackjax.smc.tempered import TemperedSMCState
from jax.flatten_util import ravel_pytree
from numpyro.infer import Predictive
from numpyro.infer.util import initialize_model, unconstrain_fn

from ..model.forward import PARAMS
from ..model.generative import SEDModel
from .batching import compile_ahead, compile_over_stars, exact_theta, sample_in_chunks, scale_marginal_potential

TARGET_ACCEPT = 0.65  # HMC acceptance the step size is steered towards


@dataclass(frozen=True)
class SMCConfig:
    """Tempered SMC settings (hashable, static under jit)."""

    particles: int = 512  # per run
    runs: int = 2  # independent particle systems per star: their agreement (R-hat) is the check of each star
    target_ess: float = 0.5  # fraction of particles the weights keep at each tempering step
    mutation_steps: int = 5  # HMC steps per particle per tempering step
    integration_steps: int = 8  # leapfrog steps per HMC step
    max_steps: int = 150  # tempering steps; a star that has not reached the posterior by then is flagged
    final_moves: int = 4  # moves at the posterior itself (>= 1); the particles after each are the draws
    batch: str = "auto"
    stars_per_call: int = 4
    retry: bool = True  # rerun flagged stars once with twice the particles (``io.fit``), like NUTS's retry

    def __post_init__(self):
        if self.particles < 16:
            raise ValueError(f"particles must be >= 16, got {self.particles}")
        if self.runs < 1:
            raise ValueError(f"runs must be >= 1, got {self.runs}")
        if not 0 < self.target_ess < 1:
            raise ValueError(f"target_ess must be in (0, 1), got {self.target_ess}")
        if min(self.mutation_steps, self.integration_steps, self.max_steps, self.final_moves) < 1:
            raise ValueError("mutation_steps, integration_steps, max_steps and final_moves must be >= 1")


@dataclass
class SMCDraws:
    """Equal-weight SMC draws and diagnostics for a batch of stars (leading axis: star)."""

    params: dict[str, np.ndarray]  # name -> (star, run, particle x final move), theta_mas included
    log_evidence: np.ndarray  # (star, run)
    n_steps: np.ndarray  # (star, run) tempering steps taken
    tempering: np.ndarray  # (star, run) final λ: 1 unless max_steps ran out
    ess: np.ndarray  # (star, run) ESS of the weights at the last tempering step, before the final moves
    diversity: np.ndarray  # (star, run) distinct particles kept by the resampling after the last reweighting / particles
    acceptance: np.ndarray  # (star, run) mean HMC acceptance of the last move at the posterior
    seconds: np.ndarray
    config: SMCConfig

    @property
    def reached_posterior(self) -> np.ndarray:
        """(star,) every run reached λ = 1."""
        return np.all(self.tempering >= 1.0, axis=1)

    @property
    def combined_log_evidence(self) -> np.ndarray:
        """(star,) log of the runs' mean evidence."""
        z = self.log_evidence
        top = np.max(z, axis=1, keepdims=True)
        return (top + np.log(np.mean(np.exp(z - top), axis=1, keepdims=True)))[:, 0]


class _Carry(NamedTuple):
    state: object  # TemperedSMCState
    key: jax.Array
    step_size: jax.Array
    n_steps: jax.Array  # tempering steps taken (λ < 1 at their start)
    n_final: jax.Array  # resample-moves at λ = 1
    log_evidence: jax.Array
    ess: jax.Array  # after the last reweighting
    diversity: jax.Array  # distinct particles kept by the first resampling at λ = 1, as a share
    acceptance: jax.Array  # HMC acceptance of the last move at λ = 1
    kept: jax.Array  # (final_moves, particles, d): the particles after each move at λ = 1


class SMCSampler:
    """Batched adaptive tempered SMC for one ``SEDModel`` (the scale is marginalised)."""

    def __init__(self, model: SEDModel, config: SMCConfig = SMCConfig()):
        model, self._sampled, self._potential, self._constrain = scale_marginal_potential(model)
        self.model, self.config = model, config
        prior = initialize_model(jax.random.key(0), model.sample_prior, dynamic_args=True)
        self._prior_potential = prior.potential_fn()
        self._compiled = compile_over_stars(self._run_one, config.batch)

    # -- one star ---------------------------------------------------------------
    def _densities(self, err, mask, mag, astrometry, unravel):
        potential = self._potential(err, mask, mag, astrometry)

        def log_prior(x):
            return -self._prior_potential(unravel(x))

        def log_likelihood(x):
            lp = log_prior(x)
            ll = -potential(unravel(x)) - lp
            return jnp.where(jnp.isfinite(lp) & ~jnp.isnan(ll), ll, -jnp.inf)

        return log_prior, log_likelihood

    def _initial_particles(self, key, err, mask, mag, astrometry):
        """``particles`` prior draws inside the validity region (rejection: the first valid of twice as many)."""
        n = self.config.particles
        draws = Predictive(self.model.sample_prior, num_samples=2 * n)(key)
        values = {p: draws[p] for p in PARAMS}
        z = jax.vmap(lambda v: unconstrain_fn(self._sampled, (err, mask, mag, astrometry), {}, v))(values)
        flat = jax.vmap(lambda v: ravel_pytree(v)[0])(z)
        unravel = ravel_pytree(jax.tree.map(lambda a: a[0], z))[1]
        valid = jnp.isfinite(jax.vmap(lambda x: -self._prior_potential(unravel(x)))(flat))
        order = jnp.argsort(~valid, stable=True)  # valid draws first, in draw order
        return flat[order[:n]], unravel

    def _run_star(self, key, err, mask, mag, astrometry):
        cfg = self.config
        k_init, k_loop = jax.random.split(key)
        x0, unravel = self._initial_particles(k_init, err, mask, mag, astrometry)
        log_prior, log_likelihood = self._densities(err, mask, mag, astrometry, unravel)

        def body(carry: _Carry) -> _Carry:
            """Reweight to the next λ (chosen on these particles so that their ESS is ``target_ess``), then
            resample and move under it; once λ = 1, a resample-move at the posterior itself."""
            key, k_move = jax.random.split(carry.key)
            particles, lam = carry.state.particles, carry.state.tempering_param
            log_lik = jax.vmap(log_likelihood)(particles)
            delta, log_w = tempering_increment(log_lik, 1.0 - lam, cfg.target_ess)
            weights = jnp.where(jnp.any(jnp.isfinite(log_w)), jax.nn.softmax(log_w), 1.0 / cfg.particles)
            mean = weights @ particles
            centred = particles - mean
            inv_mass = (weights[:, None] * centred).T @ centred + 1e-8 * jnp.eye(particles.shape[1])
            params = extend_params({"step_size": carry.step_size, "inverse_mass_matrix": inv_mass,
                                    "num_integration_steps": cfg.integration_steps})
            move = blackjax.tempered_smc(log_prior, log_likelihood, blackjax.hmc.build_kernel(), blackjax.hmc.init,
                                         params, resampling.systematic, num_mcmc_steps=cfg.mutation_steps)
            reweighted = TemperedSMCState(particles, weights, lam + delta)
            state, info = move.step(k_move, reweighted, lam + delta)  # resample by `weights`, move under λ + δ
            acc = jnp.mean(info.update_info.acceptance_rate)
            step_size = carry.step_size * jnp.clip(jnp.exp(2.0 * (acc - TARGET_ACCEPT)), 0.5, 2.0)
            step_size = jnp.where(jnp.isfinite(step_size), step_size, 0.5 * carry.step_size)
            was_at_posterior = lam >= 1.0
            at_posterior = state.tempering_param >= 1.0
            first_move = at_posterior & ~was_at_posterior
            increment = jax.scipy.special.logsumexp(log_w) - jnp.log(cfg.particles)
            return _Carry(
                state, key, step_size, carry.n_steps + ~was_at_posterior, carry.n_final + at_posterior,
                carry.log_evidence + jnp.where(was_at_posterior, 0.0, increment),
                jnp.where(was_at_posterior, carry.ess, smc_ess(log_w)),
                jnp.where(first_move, _distinct(info.ancestors) / cfg.particles, carry.diversity),
                jnp.where(at_posterior, acc, carry.acceptance),
                jnp.where(at_posterior, carry.kept.at[jnp.minimum(carry.n_final, cfg.final_moves - 1)].set(
                    state.particles), carry.kept))

        def unfinished(carry: _Carry):  # a run that reached λ = 1 always makes its final moves
            at_posterior = carry.state.tempering_param >= 1.0
            return (carry.n_final < cfg.final_moves) & ((carry.n_steps < cfg.max_steps) | at_posterior)

        start = _Carry(blackjax.tempered_smc.init(x0), k_loop, jnp.asarray(0.5), jnp.asarray(0),
                       jnp.asarray(0), jnp.asarray(0.0), jnp.asarray(float(cfg.particles)), jnp.asarray(jnp.nan),
                       jnp.asarray(jnp.nan), jnp.zeros((cfg.final_moves,) + x0.shape))
        end = jax.lax.while_loop(unfinished, body, start)
        # a star that ran out of steps keeps its last (tempered) particles, flagged by its final λ
        kept = jnp.where(end.n_final > 0, end.kept, jnp.broadcast_to(end.state.particles, end.kept.shape))
        z = jax.vmap(unravel)(jnp.swapaxes(kept, 0, 1).reshape(-1, x0.shape[1]))  # particle-major
        params = jax.vmap(self._constrain(err, mask, mag, astrometry))(z)
        return {"params": {p: params[p] for p in PARAMS}, "log_evidence": end.log_evidence, "n_steps": end.n_steps,
                "tempering": end.state.tempering_param, "ess": end.ess, "diversity": end.diversity,
                "acceptance": end.acceptance}

    def _run_one(self, key, err, mask, mag, astrometry) -> dict:
        """One star's ``SMCDraws`` fields (per run; all but ``seconds`` and ``config``), with theta_mas."""
        k_smc, k_theta = jax.random.split(key)
        runs = jax.random.split(k_smc, self.config.runs)
        out = jax.vmap(lambda k: self._run_star(k, err, mask, mag, astrometry))(runs)
        out["params"].update(exact_theta(k_theta, self.model, out["params"], err, mask, mag, astrometry))
        return out

    # -- many stars ---------------------------------------------------------------
    def sample(self, key, err, mask, mag, progress: bool = True, astrometry=None) -> SMCDraws:
        """Sample every star (rows of err/mask/mag; absent bands may hold NaN); ``astrometry`` (star, 4):
        parallaxes and dust-map values (``model.astrometry``), or None."""
        out, seconds = sample_in_chunks(self._compiled, key, err, mask, mag, self.config.stars_per_call, "SMC",
                                        progress, astrometry, batch=self.config.batch)
        params = out.pop("params")
        stats = {name: v.astype(int if name == "n_steps" else float) for name, v in out.items()}
        return SMCDraws(params, **stats, seconds=seconds, config=self.config)

    def compile(self, err, mask, mag, astrometry=None) -> float:
        """Compile the program ``sample`` runs on these stars (typed keys, ``astrometry`` given or not as
        here), without running it; seconds taken."""
        return compile_ahead(self._compiled, jax.random.key(0), err, mask, mag, self.config.stars_per_call,
                             astrometry)

    def with_config(self, **changes) -> SMCSampler:
        return SMCSampler(self.model, replace(self.config, **changes))


def tempering_increment(log_lik: jax.Array, max_delta, target_ess: float) -> tuple[jax.Array, jax.Array]:
    """The next increment δ ≤ ``max_delta`` of the tempering and its log-weights δ · log L.

    δ is the root of ESS(δ) = ``target_ess`` × (particles with L > 0), by BlackJAX's dichotomy on the
    weight update's own sign (blackjax#914). Particles with L = 0 (log L = -inf: outside the grid, or
    a likelihood that underflows) get weight 0 at every δ > 0 and are dropped by the resampling; their
    share enters the evidence through the weights' mean. Counting the target against all particles
    instead leaves no root when most prior draws have L = 0, and BlackJAX's solver then returns δ = 0,
    whose weights 0 · (-inf) are NaN: the collapse seen on 6 of 200 simulated stars (2026-11-30).
    At δ = 0 (the posterior reached) the weights are uniform over the particles with L > 0.
    """
    alive = jnp.isfinite(log_lik)
    finite = jnp.where(alive, log_lik, 0.0)
    target = jnp.log(target_ess * jnp.maximum(jnp.sum(alive), 1))

    def excess(delta):
        return log_ess(jnp.where(alive, delta * finite, -jnp.inf)) - target

    delta = jnp.where(max_delta > 0, dichotomy(excess, 0.0, max_delta), 0.0)
    delta = jnp.clip(jnp.nan_to_num(delta), 0.0, max_delta)
    return delta, jnp.where(alive, delta * finite, -jnp.inf)


def _distinct(indices: jax.Array) -> jax.Array:
    """Number of distinct values in an integer array."""
    s = jnp.sort(indices)
    return 1 + jnp.sum(s[1:] != s[:-1])
