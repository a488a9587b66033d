"""Expected coverage of credible regions, per parameter and jointly (TARP).

A method is calibrated when its α-credible regions hold the truth a fraction α
of the time, for every α. Per parameter the regions are central intervals,
read off the PIT values (``sbc.pit_values``). Jointly, TARP (Lemos et al. 2023,
arXiv 2302.03026) uses balls around a random reference point per star: the
credibility f of a star is the fraction of its draws nearer the reference than
the truth is, and the expected coverage at α is the fraction of stars with f < α.
A curve below the diagonal means overconfident regions, above means conservative.
"""

from __future__ import annotations

import numpy as np
from jaxtyping import Float

LEVELS = np.linspace(0.0, 1.0, 41)


def coverage_curve(pit: Float[np.ndarray, " star"], levels=LEVELS) -> np.ndarray:
    """Fraction of truths inside the central interval of each credible level."""
    distance = np.abs(np.asarray(pit) - 0.5)[:, None]
    return np.mean(distance < np.asarray(levels)[None, :] / 2, axis=0)


def tarp_credibility(
    draws: Float[np.ndarray, "star draw dim"], truth: Float[np.ndarray, "star dim"],
    references: Float[np.ndarray, "star dim"] | None = None, seed: int = 0,
) -> np.ndarray:
    """Per star, the fraction of draws nearer its reference point than its truth.

    Coordinates are scaled to the truths' range in each dimension; references
    default to uniform points in that unit box.
    """
    draws, truth = np.asarray(draws, float), np.asarray(truth, float)
    low, high = truth.min(axis=0), truth.max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    draws, truth = (draws - low) / span, (truth - low) / span
    if references is None:
        references = np.random.default_rng(seed).uniform(size=truth.shape)
    to_draws = np.linalg.norm(draws - references[:, None, :], axis=-1)
    to_truth = np.linalg.norm(truth - references, axis=-1)
    return np.mean(to_draws < to_truth[:, None], axis=1)


def tarp_coverage(credibility: Float[np.ndarray, " star"], levels=LEVELS) -> np.ndarray:
    """TARP's expected coverage at each level: the fraction of stars with credibility below it."""
    return np.mean(np.asarray(credibility)[:, None] < np.asarray(levels)[None, :], axis=0)


def max_coverage_error(coverage: np.ndarray, levels=LEVELS) -> float:
    """Largest ``|empirical - nominal|`` coverage over the levels (signed: negative = overconfident)."""
    diff = np.asarray(coverage) - np.asarray(levels)
    return float(diff[np.argmax(np.abs(diff))])


def coverage_band(levels=LEVELS, n: int = 100, z: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise z-sigma binomial band of a calibrated method's coverage with n stars."""
    sd = np.sqrt(levels * (1 - levels) / n)
    return np.clip(levels - z * sd, 0, 1), np.clip(levels + z * sd, 0, 1)


def plot_coverage(curves: dict[str, dict[str, np.ndarray]], n: int, path, levels=LEVELS) -> None:
    """One panel per method: the coverage curve of each parameter (and 'tarp'), the diagonal and its band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(4 * len(curves), 4), squeeze=False)
    lo, hi = coverage_band(levels, n)
    for ax, (method, by_param) in zip(axes[0], curves.items()):
        ax.fill_between(levels, lo, hi, color="0.85", label=f"3σ band, {n} stars")
        ax.plot([0, 1], [0, 1], color="0.4", lw=0.8)
        for name, cov in by_param.items():
            style = {"color": "k", "lw": 2.2} if name == "tarp" else {"lw": 1.2}
            ax.plot(levels, cov, label=name, **style)
        ax.set(title=method, xlabel="credible level", ylabel="empirical coverage", xlim=(0, 1), ylim=(0, 1))
    axes[0][-1].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
