import numpy as np
import pytest
import scipy.stats as st

from sedppl.model.priors import DEFAULT_PRIOR_TOML, Prior, PriorError

BOUNDS = {"teff": (2300.0, 12000.0), "logg": (0.0, 6.0), "mh": (-4.0, 1.0)}


def test_default_round_trips_through_toml(tmp_path):
    prior = Prior.default()
    path = tmp_path / "p.toml"
    path.write_text(prior.to_toml())
    assert Prior.load(path) == prior


def test_default_matches_the_documented_choices():
    d = Prior.default().distributions(BOUNDS)
    assert Prior.default().support(BOUNDS)["logg"] == (0.1, 5.5)
    x = np.array([3000.0, 6000.0])
    np.testing.assert_allclose(d["teff"].log_prob(x), st.loguniform(2300, 12000).logpdf(x), rtol=1e-5)
    np.testing.assert_allclose(d["rv"].log_prob(3.3), st.truncnorm((2.5 - 3.13) / 0.18, (4.5 - 3.13) / 0.18, 3.13, 0.18).logpdf(3.3), rtol=1e-5)
    trunc = st.truncexpon(b=(15.0 - 0.003) / 1.5, loc=0.003, scale=1.5)
    np.testing.assert_allclose(d["av"].log_prob(np.array([0.01, 2.0])), trunc.logpdf([0.01, 2.0]), rtol=1e-5)
    assert not np.isfinite(float(d["av"].log_prob(0.001)))


def test_mixture_density_integrates_to_one():
    d = Prior.default().distributions(BOUNDS)["mh"]
    x = np.linspace(-4.0, 1.0, 20001)
    assert np.trapezoid(np.exp(np.asarray(d.log_prob(x))), x) == pytest.approx(1.0, abs=1e-3)


def test_grid_bounds_clip_user_bounds():
    prior = Prior.from_dict({**_tables(), "logg": {"dist": "uniform", "low": -3.0, "high": 9.0}})
    assert prior.support(BOUNDS)["logg"] == (0.0, 6.0)


def _tables():
    import tomllib

    return tomllib.loads(DEFAULT_PRIOR_TOML)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"teff": {"dist": "gamma"}}, r"\[teff\]: unknown dist"),
        ({"rv": {"dist": "truncnormal", "loc": 3.1}}, r"\[rv\].*needs"),
        ({"mh": {"dist": "mixture", "low": -1, "high": 1, "weights": [0.5, 0.2], "components": [{"dist": "uniform", "low": -1, "high": 1}] * 2}}, "sum to 1"),
        ({"log10_theta": {"dist": "loguniform", "low": 1, "high": 2}}, "must be 'uniform'"),
        ({"distance": {"dist": "uniform", "low": 1, "high": 2}}, "unknown table"),
        ({"logg": {"dist": "uniform", "low": 5.0, "high": 1.0}}, "empty support"),
        ({"rv": {"dist": "truncnormal", "loc": 3.1, "scale": float("nan"), "low": 2, "high": 5}},
         r"\[rv\]: scale must be finite"),
        ({"av": {"dist": "exponential", "mean": -1.0, "high": 10.0}}, r"\[av\]: mean must be > 0"),
        ({"rv": {"dist": "truncnormal", "loc": "x", "scale": 0.2, "low": 2, "high": 5}}, r"\[rv\]: loc must be a number"),
        ({"mh": {"dist": "mixture", "low": -1, "high": 1, "weights": [1.0],
                 "components": [{"dist": "truncnormal", "loc": 0.0, "scale": float("inf")}]}},
         r"\[mh\]: components\[0\]\.scale must be finite"),
    ],
)
def test_bad_prior_tables_are_named(change, message):
    with pytest.raises(PriorError, match=message):
        Prior.from_dict({**_tables(), **change}).support(BOUNDS)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(PriorError, match="does not exist"):
        Prior.load(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[teff\n")
    with pytest.raises(PriorError, match="not valid TOML"):
        Prior.load(bad)
