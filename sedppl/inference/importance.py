"""Importance sampling: NPE proposals reweighted to the model's exact posterior, with PSIS.

For each star the trained flow proposes draws x_i of the five parameters with
their log q(x_i) from ``sample_and_log_prob`` (every change-of-variables term
included). Rejecting draws in grid holes restricts q to the validity region,
which changes it only by a per-star constant, and self-normalised weights
ignore constants. The target is the one log-joint of the scale-marginalised
model (``generative.log_joint``) under whatever prior the caller gives: so a
prior can be swapped without retraining, as long as the proposals still cover
the new posterior -- which k̂ and the ESS say, star by star.

Pareto smoothing (PSIS; Vehtari et al. 2024) stabilises the weights, and its
k̂ flags stars whose estimate cannot be trusted. The outputs are equal-weight
draws resampled from the smoothed weights, each with its angular diameter
drawn from its exact conditional under the target.
"""

from __future__ import annotations

import dataclasses

import time
from dataclasses import dataclass, field
from functools import partial

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from blackjax.diagnostics import psis_weights
from jaxtyping import Array, Float, Int, PRNGKeyArray
from tqdm.auto import tqdm

from ..model.forward import PARAMS
from ..model.generative import SEDModel, log_joint
from .npe.card import ModelMismatchError
from .batching import chunks, exact_theta, fold_rows, over_stars, resolve_batch, row_keys
from .npe.estimator import fill_absent
from .npe.posterior import NPEPosterior

INFLATE = 1.5  # an adapted component's scale over the weighted spread it was fitted to
# each rescue's fold of the star's key: streams of their own (io.fit folds 2 for the fallback, 3 and 7 elsewhere)
RESCUE_STREAMS = (1, 4)


@dataclass(frozen=True)
class ISConfig:
    """Proposals per round, adaptation, equal-weight draws kept, and when to distrust the result."""

    proposals: int = 1000  # per round
    draws: int = 1000  # equal-weight draws resampled from the final round
    # 0: the NPE's own draws, reliable for ~95% of survey stars (BENCHMARKS.md, whole process); the rest are rescued
    adapt_rounds: int = 0
    rescue_rounds: int = 8  # stars unreliable after adapt_rounds start again with this many (0: never)
    # stars still unreliable after the rescue run it once more with this many times the proposals per round
    # (1: never); chunks then hold proportionally fewer stars
    wider_rescue: int = 4
    defensive: float = 0.1  # weight of the NPE itself in each adapted mixture
    df: float = 5.0  # Student-t degrees of freedom of the adapted component
    khat_max: float = 0.7  # PSIS reliability threshold (Vehtari et al. 2024: ~0.7 for 1000 draws)
    min_ess: float = 100.0  # fewer effective draws than this cannot describe a 5-d posterior
    stars_per_call: int = 16  # each proposal costs a spectrum evaluation: keep chunks modest
    batch: str = "auto"  # "map" (stars one after another: CPU), "vmap" (side by side, padded: GPU) or "auto"

    def __post_init__(self):
        if self.proposals < 25 or self.draws < 1:
            raise ValueError(f"need proposals >= 25 (PSIS fits a tail) and draws >= 1, got {self.proposals}, {self.draws}")
        if not 0 < self.defensive <= 1:
            raise ValueError(f"defensive must be in (0, 1], got {self.defensive}")
        if self.rescue_rounds and self.rescue_rounds <= self.adapt_rounds:
            raise ValueError(f"rescue_rounds must exceed adapt_rounds ({self.adapt_rounds}) or be 0, got {self.rescue_rounds}")
        if self.wider_rescue < 1:
            raise ValueError(f"wider_rescue must be >= 1 (1: no wider rescue), got {self.wider_rescue}")

    def trusts(self, khat, ess):
        """Whether weights with this k̂ and ESS can be trusted (elementwise): both within the limits."""
        return (khat <= self.khat_max) & (ess >= self.min_ess)

    def rescues(self) -> list[tuple[int, int]]:
        """(adaptation rounds, proposals per round) of each rescue, in order: each reruns the stars still
        unreliable after the one before."""
        if not self.rescue_rounds:
            return []
        wider = [(self.rescue_rounds, self.wider_rescue * self.proposals)] if self.wider_rescue > 1 else []
        return [(self.rescue_rounds, self.proposals)] + wider


