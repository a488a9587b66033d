"""Diagnostics: MCMC convergence per star, SBC and coverage (ArviZ); method comparison comes later."""

from .convergence import ConvergenceCriteria, failure_reason, star_diagnostics
from .sbc import binomial_band, interval_coverage, pit_values, plot_sbc, uniformity_pvalue

__all__ = ["ConvergenceCriteria", "binomial_band", "failure_reason", "interval_coverage", "pit_values",
           "plot_sbc", "star_diagnostics", "uniformity_pvalue"]
