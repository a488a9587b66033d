"""Agreement measures between two posteriors' draws."""

import numpy as np

from sedppl.diagnostics.comparison import half_width, unsupported_fraction


def test_half_width_is_the_sd_of_a_gaussian_and_ignores_a_far_minor_mode():
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, 200_000)
    assert abs(half_width(x) - 2.0) < 0.03
    with_mode = np.concatenate([x, rng.normal(40.0, 1.0, 8_000)])  # 4% far away: the sd triples
    assert np.std(with_mode) > 3 * 2.0 and abs(half_width(with_mode) - 2.0) < 0.15


def test_unsupported_fraction_counts_only_draws_far_below_the_reference():
    rng = np.random.default_rng(1)
    log_joint = lambda x: -0.5 * x**2  # noqa: E731
    reference = log_joint(rng.normal(0.0, 1.0, 4000))
    supported = log_joint(rng.normal(0.0, 1.2, 9000))  # broader, yet where the posterior has mass
    far = log_joint(rng.normal(12.0, 0.5, 1000))  # 10% where it has none
    assert unsupported_fraction(reference, supported) < 0.002
    assert abs(unsupported_fraction(reference, np.concatenate([supported, far])) - 0.1) < 0.005
