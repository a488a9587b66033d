"""A star's exact reference: the exact engines that pass their own diagnostics, checked against each other.

NUTS and SMC fail in different ways: NUTS chains stick in modes or diverge, and SMC can lose a
tail or a mode at an early tempering step and then report a healthy run on what is left (on the
hard set of ``validation/exact_reference.py``, two stars' SMC draws passed every SMC diagnostic
while 0.5-0.95 sd from the brute-force posterior, where NUTS was right). A star's own
diagnostics cannot see such a loss; a second engine can. So where both engines ran on a star,
their 16/50/84% quantiles must agree within what their Monte Carlo error allows before either
serves as the reference; the engines that pass and agree are pooled, which also halves the
reference's own Monte Carlo error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from jaxtyping import Float

QUANTILES = (16.0, 50.0, 84.0)
AGREE_Z = 4.0  # the largest of the standardised gaps (3 quantiles x parameters x 2 ways) two correct engines may show
ENGINES = ("nuts", "smc")
# Monte Carlo standard error of a 16% or 84% quantile from ESS draws of a normal marginal, in its sds:
# sqrt(p(1-p)/ESS) / phi(z_p) = 1.507 / sqrt(ESS) (the median's is 1.253 / sqrt(ESS))
QUANTILE_SE_FACTOR = float(np.sqrt(0.16 * 0.84) / (np.exp(-0.5 * 0.994457883**2) / np.sqrt(2 * np.pi)))
# the ESS at which all 15 quantiles (3 levels x 5 parameters) of a reference stay within 0.1 sd of the
# exact ones with ~95% probability: 2.93 standard errors (15 at once) of 1.507 / sqrt(2000) = 0.099 sd
PRECISE_ESS = 2000.0


def _below(x: np.ndarray, q: np.ndarray) -> np.ndarray:
    """(quantile, param): the share of draws x (n, param) below each value q (quantile, param), ties half."""
    return (np.mean(x[:, None, :] < q[None], axis=0) + np.mean(x[:, None, :] <= q[None], axis=0)) / 2


def probability_se(p, ess_a: float, ess_b: float):
    """Standard error of the share of one sample below another sample's p-quantile, when both come from one
    distribution with these effective sizes: sqrt(p(1-p)(1/ESS_a + 1/ESS_b)); unknown ESS counts as one draw."""
    ess = np.maximum(np.nan_to_num(np.array([ess_a, ess_b], float), nan=1.0), 1.0)
    return np.sqrt(np.asarray(p) * (1 - np.asarray(p)) * np.sum(1.0 / ess))


def quantile_gap(a: Float[np.ndarray, "n param"], b: Float[np.ndarray, "m param"], ess_a: float, ess_b: float
                 ) -> tuple[float, float]:
    """How far apart two sets of draws are at their 16/50/84% quantiles: the largest quantile difference
    in sds of their union (for reading), and the largest difference in probability -- the share of one
    set's draws below the other's p-quantile, against p -- in standard errors sqrt(p(1-p)(1/ESS_a +
    1/ESS_b)) (for testing). The probability scale needs no density: a quantile that falls between two
    modes moves far in value under Monte Carlo noise, but not in probability."""
    p = np.asarray(QUANTILES)[:, None] / 100
    qa, qb = np.percentile(a, QUANTILES, axis=0), np.percentile(b, QUANTILES, axis=0)
    sd = np.concatenate([a, b]).std(axis=0)
    gap_sd = float(np.max(np.abs(qa - qb) / np.where(sd > 0, sd, 1.0)))
    se = probability_se(p, ess_a, ess_b)
    shift = np.maximum(np.abs(_below(a, qb) - p), np.abs(_below(b, qa) - p))
    return gap_sd, float(np.max(shift / se))


@dataclass(frozen=True)
class ExactReference:
    """Which draws serve as a star's reference, and whether they can be trusted."""

    label: str  # 'nuts', 'smc', 'nuts+smc'; 'disputed' (one passes, the engines disagree); 'none' (none passes)
    sources: tuple[str, ...]  # engines whose draws serve: the passing, agreeing ones; else the first engine
    gap: float  # largest quantile gap between the engines, in posterior sds; nan where one engine ran
    gap_z: float  # the largest probability gap in standard errors (``quantile_gap``); disputed above ``AGREE_Z``
    ess: float = np.nan  # of the pooled draws (an equal share of each source; ``pooled_ess``)

    @property
    def trusted(self) -> bool:
        return self.label not in UNTRUSTED

    @property
    def quantile_se(self) -> float:
        """Monte Carlo standard error of the reference's 16/84% quantiles, in posterior sds."""
        return QUANTILE_SE_FACTOR / np.sqrt(self.ess)


