"""The survey noise model: a band's error, and whether the catalogue has it, follow from the star's magnitude.

Real catalogues are not a random subset of bands with errors drawn blindly: a
band is missing because the star is fainter than the survey's detection limit,
brighter than its saturation limit, or outside its footprint, and errors grow
with magnitude. ``SurveyNoise`` draws errors and presence from each survey's
published performance (``data/surveys.toml``, with its sources):

- error: sigma^2(m) = c0 + c1 10^(0.4 (m - m_ref)) + c2 10^(0.8 (m - m_ref)), a floor
  plus source- and background-limited terms, fitted to published (magnitude,
  error) pairs (the brightest is the floor) or set by the 5-sigma depth and the
  calibration floor;
- detection: probability sigmoid((faint - m) / w) sigmoid((m - bright) / w), edges of
  width w = ``edge_mag``, in the true magnitude;
- footprint: each survey covers the star with its sky fraction, all its bands together;
- dropout: a band the survey measured is still missing with probability ``dropout``,
  band by band (quality cuts, blends, a failed cross-match). Real catalogues have
  such holes: 84 of the 2634 stars of shared/data/mdwarfs (3.2%) have Gaia G without
  BP, 83 of them without RP too, all in multiple systems. Independent dropout makes
  holes of every pattern appear in training (a network that never saw one would read
  a missing BP as a star below BP's limit), the correlated BP-and-RP hole more
  rarely (0.09%) than in that table;
- scatter: at one magnitude, catalogue errors differ from star to star (the
  number of observations, the background, crowding); each star's error is the
  median relation times a log-normal factor of ln-sd ``error_scatter``, and its
  magnitude is drawn with that error, so the Gaussian likelihood with the
  catalogue's error is exact. Without the scatter an error would be a function
  of the true magnitude, and a network could read the magnitude from it more
  precisely than from the measurement itself, which no real catalogue allows.

A star keeps at least ``min_bands`` bands; simulations redraw stars with fewer
(a catalogue only holds stars it detected). The likelihood treats absent bands
as missing: it does not use the information that a band was not detected.
"""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass
from importlib import resources

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float

from .checks import is_real, is_whole
from .passbands import check_bands

SNR5_ERROR = 2.5 / np.log(10.0) / 5.0  # magnitude error at signal-to-noise 5


@functools.cache
def survey_table() -> dict:
    """``data/surveys.toml``: {"survey": {name: ...}, "band": {band: ...}}."""
    return tomllib.loads(resources.files("sedppl.model.data").joinpath("surveys.toml").read_text())


def survey_of(band: str) -> str:
    """A band's survey: its name before the first underscore ("2mass_ks" -> "2mass")."""
    return band.split("_")[0]


def fit_error_relation(points: np.ndarray, m_ref: float) -> np.ndarray:
    """(c0, c1, c2) >= 0 of sigma^2(m) = c0 + c1 u + c2 u^2, u = 10^(0.4 (m - m_ref)), from published points.

    The brightest point is the survey's floor (c0: e.g. Gaia's "G < 13" plateau); c1 and c2 are fitted to
    the fainter points in relative terms, non-negative (every subset of the two terms tried). Two terms
    cannot follow Gaia BP/RP's steady rise from 13 to 20: they meet 17 and 20 and overshoot at 13
    (BP 1.9 mmag for 0.9), where the likelihood's systematic floor dominates anyway.
    """
    m, sigma = np.asarray(points, float)[np.argsort(np.asarray(points, float)[:, 0])].T
    floor = sigma[0] ** 2
    u = 10.0 ** (0.4 * (m[1:] - m_ref))
    design = np.stack([u, u * u], axis=1) / sigma[1:, None] ** 2
    target = 1.0 - floor / sigma[1:] ** 2
    best, best_residual = np.zeros(2), np.sum(target**2)
    for columns in ([0], [1], [0, 1]):
        coef = np.linalg.lstsq(design[:, columns], target, rcond=None)[0]
        if np.any(coef < 0):
            continue
        full = np.zeros(2)
        full[columns] = coef
        residual = np.sum((design @ full - target) ** 2)
        if residual < best_residual:
            best, best_residual = full, residual
    return np.r_[floor, best]


