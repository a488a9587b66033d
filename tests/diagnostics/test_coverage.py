"""Coverage curves and TARP: calibrated on exact posteriors, off for overconfident ones, equal to the tarp package."""

import numpy as np
import pytest

from sedppl.diagnostics.coverage import (
    LEVELS, coverage_band, coverage_curve, max_coverage_error, tarp_coverage, tarp_credibility,
)
from sedppl.diagnostics.sbc import pit_values

N_STARS, N_DRAWS, NOISE = 600, 400, 0.5


def conjugate_gaussian(seed: int, shrink: float = 1.0):
    """θ ~ N(0, I_3), x ~ N(θ, NOISE² I): exact posterior draws (sd scaled by ``shrink``) and truths."""
    rng = np.random.default_rng(seed)
    theta = rng.normal(size=(N_STARS, 3))
    x = theta + NOISE * rng.normal(size=theta.shape)
    mean, sd = x / (1 + NOISE**2), np.sqrt(NOISE**2 / (1 + NOISE**2)) * shrink
    return mean[:, None, :] + sd * rng.normal(size=(N_STARS, N_DRAWS, 3)), theta


def inside_band(curve: np.ndarray) -> bool:
    lo, hi = coverage_band(LEVELS, N_STARS, z=3.5)
    interior = slice(1, -1)  # at levels 0 and 1 the band has no width, and finite draws miss by 1/N_DRAWS
    return bool(np.all((curve[interior] >= lo[interior]) & (curve[interior] <= hi[interior])))


def test_exact_posteriors_are_calibrated_per_parameter_and_jointly():
    draws, truth = conjugate_gaussian(0)
    for d in range(3):
        assert inside_band(coverage_curve(pit_values(draws[..., d], truth[:, d])))
    assert inside_band(tarp_coverage(tarp_credibility(draws, truth, seed=1)))


def test_overconfident_posteriors_fall_below_the_diagonal():
    draws, truth = conjugate_gaussian(0, shrink=0.5)
    per_param = coverage_curve(pit_values(draws[..., 0], truth[:, 0]))
    joint = tarp_coverage(tarp_credibility(draws, truth, seed=1))
    assert not inside_band(per_param) and max_coverage_error(per_param) < -0.15
    assert not inside_band(joint)


def test_tarp_matches_the_tarp_package_at_its_levels():
    tarp = pytest.importorskip("tarp")
    draws, truth = conjugate_gaussian(2, shrink=0.8)
    refs = np.random.default_rng(3).uniform(size=truth.shape)
    ecp, alpha = tarp.get_tarp_coverage(np.moveaxis(draws, 1, 0), truth, references=refs, norm=True,
                                        num_alpha_bins=30)
    ours = tarp_coverage(tarp_credibility(draws, truth, references=refs), levels=alpha[1:-1])
    # the package bins f in [min f, max f]; its cumulative sum at an interior edge is P(f < edge)
    np.testing.assert_allclose(ours, ecp[1:-1], atol=1e-6)


def test_coverage_curve_reads_central_intervals():
    pit = np.array([0.5, 0.2, 0.97, 0.01])
    np.testing.assert_allclose(coverage_curve(pit, levels=[0.5, 0.7, 0.95, 1.0]), [0.25, 0.5, 0.75, 1.0])