@dataclass
class ISDraws:
    """Importance-sampling results for a batch of stars (leading axis: star)."""

    params: dict[str, np.ndarray]  # equal-weight draws, (star, 1, draw), theta_mas included
    # (star, proposal, 5) final-round proposals: ``config.proposals`` of them, for a star of the wider rescue
    # the first of its final round (i.i.d. draws of the same mixture, so still fit to reweight)
    x: np.ndarray
    log_q: np.ndarray  # (star, proposal) their proposal log density
    log_weights: np.ndarray  # (star, proposal) Pareto-smoothed, normalised over the proposals kept
    khat: np.ndarray  # (star,) final round
    ess: np.ndarray  # (star,) effective sample size of the final smoothed weights (of all the round's proposals)
    khat_npe: np.ndarray  # (star,) k̂ of the NPE's own draws: how good the flow alone is
    ess_npe: np.ndarray  # (star,)
    n_rejected: np.ndarray  # (star,) final proposals in holes of the validity region (zero weight)
    log_evidence: np.ndarray  # (star,) log p(mag | target) from the final round's raw weights (``log_mean_ratio``)
    seconds: np.ndarray  # (star,)
    rounds: np.ndarray  # (star,) adaptation rounds behind the result: adapt_rounds, or rescue_rounds if rescued
    proposals: np.ndarray  # (star,) proposals per round behind the result: more for a star of the wider rescue
    config: ISConfig = field(default_factory=ISConfig)

    @property
    def ess_per_draw(self) -> np.ndarray:
        return self.ess / self.proposals

    @property
    def reliable(self) -> np.ndarray:
        """Stars whose weights can be trusted: k̂ and ESS both within the configured limits."""
        return self.config.trusts(self.khat, self.ess)


def smoothed_weights(log_ratios: Float[Array, " n"]) -> tuple[Array, Array, Array]:
    """PSIS of one star's log importance ratios -> (normalised log weights, k̂, ESS).

    Ratios of -inf (proposals outside the target's support) get zero weight; if
    every ratio is -inf, the weights are uniform, k̂ = inf and ESS = 0. When too few
    ratios are finite to fit the tail, PSIS returns k̂ = nan; that is reported as
    inf (unreliable), never as a missing value.
    """
    log_ratios = jnp.where(jnp.isnan(log_ratios), -jnp.inf, log_ratios)
    any_finite = jnp.any(jnp.isfinite(log_ratios))
    log_w, khat = psis_weights(jnp.where(any_finite, log_ratios, 0.0))
    ess = 1.0 / jnp.sum(jnp.exp(2.0 * log_w))
    khat = jnp.where(any_finite & ~jnp.isnan(khat), khat, jnp.inf)
    return log_w, khat, jnp.where(any_finite, ess, 0.0)


def resample(key: PRNGKeyArray, log_w: Float[Array, " n"], draws: int) -> Int[Array, " draws"]:
    """``draws`` indices drawn independently with probabilities ``exp(log_w)`` (normalised or not; NaN is
    zero): what ``jax.random.categorical(key, log_w, shape=(draws,))`` draws, by inverse CDF.

    ``categorical`` draws a Gumbel variate per index and draw (10^6 for 1000 x 1000), which cost three
    quarters of an NPE-IS star on a CPU (BENCHMARKS.md); uniforms and one ``searchsorted`` cost almost nothing.
    """
    return pick(log_w, jax.random.uniform(key, (draws,)))


