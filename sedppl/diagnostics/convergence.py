"""Per-star MCMC diagnostics via ArviZ: rank-normalised R-hat, bulk and tail ESS, divergences, tree depth.

Given the chains' modes and weights (``inference.modes``), R-hat is computed
within each mode (split R-hat for a mode with one chain) and the worst mode
counts: chains in separate modes are not a convergence failure once each
mode carries its own mass. The ESS is that of the mode-weighted estimate,
1 / sum_m (W_m^2 / ESS_m) over modes of mass W_m. Without modes (all chains
one mode) both are ArviZ's usual multi-chain numbers.

A star *fails* when its worst R-hat exceeds ``rhat_max`` (1.01), its smallest
bulk or tail ESS is under ``ess_min`` (400), it has any divergent
transition, or (with several modes) the importance ratios behind the mode
weights have k̂ above ``mode_khat_max``. Failures are flagged, never dropped.

Given each draw's log-density, ``logp_gap`` is how far the worst chain's mean
log-density trails the best chain's. Chains in one mode differ by about a
nat; a chain more than ``STUCK_GAP`` nats behind sits in a far less probable
mode than the best chain found (the 200-star SBC found such a chain in 42 of
the 51 stars with R-hat > 1.2), which the flag then says.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import arviz_stats as azs
import numpy as np


MULTIMODAL_RHAT = 1.2  # above this, chains usually sit in separate modes rather than mix slowly
STUCK_GAP = 10.0  # nats: a chain's mean log-density this far below the best chain's means a lesser mode


@dataclass(frozen=True)
class ConvergenceCriteria:
    rhat_max: float = 1.01
    ess_min: float = 400.0
    max_divergent: int = 0
    mode_khat_max: float = 0.7  # PSIS threshold for the importance ratios behind the mode weights


def _worst(values: np.ndarray, fill: float, worst=np.nanmax) -> float:
    return float(worst(values)) if np.isfinite(values).any() else fill


def mode_rhat_ess(draws: np.ndarray, mode: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per parameter: worst within-mode R-hat, and bulk and tail ESS of the mode-weighted estimate.
    ``draws`` (chain, draw, n_param); ``mode`` and ``weight`` (chain,)."""
    rhat, inv_bulk, inv_tail = [], 0.0, 0.0
    for m in np.unique(mode):
        chains = draws[mode == m]
        mass = float(np.sum(weight[mode == m]))
        if len(chains) == 1:  # ArviZ needs two chains: split the mode's one chain in halves ourselves
            half = chains.shape[1] // 2
            split = np.stack([chains[0, :half], chains[0, half:2 * half]])
            rhat.append(np.asarray(azs.rhat(split, chain_axis=0, draw_axis=1)))
        else:
            rhat.append(np.asarray(azs.rhat(chains, chain_axis=0, draw_axis=1)))
        bulk = np.asarray(azs.ess(chains, method="bulk", chain_axis=0, draw_axis=1))
        tail = np.asarray(azs.ess(chains, method="tail", prob=0.1, chain_axis=0, draw_axis=1))
        inv_bulk, inv_tail = inv_bulk + mass**2 / bulk, inv_tail + mass**2 / tail
    with warnings.catch_warnings():  # a parameter with no finite R-hat in any mode stays NaN (read as inf)
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmax(np.stack(rhat), axis=0), 1.0 / inv_bulk, 1.0 / inv_tail


def star_diagnostics(
    params: dict[str, np.ndarray], diverging: np.ndarray, tree_depth: np.ndarray, step_size: np.ndarray,
    max_tree_depth: int, criteria: ConvergenceCriteria = ConvergenceCriteria(), logdensity: np.ndarray | None = None,
    mode: np.ndarray | None = None, chain_weight: np.ndarray | None = None, mode_khat: float = np.nan,
) -> dict[str, float | int | str]:
    """Diagnostics of one star: params name -> (chain, draw); the rest (chain, draw) or (chain,).

    ``mode`` and ``chain_weight`` (chain,) come from ``inference.modes``; without them all
    chains are one mode of equal weight.
    """
    draws = np.stack(list(params.values()), axis=-1)  # (chain, draw, n_param)
    n_chain = draws.shape[0]
    mode = np.zeros(n_chain, int) if mode is None else np.asarray(mode)
    weight = np.full(n_chain, 1.0 / n_chain) if chain_weight is None else np.asarray(chain_weight, float)
    rhat, ess_bulk, ess_tail = mode_rhat_ess(draws, mode, weight)
    pooled = np.asarray(azs.rhat(draws, chain_axis=0, draw_axis=1))
    masses = np.bincount(mode, weights=weight, minlength=n_chain)
    out = {
        "rhat_max": _worst(rhat, np.inf),
        "rhat_pooled": _worst(pooled, np.inf),
        "ess_bulk_min": _worst(ess_bulk, 0.0, np.nanmin),
        "ess_tail_min": _worst(ess_tail, 0.0, np.nanmin),
        "n_modes": int(len(np.unique(mode))),
        "major_mode_weight": float(masses.max()),
        "mode_khat": float(mode_khat),
        "n_divergent": int(np.sum(diverging)),
        "n_max_treedepth": int(np.sum(tree_depth >= max_tree_depth)),
        "step_size": float(np.mean(step_size)),
        "logp_gap": np.nan,
        "n_stuck_chains": 0,
    }
    if logdensity is not None:
        means = np.mean(np.asarray(logdensity, float), axis=1)  # per chain
        gaps = np.nanmax(means) - means if np.isfinite(means).any() else np.full(len(means), np.inf)
        out["logp_gap"] = float(np.max(np.where(np.isnan(gaps), np.inf, gaps)))
        out["n_stuck_chains"] = int(np.sum(~(gaps <= STUCK_GAP)))
    out["flag"] = failure_reason(out, criteria)
    return out


def failure_reason(diag: dict, criteria: ConvergenceCriteria = ConvergenceCriteria()) -> str:
    """Short reason a star fails the criteria ('' when it passes)."""
    reasons = []
    if not diag["rhat_max"] <= criteria.rhat_max:
        hint = " (chains in different modes?)" if not diag["rhat_max"] <= MULTIMODAL_RHAT else ""
        stuck = diag.get("n_stuck_chains", 0)
        if diag.get("n_modes", 1) > 1:
            hint = " (within a mode)"
        elif stuck:
            hint = f" ({stuck} chain{'s' * (stuck > 1)} stuck {diag['logp_gap']:.0f} nats below the best)"
        reasons.append(f"rhat {diag['rhat_max']:.3f} > {criteria.rhat_max}{hint}")
    ess = min(diag["ess_bulk_min"], diag["ess_tail_min"])
    if not ess >= criteria.ess_min:
        reasons.append(f"ess {ess:.0f} < {criteria.ess_min:.0f}")
    if diag["n_divergent"] > criteria.max_divergent:
        reasons.append(f"{diag['n_divergent']} divergent")
    if diag.get("n_modes", 1) > 1 and not diag["mode_khat"] <= criteria.mode_khat_max:
        reasons.append(f"mode weights unreliable (khat {diag['mode_khat']:.2f} > {criteria.mode_khat_max})")
    return "; ".join(reasons)
