import tomllib
from pathlib import Path

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


def test_every_default_density_is_scipys():
    """Each parameter's log-density against scipy.stats at points across its support, and the support box."""
    prior = Prior.default()
    d = prior.distributions(BOUNDS)
    assert prior.support(BOUNDS) == {"teff": (2300.0, 12000.0), "logg": (0.1, 5.5), "mh": (-4.0, 1.0),
                                     "av": (0.003, 15.0), "rv": (2.5, 4.5), "log10_theta": (-6.0, 3.0)}
    mh = lambda loc, scale: st.truncnorm((-4.0 - loc) / scale, (1.0 - loc) / scale, loc, scale)  # noqa: E731
    scipy = {
        "teff": st.loguniform(2300.0, 12000.0), "logg": st.uniform(0.1, 5.4),
        "av": st.truncexpon(b=(15.0 - 0.003) / 1.5, loc=0.003, scale=1.5),
        "rv": st.truncnorm((2.5 - 3.13) / 0.18, (4.5 - 3.13) / 0.18, 3.13, 0.18), "log10_theta": st.uniform(-6.0, 9.0),
    }
    for name, (low, high) in prior.support(BOUNDS).items():
        x = np.linspace(low, high, 7)[1:-1]
        expected = (np.log(0.8 * mh(-0.1, 0.3).pdf(x) + 0.2 * mh(-1.0, 0.6).pdf(x)) if name == "mh"
                    else scipy[name].logpdf(x))
        np.testing.assert_allclose(d[name].log_prob(x), expected, rtol=2e-5, err_msg=name)