def pick(log_w: Float[Array, " n"], u: Float[Array, " m"]) -> Int[Array, " m"]:
    """The index whose slice of the cumulative weights holds each ``u`` in [0, 1) (``resample``'s step). A
    pick never lands on a zero weight, whatever the order in which a device sums the cumulative weights:
    a zero-weight index is moved down to the nearest positive one (up for a leading run). Every weight zero
    gives index 0 (``smoothed_weights`` never passes that: it makes such weights uniform)."""
    log_w = jnp.where(jnp.isnan(log_w), -jnp.inf, log_w)
    w = jnp.exp(log_w - jnp.max(log_w))
    cdf = jnp.cumsum(w)
    at = jnp.minimum(jnp.searchsorted(cdf, u.astype(cdf.dtype) * cdf[-1], side="right"), w.shape[0] - 1)
    return nearest_positive(at, w)


def nearest_positive(at: Int[Array, " m"], w: Float[Array, " n"]) -> Int[Array, " m"]:
    """Each index ``at``, or where its weight is zero the nearest index below with a positive weight (above,
    for the zero weights before the first positive one)."""
    positive_at_or_below = jax.lax.cummax(jnp.where(w > 0, jnp.arange(w.shape[0]), -1))
    return jnp.maximum(positive_at_or_below[at], jnp.argmax(w > 0))


def log_mean_ratio(log_ratios: Float[Array, " n"]) -> Array:
    """log of the mean importance ratio: an unbiased estimate of the target's evidence p(mag) (in the log, a
    slight underestimate), since the proposal is a normalised density. The prior in the target is not
    renormalised to the library's validity region, so the evidence is relative to the one prior, as if the
    likelihood were zero where the library has no model: comparable across libraries as it stands. Its
    error is small only where k̂ is."""
    log_ratios = jnp.where(jnp.isnan(log_ratios), -jnp.inf, log_ratios)
    return jax.nn.logsumexp(log_ratios) - jnp.log(log_ratios.shape[0])


def log_ratios(target: SEDModel, x: Float[Array, "n 5"], log_q: Float[Array, " n"], mag_err, mask, mag,
               astrometry=None) -> Array:
    """log p(x, mag) - log q(x) of one star's proposals under the target's scale-marginalised log-joint
    (-inf in holes of the validity region and outside the target prior's support). With ``astrometry``
    the target is the model with the star's parallax: a change of target the NPE was not trained on."""
    joint = jax.vmap(lambda v: log_joint(target, dict(zip(PARAMS, v)), mag_err, mask, mag, astrometry))(x)
    return joint - log_q


def check_coverage(proposal: SEDModel, target: SEDModel) -> None:
    """Refuse a target whose prior reaches outside the proposal's support box: IS cannot reach there.

    A narrower or differently shaped prior is fine, and so is another atmosphere library (a change of
    target like a prior swap: the weights correct the proposals, k̂ says where they cannot); a wider
    prior needs retraining.
    """
    box, new = proposal.support(), target.support()
    outside = [f"{p} [{new[p][0]:g}, {new[p][1]:g}] vs [{box[p][0]:g}, {box[p][1]:g}]" for p in PARAMS
               if new[p][0] < box[p][0] - 1e-9 or new[p][1] > box[p][1] + 1e-9]
    if outside:
        raise ModelMismatchError(
            "the target prior reaches outside the NPE's training box, where it never proposes: "
            + "; ".join(outside) + ". Retrain under a prior that covers it, or narrow the prior.")


