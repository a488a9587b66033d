"""Cross-checked exact references: correct engines agree (unimodal or not), a lost tail is caught,
pooling is fair."""

import numpy as np
import pytest

from sedppl.diagnostics.crosscheck import AGREE_Z, _below, cross_check, pooled, probability_se, quantile_gap


def test_the_probability_standard_error_is_the_spread_of_repeated_samples():
    """Share of 500 draws below the 16% quantile of 1000 others, over 2000 repeats: its sd is the formula's."""
    rng = np.random.default_rng(5)
    shares = [_below(rng.normal(size=(500, 1)), np.percentile(rng.normal(size=(1000, 1)), [16], axis=0))[0, 0]
              for _ in range(2000)]
    assert np.std(shares) == pytest.approx(probability_se(0.16, 500, 1000), rel=0.08)


def test_two_correct_samplers_rarely_disagree_even_with_two_modes():
    """Independent draws of one posterior (ESS 500 and 1000; 5 parameters, one of them bimodal) are called
    disputed in < 2% of tries; and the threshold is not so loose that it could never fire."""
    rng = np.random.default_rng(2)

    def draws(n):
        x = rng.normal(size=(n, 5))
        x[:, 2] = np.where(rng.random(n) < 0.16, rng.normal(-5, 0.3, n), x[:, 2])
        return x

    z = np.array([quantile_gap(draws(500), draws(1000), 500, 1000)[1] for _ in range(300)])
    assert np.mean(z > AGREE_Z) < 0.02
    assert np.median(z) > AGREE_Z / 3


def test_a_lost_tail_is_disputed_even_when_the_engine_passes():
    """SMC that dropped the lowest 12% of one parameter (passing its own diagnostics) against NUTS."""
    rng = np.random.default_rng(3)
    full = rng.normal(size=(4000, 5))
    x = rng.normal(size=(6000, 5))
    lost = x[x[:, 1] > np.percentile(x[:, 1], 12)]
    check = cross_check({"nuts": full, "smc": lost}, {"nuts": False, "smc": True}, {"nuts": 600, "smc": 4000})
    assert check.label == "disputed" and not check.trusted and check.gap_z > AGREE_Z and check.gap > 0.15
    agree = cross_check({"nuts": full, "smc": x}, {"nuts": False, "smc": True}, {"nuts": 600, "smc": 4000})
    assert agree.label == "smc" and agree.sources == ("smc",)


def test_a_failed_run_with_no_effective_draws_disputes_nothing():
    rng = np.random.default_rng(4)
    check = cross_check({"nuts": rng.normal(size=(400, 5)) + 0.5, "smc": rng.normal(size=(400, 5))},
                        {"nuts": False, "smc": True}, {"nuts": np.nan, "smc": 400})
    assert check.label == "smc"
    with pytest.raises(ValueError, match="at least one"):
        cross_check({}, {}, {})


def test_pooled_takes_an_equal_share_of_each_source():
    draws = {"nuts": np.zeros(4000), "smc": np.ones(3000)}
    both = pooled(draws, ("nuts", "smc"), 1000)
    assert len(both) == 1000 and both.sum() == 500
    assert np.all(pooled(draws, ("smc",), 1000) == 1)