def test_user_tables_mean_what_they_say():
    """A loguniform with numeric bounds, a truncated normal, a mixture with a uniform component clipped to
    the parameter's range, and an exponential without shift: densities as scipy's."""
    tables = _tables() | {
        "teff": {"dist": "loguniform", "low": 3000.0, "high": 8000.0},
        "logg": {"dist": "truncnormal", "loc": 4.4, "scale": 0.5, "low": 3.5, "high": 5.0},
        "mh": {"dist": "mixture", "low": -2.0, "high": 0.5, "weights": [0.25, 0.75],
               "components": [{"dist": "uniform", "low": -3.0, "high": 0.0}, {"dist": "truncnormal", "loc": 0.0, "scale": 0.2}]},
        "av": {"dist": "exponential", "shift": 0.5, "mean": 0.4, "high": 3.0},
    }
    prior = Prior.from_dict(tables)
    d = prior.distributions(BOUNDS)
    assert prior.support(BOUNDS)["av"] == (0.5, 3.0) and prior.support(BOUNDS)["mh"] == (-2.0, 0.5)
    x = np.array([3500.0, 5000.0, 7900.0])
    np.testing.assert_allclose(d["teff"].log_prob(x), st.loguniform(3000.0, 8000.0).logpdf(x), rtol=1e-5)
    x = np.array([3.6, 4.4, 4.9])
    np.testing.assert_allclose(d["logg"].log_prob(x), st.truncnorm(-1.8, 1.2, 4.4, 0.5).logpdf(x), rtol=1e-5)
    x = np.array([-1.9, -0.5, -0.01, 0.2])
    expected = 0.25 * st.uniform(-2.0, 2.0).pdf(x) + 0.75 * st.truncnorm(-10.0, 2.5, 0.0, 0.2).pdf(x)
    np.testing.assert_allclose(d["mh"].log_prob(x), np.log(expected), rtol=1e-5)
    x = np.array([0.51, 1.0, 2.9])  # shifted, and truncated at `high` itself (not at high + shift)
    np.testing.assert_allclose(d["av"].log_prob(x), st.truncexpon(b=2.5 / 0.4, loc=0.5, scale=0.4).logpdf(x), rtol=1e-5)
    assert not np.isfinite(float(d["av"].log_prob(3.2)))
    unshifted = Prior.from_dict(_tables() | {"av": {"dist": "exponential", "mean": 0.4, "high": 3.0}})
    x = np.array([0.01, 1.0, 2.9])  # no shift: from 0
    np.testing.assert_allclose(unshifted.distributions(BOUNDS)["av"].log_prob(x),
                               st.truncexpon(b=3.0 / 0.4, scale=0.4).logpdf(x), rtol=1e-5)


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
        ({"mh": {"dist": "mixture", "low": -1, "high": 1, "weights": [1.5, -0.5], "components": [{"dist": "uniform", "low": -1, "high": 1}] * 2}}, "non-negative"),
        ({"log10_theta": {"dist": "loguniform", "low": 1, "high": 2}}, "must be 'uniform'"),
        ({"distance": {"dist": "uniform", "low": 1, "high": 2}}, "unknown table"),
        ({"logg": {"dist": "uniform", "low": 5.0, "high": 1.0}}, "empty support"),
        ({"logg": {"dist": "uniform", "low": 4.0, "high": 4.0}}, "empty support"),
        ({"mh": {"dist": "mixture", "low": -1, "high": 1, "weights": [1.0],
                 "components": [{"dist": "loguniform", "low": 0.1, "high": 1}]}}, "must be tables with dist truncnormal or uniform"),
        ({"rv": {"dist": "truncnormal", "loc": 3.1, "scale": float("nan"), "low": 2, "high": 5}},
         r"\[rv\]: scale must be finite"),
        ({"av": {"dist": "exponential", "mean": -1.0, "high": 10.0}}, r"\[av\]: mean must be > 0"),
        ({"rv": {"dist": "truncnormal", "loc": "x", "scale": 0.2, "low": 2, "high": 5}}, r"\[rv\]: loc must be a number"),
        ({"mh": {"dist": "mixture", "low": -1, "high": 1, "weights": [1.0],
                 "components": [{"dist": "truncnormal", "loc": 0.0, "scale": float("inf")}]}},
         r"\[mh\]: components\[0\]\.scale must be finite"),
        ({"mh": {"dist": "mixture", "low": -1, "high": 1, "weights": [0.5, 0.5],
                 "components": [{"dist": "uniform", "low": -1, "high": 1}]}}, "same non-zero length"),
        ({"mh": {"dist": "mixture", "low": -1, "high": 1, "weights": [1.0],
                 "components": [{"dist": "uniform", "low": -1, "high": 1}] * 2}}, "same non-zero length"),
        ({"logg": {"dist": "uniform", "low": "auto", "high": 5.0}}, r"\[logg\]: low must be a number"),
        ({"likelihood": {"sys_floor": "median"}}, r"sys_floor must be a number >= 0 \(mag\) or 'libraries'"),
        ({"likelihood": {"sys_floor": "avg"}}, r"sys_floor must be a number >= 0 \(mag\) or 'libraries'"),
        ({"rv": {"dist": "truncnormal", "loc": 3.1, "scale": 0.0, "low": 2, "high": 5}}, r"\[rv\]: scale must be > 0"),
        ({"logg": {"low": 0.0, "high": 5.0}}, r"\[logg\]: needs a table with a 'dist' key"),
        ({"mh": {"dist": "mixture", "low": -1, "high": 1, "weights": [1.0], "components": "thin disk"}},
         r"\[mh\]: components must be a list"),
        # once a traceback (a number for the list), a bare KeyError 'loc' in the fit, or silently dropped keys
        ({"mh": {"dist": "mixture", "low": -1, "high": 1, "weights": [1.0], "components": 5}},
         r"\[mh\]: components must be a list"),
        ({"mh": {"dist": "mixture", "low": -1, "high": 1, "weights": 1.0, "components": [{"dist": "uniform", "low": -1, "high": 1}]}},
         r"\[mh\]: weights must be a list"),
        ({"mh": {"dist": "mixture", "low": -1, "high": 1, "weights": [1.0], "components": [{"dist": "truncnormal", "scale": 0.3}]}},
         r"\[mh\]: components\[0\] \(truncnormal\) needs exactly \['loc', 'scale'\], got \['scale'\]"),
        ({"mh": {"dist": "mixture", "low": -1, "high": 1, "weights": [1.0], "components": [3]}},
         r"\[mh\]: mixture components must be tables"),
        ({"logg": {"dist": "uniform", "low": 0.1, "high": 5.5, "foo": 3}}, r"\[logg\]: unknown key\(s\) \['foo'\]"),
        ({"av": {"dist": "exponential", "shfit": 0.1, "mean": 1.0, "high": 10.0}}, r"\[av\]: unknown key\(s\) \['shfit'\]"),
        ({"likelihood": {"sys_floor": 0.02, "foo": 1}}, r"\[likelihood\]: takes only 'sys_floor'"),
        # a loc far outside the support: NumPyro's draws leave it (all of them at 20 scales)
        ({"rv": {"dist": "truncnormal", "loc": 50.0, "scale": 0.18, "low": 2.5, "high": 4.5}},
         r"\[rv\]: loc = 50.0 lies 253 scales outside the support \[2.5, 4.5\]"),
        ({"mh": {"dist": "mixture", "low": -1, "high": 1, "weights": [0.5, 0.5],
                 "components": [{"dist": "uniform", "low": -1, "high": 1}, {"dist": "truncnormal", "loc": 3.0, "scale": 0.1}]}},
         r"\[mh\]: components\[1\]\.loc = 3.0 lies 20 scales outside"),
        ({"likelihood": {"sys_floor": [0.02]}}, r"\[likelihood\]: sys_floor must be a number or 'libraries'"),
        ({"likelihood": {"sys_floor": float("inf")}}, r"sys_floor must be a finite number >= 0"),
        ({"likelihood": {"sys_floor": -0.5}}, r"sys_floor must be a finite number >= 0"),
    ],
)
def test_bad_prior_tables_are_named(change, message):
    with pytest.raises(PriorError, match=message):
        Prior.from_dict({**_tables(), **change}).support(BOUNDS)