class _BaseMixture(eqx.Module):
    """Proposal in the flow's base space: the flow's own Gaussian (weight ``defensive``) mixed with
    equal shares of the Student t components fitted in earlier rounds (none in round 0).

    The components live in fixed-size arrays of which the first ``count`` are in use, so that every
    round has the same shapes and one compiled loop body serves any number of rounds.
    """

    loc: Array
    scale: Array
    t_loc: Float[Array, "k d"]
    t_tril: Float[Array, "k d d"]
    count: Int[Array, ""]  # components fitted so far
    df: float = eqx.field(static=True)
    defensive: float = eqx.field(static=True)

    @classmethod
    def flow_only(cls, loc, scale, capacity: int, df: float, defensive: float) -> _BaseMixture:
        """The flow's base Gaussian alone, with room for ``capacity`` adapted components."""
        d = loc.shape[0]
        return cls(loc, scale, jnp.zeros((capacity, d), loc.dtype),
                   jnp.broadcast_to(jnp.eye(d, dtype=loc.dtype), (capacity, d, d)),
                   jnp.zeros((), jnp.int32), df, defensive)

    def sample(self, key, n: int) -> Array:
        k_which, k_base, k_t, k_chi2, k_use = jax.random.split(key, 5)
        z = self.loc + self.scale * jax.random.normal(k_base, (n, self.loc.shape[0]), self.loc.dtype)
        if self.t_loc.shape[0] == 0:
            return z
        which = jax.random.randint(k_which, (n,), 0, jnp.maximum(self.count, 1))
        # a multivariate t: a Gaussian draw over the square root of an independent chi2/df
        eps = jax.random.normal(k_t, (n, self.loc.shape[0]), self.loc.dtype)
        chi2_per_df = 2.0 * jax.random.gamma(k_chi2, 0.5 * self.df, (n,), self.loc.dtype) / self.df
        t_draws = self.t_loc[which] + jnp.einsum("nij,nj->ni", self.t_tril[which], eps) / jnp.sqrt(chi2_per_df)[:, None]
        use_t = (jax.random.uniform(k_use, (n,)) >= self.defensive) & (self.count > 0)
        return jnp.where(use_t[:, None], t_draws, z)

    def log_prob(self, z) -> Array:
        base = jnp.sum(jax.scipy.stats.norm.logpdf(z, self.loc, self.scale), axis=-1)
        if self.t_loc.shape[0] == 0:
            return base
        log_t = dist.MultivariateStudentT(self.df, self.t_loc, self.t_tril).log_prob(z[:, None, :])
        active = jnp.arange(self.t_loc.shape[0]) < self.count
        log_t = jax.nn.logsumexp(jnp.where(active, log_t, -jnp.inf), axis=-1) - jnp.log(jnp.maximum(self.count, 1))
        mixed = jnp.logaddexp(jnp.log(self.defensive) + base, jnp.log1p(-self.defensive) + log_t)
        return jnp.where(self.count > 0, mixed, base)

    def adapted(self, z, log_w, ess) -> _BaseMixture:
        """This mixture plus a Student t fitted to one round's weighted draws (scale inflated)."""
        w = jnp.exp(log_w)
        mean = w @ z
        centred = z - mean
        cov = (centred * w[:, None]).T @ centred + 1e-6 * jnp.eye(z.shape[1])
        tril = jnp.linalg.cholesky(INFLATE**2 * cov)
        # with about one effective draw there is no spread to fit: keep the flow's scale around it
        usable = (ess > 1.5) & jnp.all(jnp.isfinite(tril))
        tril = jnp.where(usable, tril, jnp.diag(self.scale))
        mean = jnp.where(ess > 0, mean, self.loc)
        return eqx.tree_at(lambda m: (m.t_loc, m.t_tril, m.count), self,
                           (self.t_loc.at[self.count].set(mean), self.t_tril.at[self.count].set(tril), self.count + 1))


