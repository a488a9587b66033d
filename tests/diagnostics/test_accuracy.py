import numpy as np

from sedppl.diagnostics.accuracy import binned_error_stats, error_stats, typical_error


def test_typical_error_uses_present_bands_only():
    err = np.array([[0.01, 0.02, 9.0], [0.1, 0.3, 0.2], [1.0, 1.0, 1.0]])
    mask = np.array([[True, True, False], [True, True, True], [False, False, False]])
    out = typical_error(err, mask)
    np.testing.assert_allclose(out[:2], [0.015, 0.2])
    assert np.isnan(out[2])


def test_error_stats_and_bins():
    error = np.array([1.0, -1.0, 3.0, np.nan])
    assert error_stats(error) == {"n": 3, "bias": 1.0, "rmse": np.sqrt(11 / 3), "mae_median": 1.0}
    rows = binned_error_stats(error, by=np.array([3, 4, 10, 10]), edges=[3, 5, 26])
    assert [r["n"] for r in rows] == [2, 1] and rows[1]["rmse"] == 3.0 and rows[0]["bias"] == 0.0