def test_priors_are_hashable_values_and_name_their_floor():
    """Models hold priors as static fields: equal priors hash alike, another prior differently. The
    floor is what the file says; its nominal value (NPE input scaling) is 0.02 mag for the libraries'."""
    assert hash(Prior.default()) == hash(Prior.from_dict(_tables()))
    assert all(key != "dist" for p in Prior.default().params for key, _ in p.args)  # the kind is kept apart
    swapped = Prior.from_dict({**_tables(), "rv": {"dist": "truncnormal", "loc": 3.6, "scale": 0.2, "low": 2.5, "high": 4.5}})
    assert swapped != Prior.default() and hash(swapped) != hash(Prior.default())
    floors = {f: Prior.from_dict({**_tables(), "likelihood": {"sys_floor": f}}) for f in (0.05, "libraries")}
    assert floors[0.05].sys_floor == 0.05 and floors[0.05].nominal_floor == 0.05 and floors[0.05].floor(("gaia_g",), 5000.0) == 0.05
    assert floors["libraries"].nominal_floor == 0.02
    one = {"dist": "mixture", "low": -1.0, "high": 1.0, "weights": [1.0, 0.0],  # a zero weight is allowed
           "components": [{"dist": "uniform", "low": -1.0, "high": 1.0}, {"dist": "truncnormal", "loc": 0.0, "scale": 0.1}]}
    assert Prior.from_dict({**_tables(), "mh": one}).to_dict()["mh"]["weights"] == [1.0, 0.0]
    assert Prior.from_dict({**_tables(), "likelihood": {"sys_floor": 0.0}}).sys_floor == 0.0  # no floor is allowed
    assert Prior(Prior.default().params, Prior.default().scale).sys_floor == "libraries"  # the documented default
    assert Prior.from_dict({k: v for k, v in _tables().items() if k != "likelihood"}).sys_floor == "libraries"
    assert Prior.default().sys_floor == "libraries" and 'sys_floor = "libraries"' in DEFAULT_PRIOR_TOML
    models = Path(__file__).resolve().parents[2] / "models"  # the default before 2026-12-02, as models/ideal has it
    assert Prior.default(sys_floor=0.02) == Prior.load(models / "ideal" / "prior.toml") == Prior.load(
        models / "prior_fixed_floor.toml") != Prior.default()
    params = Prior.default().params
    for order in (params[::-1], (params[0], params[2], params[1]) + params[3:]):
        with pytest.raises(PriorError, match="must define"):
            Prior(order, Prior.default().scale)
    text = Prior.default().to_toml()
    assert 'sys_floor = "libraries"' in text
    from_file = Prior.from_dict(tomllib.loads(text))
    assert from_file.sys_floor == "libraries"  # a string read from a file, not a literal
    from sedppl.model.library_floor import library_floor

    np.testing.assert_array_equal(from_file.floor(("gaia_g", "sdss_u"), 5000.0), library_floor(("gaia_g", "sdss_u"), 5000.0))


def test_loguniform_needs_a_positive_lower_bound():
    for low in (0.0, -1.0):
        prior = Prior.from_dict({**_tables(), "av": {"dist": "loguniform", "low": low, "high": 5.0}})
        with pytest.raises(PriorError, match=r"\[av\]: loguniform needs low > 0"):
            prior.distributions(BOUNDS)
    below_one = Prior.from_dict({**_tables(), "av": {"dist": "loguniform", "low": 0.05, "high": 5.0}})
    assert float(below_one.distributions(BOUNDS)["av"].log_prob(1.0)) == pytest.approx(
        st.loguniform(0.05, 5.0).logpdf(1.0), rel=1e-5)


def test_tables_read_from_toml_text_are_checked_as_literals_are():
    """Strings parsed from a file are new objects, not the interned literals of the code: the kind and the
    floor must be compared by value (a mixture's lengths are checked; the libraries' floor is nominally 0.02)."""
    text = Prior.default().to_toml()
    assert 'sys_floor = "libraries"' in text and Prior.from_dict(tomllib.loads(text)).nominal_floor == 0.02
    text = Prior.default().to_toml().replace("weights = [0.8, 0.2]", "weights = [1.0]")
    assert "weights = [1.0]" in text
    with pytest.raises(PriorError, match="same non-zero length"):
        Prior.from_dict(tomllib.loads(text))


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(PriorError, match="does not exist"):
        Prior.load(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[teff\n")
    with pytest.raises(PriorError, match="not valid TOML"):
        Prior.load(bad)


def test_a_truncnormal_up_to_the_allowed_tail_keeps_its_draws_inside():
    """The limit on how far outside its support a truncnormal's loc may lie is one NumPyro still samples."""
    import jax

    from sedppl.model.priors import MAX_TAIL_SCALES

    rv = {"dist": "truncnormal", "loc": 4.5 + MAX_TAIL_SCALES * 0.18, "scale": 0.18, "low": 2.5, "high": 4.5}
    d = Prior.from_dict({**_tables(), "rv": rv}).params[4].distribution(BOUNDS)
    draws = np.asarray(d.sample(jax.random.key(0), (4000,)))
    assert ((draws >= 2.5) & (draws <= 4.5)).all() and np.isfinite(np.asarray(d.log_prob(draws))).all()