UNTRUSTED = ("disputed", "imprecise", "none")
LABELS = ("nuts+smc", "nuts", "smc") + UNTRUSTED


def pooled_ess(ess: dict[str, float], sources, lengths: dict[str, int] | None = None, n: int | None = None
               ) -> float:
    """ESS of ``pooled(draws, sources, n)``: each source's share of n / k draws, taken evenly through its
    ``lengths[s]`` draws, keeps that fraction of its ESS; the variance of a mean is sum(1 / ESS_i') / k^2.
    Without lengths every source counts whole."""
    k = len(sources)
    kept = {s: 1.0 if lengths is None else min(1.0, (n / k) / lengths[s]) for s in sources}
    inverse = [1.0 / max(np.nan_to_num(float(ess[s]), nan=1.0) * kept[s], 1.0) for s in sources]
    return float(k**2 / np.sum(inverse))


def cross_check(draws: dict[str, np.ndarray], passed: dict[str, bool], ess: dict[str, float],
                z: float = AGREE_Z, min_ess: float = 0.0) -> ExactReference:
    """One star's reference from the exact engines that ran on it (name -> (draw, param) draws,
    whether its own diagnostics passed, its effective sample size).

    Trusted when at least one engine passes and, where two ran, their quantiles agree within ``z``
    standard errors (``quantile_gap``): a disagreement makes the star untrusted even when one engine's
    diagnostics passed, since those cannot tell which engine lost mass. A failed engine with few
    effective draws has wide errors, and so disputes only what it clearly contradicts. With
    ``min_ess`` (e.g. ``PRECISE_ESS`` for a reference-grade comparison) a reference whose pooled draws
    have fewer effective draws is ``imprecise``: right, as far as its diagnostics tell, but too noisy to
    judge another method to 0.1 sd.
    """
    engines = [e for e in ENGINES if e in draws] + [e for e in draws if e not in ENGINES]
    if not engines:
        raise ValueError("cross_check needs the draws of at least one exact engine")
    if len(engines) > 2:
        raise ValueError(f"cross_check compares two engines, got {engines}")
    gap = gap_z = np.nan
    if len(engines) == 2:
        a, b = engines
        gap, gap_z = quantile_gap(draws[a], draws[b], ess[a], ess[b])
    lengths = {e: len(draws[e]) for e in engines}
    n = min(lengths.values())  # what `pooled` is given by compare and the validation studies
    passing = tuple(e for e in engines if passed[e])
    if not passing:
        return ExactReference("none", (engines[0],), gap, gap_z, pooled_ess(ess, engines[:1], lengths, n))
    if gap_z > z:
        return ExactReference("disputed", (engines[0],), gap, gap_z, pooled_ess(ess, engines[:1], lengths, n))
    precision = pooled_ess(ess, passing, lengths, n)
    label = "imprecise" if precision < min_ess else "+".join(passing)
    return ExactReference(label, passing, gap, gap_z, precision)


def pooled(draws: dict[str, np.ndarray], sources, n: int) -> np.ndarray:
    """``n`` draws from the union of the sources, an equal share evenly spaced through each."""
    shares = np.diff(np.linspace(0, n, len(sources) + 1).round().astype(int))
    parts = [draws[s][np.linspace(0, len(draws[s]) - 1, k).round().astype(int)] for s, k in zip(sources, shares)]
    return np.concatenate(parts)
