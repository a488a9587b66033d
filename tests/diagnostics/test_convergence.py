import numpy as np

from sedppl.diagnostics.convergence import star_diagnostics
from sedppl.diagnostics.sbc import binomial_band, interval_coverage, pit_values, uniformity_pvalue


def _diag(params, diverging=None):
    shape = next(iter(params.values())).shape
    diverging = np.zeros(shape, bool) if diverging is None else diverging
    return star_diagnostics(params, diverging, np.full(shape, 3), np.full(shape[0], 0.1), max_tree_depth=10)


def test_well_mixed_chains_pass():
    rng = np.random.default_rng(0)
    d = _diag({"a": rng.normal(size=(4, 1000)), "b": rng.normal(size=(4, 1000))})
    assert d["flag"] == "" and d["rhat_max"] < 1.01 and d["ess_bulk_min"] > 400


def test_disagreeing_chains_few_draws_and_divergences_are_flagged():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 1000))
    x[0] += 3.0
    assert "rhat" in _diag({"a": x})["flag"]
    walk = np.cumsum(rng.normal(size=(4, 1000)), axis=1)
    assert "ess" in _diag({"a": walk})["flag"]
    div = np.zeros((4, 1000), bool)
    div[2, 10] = True
    assert "1 divergent" in _diag({"a": rng.normal(size=(4, 1000))}, div)["flag"]


def test_a_chain_stuck_in_a_lesser_mode_is_named_by_its_log_density_gap():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(4, 1000))
    x[3] += 6.0  # chain 3 sits in another mode ...
    logp = -0.5 * rng.chisquare(5, size=(4, 1000))
    same = star_diagnostics({"a": x}, np.zeros((4, 1000), bool), np.full((4, 1000), 3), np.full(4, 0.1), 10,
                            logdensity=logp)
    assert same["logp_gap"] < 1 and same["n_stuck_chains"] == 0 and "different modes?" in same["flag"]
    logp[3] -= 40.0  # ... 40 nats less probable than the others
    stuck = star_diagnostics({"a": x}, np.zeros((4, 1000), bool), np.full((4, 1000), 3), np.full(4, 0.1), 10,
                             logdensity=logp)
    assert 39 < stuck["logp_gap"] < 41 and stuck["n_stuck_chains"] == 1
    assert "1 chain stuck 40 nats below the best" in stuck["flag"]


def test_chains_in_separate_modes_pass_when_each_mode_has_its_mass():
    """Three chains in one mode, one in another: pooled R-hat fails, R-hat within each mode passes, and the
    weighted ESS is the heavy mode's (the light one's single chain hardly counts)."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(4, 1000))
    x[3] += 8.0
    weight = np.array([0.33, 0.33, 0.33, 0.01])
    d = star_diagnostics({"a": x}, np.zeros((4, 1000), bool), np.full((4, 1000), 3), np.full(4, 0.1), 10,
                         mode=np.array([0, 0, 0, 3]), chain_weight=weight, mode_khat=0.2)
    assert d["rhat_pooled"] > 1.5 and d["rhat_max"] < 1.01 and d["flag"] == ""
    assert d["n_modes"] == 2 and abs(d["major_mode_weight"] - 0.99) < 1e-9
    assert 2000 < d["ess_bulk_min"] < 3500  # ~3000 / 0.99^2, not 4000
    bad = star_diagnostics({"a": x}, np.zeros((4, 1000), bool), np.full((4, 1000), 3), np.full(4, 0.1), 10,
                           mode=np.array([0, 0, 0, 3]), chain_weight=weight, mode_khat=0.9)
    assert "mode weights unreliable" in bad["flag"]
    stuck = x.copy()
    stuck[3] = 8.0 + np.cumsum(rng.normal(size=1000)) * 0.1  # the lone chain of the light mode does not mix
    lone = star_diagnostics({"a": stuck}, np.zeros((4, 1000), bool), np.full((4, 1000), 3), np.full(4, 0.1), 10,
                            mode=np.array([0, 0, 0, 3]), chain_weight=weight, mode_khat=0.2)
    assert lone["rhat_max"] > 1.05 and "within a mode" in lone["flag"]  # its split R-hat is checked too


def test_pit_and_coverage_of_a_calibrated_posterior():
    rng = np.random.default_rng(2)
    n = 2000
    mu = rng.normal(size=n)
    truth = mu + rng.normal(size=n)  # posterior N(mu, 1) is exact for truth ~ N(mu, 1)
    draws = mu[:, None] + rng.normal(size=(n, 400))
    pit = pit_values(draws, truth)
    for level in (0.68, 0.95):
        lo, hi = binomial_band(level, n)
        assert lo < interval_coverage(pit, level) < hi
    assert uniformity_pvalue(pit) > 0.01
    assert uniformity_pvalue(pit_values(draws * 0.5, truth)) < 1e-6  # overconfident posterior is caught


def test_corner_plot_writes_a_figure(tmp_path):
    from sedppl.diagnostics.corner import corner

    rng = np.random.default_rng(3)
    draws = {"teff": rng.normal(5000, 100, (2, 200)), "av": rng.normal(1, 0.1, (2, 200))}
    corner(draws, tmp_path / "c.png", truth={"teff": 5000.0, "av": 1.0}, title="test")
    assert (tmp_path / "c.png").stat().st_size > 10_000
