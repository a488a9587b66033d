"""Posterior draws from a trained NPE model for a catalog: rejection of grid holes, exact scale.

For each star the flow draws the five parameters (inside the prior's box by
construction); draws outside the grid's validity region are rejected and
counted, and replaced by further draws. The angular diameter of each kept
draw comes from its exact conditional (``generative.sample_log10_theta``).
"""

from __future__ import annotations

import dataclasses

import time
from dataclasses import dataclass

import equinox as eqx
import jax
import numpy as np
from tqdm.auto import tqdm

from ...model.forward import PARAMS
from ...model.generative import SEDModel, sample_log10_theta
from ..batching import chunks, fold_rows, over_stars, resolve_batch, row_keys
from .posterior import NPEPosterior

OVERDRAW = 1.25  # draws per wanted draw in the first round; more rounds only for stars that need them


@dataclass
class NPEProposals:
    """Flow draws of the five parameters inside the validity region, per star."""

    x: np.ndarray  # (star, draw, 5) in PARAMS order
    log_q: np.ndarray  # (star, draw) log density of the flow at each draw (every Jacobian term included)
    n_rejected: np.ndarray  # (star,) draws that fell in holes of the validity region
    seconds: np.ndarray  # (star,)


@dataclass
class NPEDraws:
    """Draws of a batch of stars (leading axis: star); params shaped (star, 1, draw) like one chain."""

    params: dict[str, np.ndarray]  # includes theta_mas
    log_q: np.ndarray  # (star, draw) log density of the flow at the kept draws (five parameters)
    n_rejected: np.ndarray  # (star,) draws that fell in holes of the validity region
    seconds: np.ndarray  # (star,)


class NPEEstimator:
    """Sample a trained ``NPEPosterior`` for many stars under the model it was trained for."""

    def __init__(self, posterior: NPEPosterior, model: SEDModel, draws: int = 1000, stars_per_call: int = 64,
                 batch: str = "auto"):
        if not model.marginalize_scale:
            model = dataclasses.replace(model, marginalize_scale=True)
        self.posterior, self.model = posterior, model
        self.draws, self.stars_per_call = draws, stars_per_call
        self.batch = resolve_batch(batch)  # stars one after another (CPU) or side by side (GPU)
        self._round = eqx.filter_jit(self._round_batch)
        self._theta = jax.jit(over_stars(self._theta_star, self.batch))

    def _round_star(self, key, n, err, mask, mag):
        x, log_q = self.posterior.sample_and_log_prob(key, n, err, mask, mag)
        return x, log_q, jax.vmap(self.model.forward.in_grid)(x)

    def _round_batch(self, valid, keys, err, mask, mag, n: int):
        return over_stars(lambda *a: self._round_star(a[0], n, *a[1:]), self.batch)(valid, keys, err, mask, mag)

    def _theta_star(self, key, x, err, mask, mag):
        keys = jax.random.split(key, x.shape[0])
        return jax.vmap(lambda k, p: sample_log10_theta(k, self.model, p, err, mask, mag))(keys, x)

    def propose(self, key, err, mask, mag, progress: bool = True, desc: str = "NPE") -> NPEProposals:
        """``draws`` valid draws of the five parameters per star, with their log q (rows of
        err/mask/mag; absent bands may hold NaN). These are the importance sampler's proposals."""
        err, mask, mag = fill_absent(err, mask, mag)
        n, size, want = len(mag), self.stars_per_call, self.draws
        x_all = np.zeros((n, want, len(PARAMS)), np.float32)
        log_q, rejected, seconds = np.zeros((n, want), np.float32), np.zeros(n, int), np.zeros(n)
        keys = row_keys(key, n)
        with tqdm(total=n, desc=desc, unit="star", disable=not progress) as bar:
            for rows, slots, valid, positions in chunks(n, size):
                t0 = time.perf_counter()
                self._fill(valid, keys[slots], err[slots], mask[slots], mag[slots], rows, positions, x_all, log_q,
                           rejected)
                seconds[rows] = (time.perf_counter() - t0) / len(rows)
                bar.update(len(rows))
        return NPEProposals(x_all, log_q, rejected, seconds)

    def sample(self, key, err, mask, mag, progress: bool = True) -> NPEDraws:
        """Posterior draws per star: the proposals, each with its angular diameter drawn exactly."""
        keys = row_keys(key, len(np.asarray(mag)))
        proposals = self.propose(fold_rows(keys, 0), err, mask, mag, progress)
        err, mask, mag = fill_absent(err, mask, mag)
        n, size = len(mag), self.stars_per_call
        log10_theta = np.zeros(proposals.log_q.shape, np.float32)
        keys = fold_rows(keys, 1)
        for rows, slots, valid, positions in chunks(n, size):
            t0 = time.perf_counter()
            theta = self._theta(valid, keys[slots], proposals.x[slots], err[slots], mask[slots], mag[slots])
            log10_theta[rows] = np.asarray(theta)[positions]
            proposals.seconds[rows] += (time.perf_counter() - t0) / len(rows)
        params = {p: proposals.x[:, None, :, i] for i, p in enumerate(PARAMS)}
        params["theta_mas"] = (10.0**log10_theta)[:, None, :]
        return NPEDraws(params, proposals.log_q, proposals.n_rejected, proposals.seconds)

    def _fill(self, valid, keys, err, mask, mag, rows, positions, x_all, log_q, rejected):
        """Draw rounds until every star of the chunk has ``draws`` valid draws."""
        want, per_round = self.draws, int(np.ceil(OVERDRAW * self.draws))
        filled = np.zeros(len(rows), int)
        for attempt in range(100):
            if np.all(filled >= want):
                return
            round_keys = jax.vmap(lambda k: jax.random.fold_in(k, attempt))(keys)
            needed = valid.copy()
            needed[positions[filled >= want]] = False  # stars already filled are skipped ("map") in later rounds
            x, lq, ok = (np.asarray(a)[positions] for a in self._round(needed, round_keys, err, mask, mag, per_round))
            for j in np.nonzero(filled < want)[0]:
                good = np.nonzero(ok[j])[0]
                rejected[rows[j]] += int(np.sum(~ok[j]))
                take = good[: want - filled[j]]
                x_all[rows[j], filled[j] : filled[j] + len(take)] = x[j, take]
                log_q[rows[j], filled[j] : filled[j] + len(take)] = lq[j, take]
                filled[j] += len(take)
        raise RuntimeError(f"NPE draws of stars {rows[filled < want].tolist()} keep falling outside the validity region")


def fill_absent(err, mask, mag):
    """Absent bands get harmless placeholders (they are masked everywhere downstream)."""
    err, mask, mag = (np.asarray(a) for a in (err, mask, mag))
    mask = mask.astype(bool)
    return np.where(mask, err, 1.0), mask, np.where(mask, mag, 0.0)
