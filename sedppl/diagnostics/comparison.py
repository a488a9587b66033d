"""Star-by-star comparison of two posteriors of the same stars: a reference (NUTS) and another method.

All measures are in units of the reference posterior's standard deviation,
so they read the same for every parameter:

- z-score of the other method's posterior mean under the reference;
- ratio of posterior standard deviations (other / reference);
- sliced Wasserstein-1 distance between the two sets of draws, after scaling
  every parameter by the reference sd; its noise floor is the same distance
  between two halves of the reference draws.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import wasserstein_distance


def _flat(draws: dict[str, np.ndarray], names) -> np.ndarray:
    """(star, chain, draw) per name -> (star, n, len(names))."""
    return np.stack([np.asarray(draws[n]).reshape(len(draws[n]), -1) for n in names], axis=-1)


def z_scores(reference: dict[str, np.ndarray], other: dict[str, np.ndarray], names) -> np.ndarray:
    """(star, param): (mean_other - mean_reference) / sd_reference."""
    ref, oth = _flat(reference, names), _flat(other, names)
    return (oth.mean(axis=1) - ref.mean(axis=1)) / ref.std(axis=1)


def width_ratios(reference: dict[str, np.ndarray], other: dict[str, np.ndarray], names) -> np.ndarray:
    """(star, param): sd_other / sd_reference."""
    return _flat(other, names).std(axis=1) / _flat(reference, names).std(axis=1)


def sliced_wasserstein(a: np.ndarray, b: np.ndarray, scale: np.ndarray, n_projections: int = 64,
                       seed: int = 0) -> float:
    """Mean W1 distance of the 1-d projections of draws a (n, d) and b (m, d), each axis divided by ``scale``."""
    rng = np.random.default_rng(seed)
    directions = rng.standard_normal((n_projections, a.shape[1]))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    a, b = a / scale, b / scale
    return float(np.mean([wasserstein_distance(a @ u, b @ u) for u in directions]))


def sliced_wasserstein_per_star(reference: dict[str, np.ndarray], other: dict[str, np.ndarray], names,
                                seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per star: (distance other <-> reference, noise floor: one half of the reference <-> the other half)."""
    ref, oth = _flat(reference, names), _flat(other, names)
    distance, floor = np.zeros(len(ref)), np.zeros(len(ref))
    for i in range(len(ref)):
        scale = ref[i].std(axis=0)
        scale = np.where(scale > 0, scale, 1.0)
        distance[i] = sliced_wasserstein(ref[i], oth[i], scale, seed=seed)
        half = len(ref[i]) // 2
        rng = np.random.default_rng(seed + i)
        shuffled = ref[i][rng.permutation(len(ref[i]))]  # chains may differ: halves mix them
        floor[i] = sliced_wasserstein(shuffled[:half], shuffled[half:], scale, seed=seed)
    return distance, floor


def half_width(x: np.ndarray) -> float:
    """Half the central 68% interval of draws x: a Gaussian's sd, but blind to a far minor mode's weight."""
    return float(np.subtract(*np.percentile(x, [84, 16])) / 2)


def unsupported_fraction(reference_log_joint: np.ndarray, other_log_joint: np.ndarray, margin: float = 10.0,
                         quantile: float = 0.1) -> float:
    """Share of another method's draws where the posterior has no mass: a log-joint more than ``margin``
    nats below the lowest ``quantile`` percent of the reference draws' (a minor mode the reference
    visits less often still counts as supported)."""
    return float(np.mean(other_log_joint < np.percentile(reference_log_joint, quantile) - margin))