@functools.cache
def band_performance(bands: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Per band (in order): bright, faint, m_ref, the error coefficients (nb, 3), survey index and coverage."""
    table = survey_table()
    missing = [b for b in check_bands(bands) if b not in table["band"]]
    if missing:
        raise KeyError(f"no survey performance for {missing} in sedppl/model/data/surveys.toml")
    surveys = list(dict.fromkeys(survey_of(b) for b in bands))
    rows = []
    for band in bands:
        entry = table["band"][band]
        if "sigma" in entry:
            m_ref = float(np.max(np.asarray(entry["sigma"])[:, 0]))
            coef = fit_error_relation(np.asarray(entry["sigma"]), m_ref)
        else:
            m_ref = float(entry["depth5"])
            coef = np.array([entry["floor"] ** 2, 0.0, SNR5_ERROR**2])
        rows.append((entry["bright"], entry["faint"], m_ref, coef))
    return {
        "bright": np.array([r[0] for r in rows], float),
        "faint": np.array([r[1] for r in rows], float),
        "m_ref": np.array([r[2] for r in rows], float),
        "coef": np.stack([r[3] for r in rows]),
        "survey": np.array([surveys.index(survey_of(b)) for b in bands]),
        "coverage": np.array([table["survey"][s]["coverage"] for s in surveys], float),
    }


def survey_error(bands: tuple[str, ...], mag: Float[Array, " nb"]) -> Float[Array, " nb"]:
    """Each band's catalogue error [mag] at true magnitudes ``mag`` (finite at any magnitude)."""
    t = band_performance(tuple(bands))
    u = 10.0 ** (0.4 * jnp.clip(mag - t["m_ref"], -30.0, 15.0))
    c = t["coef"]
    return jnp.minimum(jnp.sqrt(c[:, 0] + c[:, 1] * u + c[:, 2] * u * u), 10.0)


def detection_probability(bands: tuple[str, ...], mag: Float[Array, " nb"], edge_mag: float) -> Float[Array, " nb"]:
    """Probability that each band is in the catalogue, footprint aside: between saturation and detection limit."""
    t = band_performance(tuple(bands))
    return jax.nn.sigmoid((t["faint"] - mag) / edge_mag) * jax.nn.sigmoid((mag - t["bright"]) / edge_mag)


@dataclass(frozen=True)
class SurveyNoise:
    """Errors and presence of every band from the star's true magnitudes and each survey's performance."""

    min_bands: int = 3
    edge_mag: float = 0.1  # width of the saturation and detection edges [mag]
    # ln-sd of a star's error about the median relation (ours: Gaia's errors scale as N_obs^-1/2, and the
    # scan law gives stars of one magnitude several times more or fewer observations)
    error_scatter: float = 0.25
    dropout: float = 0.03  # chance that a measured band is missing all the same (ours; see the module docstring)

    kind = "survey"

    def __post_init__(self):
        if not is_whole(self.min_bands, 1):
            raise ValueError(f"min_bands must be a whole number >= 1, got {self.min_bands!r}")
        if not is_real(self.edge_mag) or not self.edge_mag > 0:
            raise ValueError(f"edge_mag must be a positive number of magnitudes, got {self.edge_mag!r}")
        if not is_real(self.error_scatter) or not 0 <= self.error_scatter <= 2:
            raise ValueError(f"error_scatter must be a ln-sd between 0 and 2, got {self.error_scatter!r}")
        if not is_real(self.dropout) or not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be a probability in [0, 1), got {self.dropout!r}")

    def to_dict(self) -> dict:
        return {"kind": self.kind, "min_bands": self.min_bands, "edge_mag": self.edge_mag,
                "error_scatter": self.error_scatter, "dropout": self.dropout}

    def error_range(self, bands: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        """Per band, the errors a simulation draws, to 3 sd of the scatter: from the saturation limit to
        five edge widths past the detection limit (out-of-range errors are flagged)."""
        t = band_performance(tuple(bands))
        spread = np.exp(3.0 * self.error_scatter)
        return (np.asarray(survey_error(bands, jnp.asarray(t["bright"]))) / spread,
                np.asarray(survey_error(bands, jnp.asarray(t["faint"] + 5.0 * self.edge_mag))) * spread)

    def draw(self, key: jax.Array, bands: tuple[str, ...], mag: Float[Array, " nb"]
             ) -> tuple[Float[Array, " nb"], Bool[Array, " nb"]]:
        """One star's errors and presence mask given its true magnitudes (enough bands is the caller's test)."""
        t = band_performance(tuple(bands))
        k_footprint, k_detect, k_scatter, k_dropout = jax.random.split(key, 4)
        covered = jax.random.bernoulli(k_footprint, t["coverage"])[t["survey"]]
        detected = jax.random.uniform(k_detect, mag.shape) < detection_probability(bands, mag, self.edge_mag)
        factor = jnp.exp(self.error_scatter * jax.random.normal(k_scatter, mag.shape))
        kept = ~jax.random.bernoulli(k_dropout, float(self.dropout), mag.shape)
        return survey_error(bands, mag) * factor, covered & detected & kept
