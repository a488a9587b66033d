"""PIT values for ArviZ's uniformity test: ranks from finitely many draws spread over their cells."""

import numpy as np
import xarray as xr

from sedppl.diagnostics.sbc import continuous_pit, pit_values


def _pot_c(values: np.ndarray) -> float:
    import arviz_stats  # noqa: F401  (registers .azstats)

    ds = xr.Dataset({"x": xr.DataArray(np.asarray(values)[None], dims=("chain", "draw"))})
    p, _, _ = ds.azstats.uniformity_test(dim=["chain", "draw"], method="pot_c")
    return float(p["x"])


def test_calibrated_ranks_pass_the_simultaneous_test_once_continuous():
    """Exact posteriors (truth and 300 draws from one normal), 8 runs of 200 stars: as fractions r/300,
    every run with a truth outside all its draws (PIT exactly 0 or 1) fails ArviZ's pot_c test outright;
    spread over their cells every run passes, and each value stays in its rank's cell."""
    rng = np.random.default_rng(0)
    ends = 0
    for seed in range(8):
        draws, truth = rng.normal(size=(200, 300)), rng.normal(size=200)
        pit = pit_values(draws, truth)
        if np.any((pit == 0) | (pit == 1)):
            ends += 1
            assert _pot_c(pit) < 1e-6
        spread = continuous_pit(pit, 300, seed=seed)
        assert _pot_c(spread) > 0.01
        rank = np.rint(pit * 300)
        assert np.all((spread >= rank / 301) & (spread <= (rank + 1) / 301))
    assert ends >= 4  # the case is common: P(some PIT at 0 or 1) = 1 - (299/301)^200 = 0.74


def test_a_biased_method_still_fails_once_continuous():
    rng = np.random.default_rng(1)
    draws, truth = rng.normal(size=(200, 300)), rng.normal(0.5, 1.0, size=200)
    assert _pot_c(continuous_pit(pit_values(draws, truth), 300)) < 0.01