class ImportanceSampler:
    """NPE proposals (adapted where asked, or where a star needs the rescue) reweighted to ``target``'s
    posterior, for many stars at once.

    Round 0 draws from the flow itself. Each adaptation round fits a Student t
    (in the flow's base space, so on the flow's geometry) to the weighted
    draws of the previous round and proposes from a mixture of it and the
    flow; the last round's draws, weighted by the mixture's exact density, are
    the result. With ``adapt_rounds=0`` the NPE draws alone are the proposals.
    An NPE that is broad but well placed -- as a CPU-trained one is on
    well-measured stars -- becomes an exact posterior in a round or two.
    """

    def __init__(self, posterior: NPEPosterior, proposal: SEDModel, target: SEDModel, config: ISConfig = ISConfig()):
        if not target.marginalize_scale:
            target = dataclasses.replace(target, marginalize_scale=True)
        check_coverage(proposal, target)
        if target.bands != proposal.bands:
            raise ModelMismatchError(f"target bands {target.bands} differ from the NPE's {proposal.bands}")
        self.posterior, self.target, self.config = posterior, target, config
        self.batch = resolve_batch(config.batch)
        # one program per number of proposals, for the first pass and the rescues: the rounds are an argument
        self.capacity = max(config.adapt_rounds, config.rescue_rounds)
        self._programs: dict[int, object] = {}

    def _program(self, proposals: int):
        if proposals not in self._programs:
            self._programs[proposals] = eqx.filter_jit(over_stars(partial(self._star, proposals), self.batch))
        return self._programs[proposals]

    def _round(self, key, mixture: _BaseMixture, proposals: int, condition, err, mask, mag, astrometry):
        z = mixture.sample(key, proposals)
        x, log_det = self.posterior.push(z, condition)
        log_q = mixture.log_prob(z) - log_det
        ratios = log_ratios(self.target, x, log_q, err, mask, mag, astrometry)
        log_w, khat, ess = smoothed_weights(ratios)
        return z, x, log_q, log_w, khat, ess, log_mean_ratio(ratios)

    def _star(self, proposals: int, key, err, mask, mag, astrometry, rounds) -> dict:
        """One star: round 0 from the flow, then ``rounds`` (traced) adapted rounds of ``proposals`` each;
        resampled draws (``kept``, and ``sizes`` from theta's exact conditional) and the final round as
        ``ISDraws`` names it (its first ``config.proposals``)."""
        cfg, (loc, scale) = self.config, self.posterior.base_loc_scale()
        condition = self.posterior.summary(err, mask, mag)
        mixture = _BaseMixture.flow_only(loc, scale, self.capacity, cfg.df, cfg.defensive)
        k_rounds, k_pick, k_theta = jax.random.split(key, 3)
        first = self._round(jax.random.fold_in(k_rounds, 0), mixture, proposals, condition, err, mask, mag, astrometry)

        def adapt(r, carry):
            mixture, (z, _, _, log_w, _, ess, _) = carry
            mixture = mixture.adapted(z, log_w, ess)
            return mixture, self._round(jax.random.fold_in(k_rounds, r + 1), mixture, proposals, condition, err,
                                        mask, mag, astrometry)

        khat_npe, ess_npe = first[4:6]  # the flow's own draws: how good the NPE is alone
        last = jax.lax.fori_loop(0, rounds, adapt, (mixture, first))[1] if self.capacity else first
        z, x, log_q, log_w, khat, ess, log_evidence = last
        picks = resample(k_pick, log_w, cfg.draws)
        kept = x[picks]
        sizes = exact_theta(k_theta, self.target, dict(zip(PARAMS, kept.T)), err, mask, mag, astrometry)
        n_rejected = jnp.sum(~jax.vmap(self.target.forward.in_grid)(x))
        stored = cfg.proposals
        if proposals > stored:  # the first of an i.i.d. round: the same proposal density, weights renormalised
            total = jax.nn.logsumexp(log_w[:stored])
            x, log_q = x[:stored], log_q[:stored]
            log_w = jnp.where(jnp.isfinite(total), log_w[:stored] - total, log_w[:stored])  # all -inf: kept so
        return {"kept": kept, "sizes": sizes, "x": x, "log_q": log_q, "log_weights": log_w, "khat": khat, "ess": ess,
                "khat_npe": khat_npe, "ess_npe": ess_npe, "n_rejected": n_rejected, "log_evidence": log_evidence}

    def sample(self, key, err, mask, mag, progress: bool = True, astrometry=None) -> ISDraws:
        """Proposals (adapted for ``adapt_rounds`` rounds, or the rescues'), PSIS weights, k̂, ESS and resampled
        equal-weight draws for every row.

        Stars whose weights are unreliable after ``adapt_rounds`` are sampled again, with fresh keys, with
        ``rescue_rounds``; those still unreliable, once more with ``wider_rescue`` times the proposals
        (``ISConfig.rescues``). Only they pay for it, and each rerun replaces the run before whatever its
        outcome (no choosing between runs by their diagnostics). ``astrometry`` (star, 4): parallaxes and
        dust-map values (``model.astrometry``) that change the target, or None.
        """
        err, mask, mag = fill_absent(err, mask, mag)
        cfg, n = self.config, len(mag)
        keys = row_keys(key, n)
        out, seconds = self._sample_rows(keys, err, mask, mag, astrometry, np.arange(n), cfg.adapt_rounds,
                                         cfg.proposals, progress, "npe-is")
        rounds, proposals = np.full(n, cfg.adapt_rounds), np.full(n, cfg.proposals)
        for stream, (n_rounds, n_proposals) in zip(RESCUE_STREAMS, cfg.rescues()):
            unreliable = np.flatnonzero(~cfg.trusts(out["khat"], out["ess"]))
            if not unreliable.size:
                break
            again, more = self._sample_rows(fold_rows(keys[unreliable], stream), err, mask, mag, astrometry, unreliable,
                                            n_rounds, n_proposals, progress,
                                            f"npe-is, {n_rounds} rounds of {n_proposals} proposals")
            for a, b in zip(jax.tree.leaves(out), jax.tree.leaves(again)):
                a[unreliable] = b
            seconds[unreliable] += more
            rounds[unreliable], proposals[unreliable] = n_rounds, n_proposals
        kept, sizes = out.pop("kept"), out.pop("sizes")
        params = {p: kept[:, None, :, i] for i, p in enumerate(PARAMS)}
        params.update({name: v[:, None, :] for name, v in sizes.items()})
        stats = out | {name: out[name].astype(float) for name in ("khat", "ess", "khat_npe", "ess_npe", "log_evidence")}
        stats["n_rejected"] = out["n_rejected"].astype(int)
        return ISDraws(params, **stats, seconds=seconds, rounds=rounds, proposals=proposals, config=cfg)

    def _sample_rows(self, keys, err, mask, mag, astrometry, rows, rounds: int, proposals: int, progress: bool,
                     desc: str) -> tuple[dict, np.ndarray]:
        """The given rows (``keys``: one per row) with ``rounds`` adapted rounds of ``proposals`` each, in padded
        chunks: each output stacked over those rows, and seconds per row (``batching.chunks``: one shape,
        compiled once per number of proposals)."""
        run, out = self._program(proposals), []
        seconds = np.zeros(len(rows))
        per_call = max(1, self.config.stars_per_call * self.config.proposals // proposals)  # the same memory per call
        with tqdm(total=len(rows), desc=desc, unit="star", disable=not progress) as bar:
            for chunk, slots, valid, positions in chunks(len(rows), per_call):
                t0 = time.perf_counter()
                at = rows[slots]
                values = run(valid, keys[slots], err[at], mask[at], mag[at],
                             None if astrometry is None else np.asarray(astrometry)[at],
                             np.full(len(at), rounds, np.int32))
                out.append(jax.tree.map(lambda a: np.asarray(a)[positions], values))
                seconds[chunk] = (time.perf_counter() - t0) / len(chunk)
                bar.update(len(chunk))
        return jax.tree.map(lambda *a: np.concatenate(a), *out), seconds
