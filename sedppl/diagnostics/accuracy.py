"""Posterior-mean error against known truths, overall and binned by what a star's data hold.

Calibration says whether the stated uncertainties are honest; accuracy says
how small they are. Binning by number of bands and by typical photometric
error shows where each method gains or loses.
"""

from __future__ import annotations

import numpy as np
from jaxtyping import Bool, Float


def typical_error(err: Float[np.ndarray, "star band"], mask: Bool[np.ndarray, "star band"]) -> np.ndarray:
    """Median reported error over each star's present bands (NaN for a star with none)."""
    values = np.where(mask, err, np.nan)
    out = np.full(len(values), np.nan)
    some = mask.any(axis=1)
    out[some] = np.nanmedian(values[some], axis=1)
    return out


def error_stats(error: Float[np.ndarray, " star"]) -> dict[str, float]:
    """Bias, RMSE, median absolute error and count of the finite errors."""
    error = np.asarray(error, float)
    error = error[np.isfinite(error)]
    if error.size == 0:
        return {"n": 0, "bias": np.nan, "rmse": np.nan, "mae_median": np.nan}
    return {"n": int(error.size), "bias": float(error.mean()), "rmse": float(np.sqrt(np.mean(error**2))),
            "mae_median": float(np.median(np.abs(error)))}


def binned_error_stats(error: Float[np.ndarray, " star"], by: Float[np.ndarray, " star"], edges) -> list[dict]:
    """``error_stats`` of the stars in each bin [edges[i], edges[i+1]) of ``by``, with the bin's label."""
    error, by = np.asarray(error, float), np.asarray(by, float)
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (by >= lo) & (by < hi)
        rows.append({"bin": f"[{lo:g}, {hi:g})", **error_stats(error[inside])})
    return rows
