"""Cross-checked exact references: correct engines agree (unimodal or not), a lost tail is caught,
pooling is fair."""

import numpy as np
import pytest

from sedppl.diagnostics.crosscheck import (
    AGREE_Z, PRECISE_ESS, QUANTILE_SE_FACTOR, _below, cross_check, pooled, pooled_ess, probability_se, quantile_gap,
)


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


def test_quantile_standard_error_is_the_spread_of_repeated_16_percent_quantiles():
    """The 16% quantile of 2000 normal draws, over 3000 repeats, spreads by QUANTILE_SE_FACTOR / sqrt(2000) sd."""
    rng = np.random.default_rng(11)
    q = np.percentile(rng.normal(size=(3000, 2000)), 16, axis=1)
    assert np.std(q) == pytest.approx(QUANTILE_SE_FACTOR / np.sqrt(2000), rel=0.05)
    # 15 such quantiles all within 0.1 sd with ~95% probability at PRECISE_ESS
    assert 2.9 * QUANTILE_SE_FACTOR / np.sqrt(PRECISE_ESS) == pytest.approx(0.1, abs=0.003)


def test_equal_shares_pool_their_precision():
    """Half of 800 pooled draws from 400 iid draws and half from 4000 (every tenth) estimate a mean with the
    variance of 800 draws: the thinned source keeps a tenth of its ESS. Whole sources would count 1455."""
    ess, lengths = {"nuts": 400.0, "smc": 4000.0}, {"nuts": 400, "smc": 4000}
    assert pooled_ess(ess, ("nuts", "smc"), lengths, 800) == pytest.approx(800)
    assert pooled_ess(ess, ("nuts", "smc")) == pytest.approx(4 / (1 / 400 + 1 / 4000))
    assert pooled_ess(ess, ("smc",), lengths, 400) == pytest.approx(400)
    rng = np.random.default_rng(3)
    means = [pooled({"nuts": rng.normal(size=(400, 1)), "smc": rng.normal(size=(4000, 1))}, ("nuts", "smc"),
                    800).mean() for _ in range(3000)]
    assert np.var(means) == pytest.approx(1 / 800, rel=0.1)


def test_a_reference_too_noisy_for_the_comparison_is_imprecise():
    rng = np.random.default_rng(4)
    draws = {"nuts": rng.normal(size=(1000, 5)), "smc": rng.normal(size=(1000, 5))}
    passed, ess = {"nuts": True, "smc": True}, {"nuts": 600.0, "smc": 900.0}
    loose, strict = cross_check(draws, passed, ess), cross_check(draws, passed, ess, min_ess=PRECISE_ESS)
    assert loose.label == "nuts+smc" and loose.trusted and loose.ess == pytest.approx(4 / (1 / 300 + 1 / 450))
    assert strict.label == "imprecise" and not strict.trusted and strict.sources == ("nuts", "smc")
    assert strict.quantile_se == pytest.approx(QUANTILE_SE_FACTOR / np.sqrt(strict.ess))
    assert cross_check(draws, passed, {"nuts": 3000.0, "smc": 3000.0}, min_ess=PRECISE_ESS).trusted
