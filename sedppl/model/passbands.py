"""Passband registry and synthetic photometry as a linear operator.

Curves come from maintained packages: speclite (Gaia DR3, GALEX, SDSS,
Pan-STARRS, 2MASS, WISE, Bessell V) and pyphot (SkyMapper). Each band keeps
its native system: AB (GALEX, SDSS, Pan-STARRS, SkyMapper) or Vega (Gaia,
2MASS, WISE, Bessell V) with pyphot's CALSPEC ``alpha_lyr_stis_011`` Vega.

Photon-counting band fluxes are linear in the spectrum, so for one wavelength
grid we extract speclite's own quadrature as a matrix once (``Passbands``) and
the JAX forward model is then ``weights @ flux``: the same numbers speclite
gives for the same tabulated spectrum, at matmul speed.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

# Vega's magnitude in each Vega-system passband: Bessell & Murphy (2012) for V;
# Gaia DR3 VEGAMAG (Riello et al. 2021) for G, BP, RP; 0 for 2MASS and WISE.
VEGA_MAG = {"gaia": 0.023, "bessell": 0.03, "2mass": 0.0, "wise": 0.0}


@dataclass(frozen=True)
class Band:
    """One registry entry: where its curve comes from and its magnitude system."""

    name: str
    system: str  # "AB" or "Vega"
    package: str  # "speclite" or "pyphot"
    curve: str  # the package's own name for the curve

    @property
    def vega_mag(self) -> float:
        return VEGA_MAG[self.name.split("_")[0]] if self.system == "Vega" else float("nan")


def _band(name: str, system: str, package: str, curve: str) -> tuple[str, Band]:
    return name, Band(name, system, package, curve)


REGISTRY: dict[str, Band] = dict(
    [
        _band("gaia_g", "Vega", "speclite", "gaiadr3-G"),
        _band("gaia_bp", "Vega", "speclite", "gaiadr3-BP"),
        _band("gaia_rp", "Vega", "speclite", "gaiadr3-RP"),
        _band("galex_fuv", "AB", "speclite", "galex-fuv"),
        _band("galex_nuv", "AB", "speclite", "galex-nuv"),
        *[_band(f"sdss_{b}", "AB", "speclite", f"sdss2010-{b}") for b in "ugriz"],
        *[_band(f"ps1_{b}", "AB", "speclite", f"panstarrs-{b}") for b in "grizy"],
        *[_band(f"skymapper_{b}", "AB", "pyphot", f"SkyMapper_{b}") for b in "uvgriz"],
        _band("2mass_j", "Vega", "speclite", "twomass-J"),
        _band("2mass_h", "Vega", "speclite", "twomass-H"),
        _band("2mass_ks", "Vega", "speclite", "twomass-Ks"),
        _band("wise_w1", "Vega", "speclite", "wise2010-W1"),
        _band("wise_w2", "Vega", "speclite", "wise2010-W2"),
        _band("bessell_v", "Vega", "speclite", "bessell-V"),
    ]
)

#: The survey bands a catalog may carry (Bessell V is kept for calibration checks).
SURVEY_BANDS: tuple[str, ...] = tuple(b for b in REGISTRY if b != "bessell_v")


def check_bands(bands) -> tuple[str, ...]:
    """Validate band names against the registry; return them as a tuple."""
    bands = tuple(bands)
    unknown = [b for b in bands if b not in REGISTRY]
    if unknown:
        raise KeyError(f"Unknown band(s) {unknown}; known bands: {', '.join(REGISTRY)}")
    if len(set(bands)) != len(bands):
        raise ValueError(f"Duplicate band names in {bands}")
    return bands


@functools.cache
def filter_response(name: str):
    """The band's curve as a speclite ``FilterResponse`` (pyphot curves are wrapped)."""
    import speclite.filters as sf

    band = REGISTRY[check_bands([name])[0]]
    if band.package == "speclite":
        return sf.load_filter(band.curve)
    from pyphot import get_library

    curve = get_library()[band.curve]
    wave = np.asarray(curve.wavelength.to("AA").value, dtype=float)
    resp = np.clip(np.asarray(curve.transmit, dtype=float), 0.0, None)
    step = np.diff(wave[:2])[0]
    wave = np.concatenate([[wave[0] - step], wave, [wave[-1] + step]])
    resp = np.concatenate([[0.0], resp, [0.0]])
    return sf.FilterResponse(wave, resp, meta=dict(group_name="sedppl_skymapper", band_name=name.split("_")[1]))


@functools.cache
def vega_spectrum() -> tuple[np.ndarray, np.ndarray]:
    """CALSPEC alpha_lyr_stis_011 (pyphot): wavelength [A], F_lambda [erg s^-1 cm^-2 A^-1]."""
    from pyphot import Vega

    with Vega(flavor="stis_011") as vega:
        wave = np.asarray(vega.wavelength.to("AA").value, dtype=float)
        flux = np.asarray(vega.flux.value, dtype=float)
    return wave, flux


def convolution_weights(name: str, wavelength_aa: np.ndarray) -> np.ndarray:
    """Row vector w with w @ f == speclite's photon-weighted convolution of f on this grid."""
    from speclite.filters import FilterConvolution

    conv = FilterConvolution(filter_response(name), wavelength_aa, photon_weighted=True, interpolate=True)
    return np.asarray(conv(np.eye(len(wavelength_aa))), dtype=float)


@functools.cache
def reference_convolution(name: str) -> float:
    """Convolution of the band's zero-magnitude reference: 10**(-0.4 m_ref) x reference flux."""
    band, resp = REGISTRY[name], filter_response(name)
    if band.system == "AB":
        return float(resp.ab_zeropoint.value)
    wave, flux = vega_spectrum()
    return float(resp.convolve_with_array(wave, flux, photon_weighted=True, interpolate=True)) * 10 ** (
        0.4 * band.vega_mag
    )


def effective_wavelength(name: str) -> float:
    """Photon-weighted effective wavelength of the response [A] (speclite's definition)."""
    return float(filter_response(name).effective_wavelength.value)


def synthetic_magnitude(name: str, wavelength_aa: np.ndarray, flam: np.ndarray) -> np.ndarray:
    """Reference (NumPy/speclite) magnitude of F_lambda [erg s^-1 cm^-2 A^-1] in a band's native system."""
    conv = filter_response(name).convolve_with_array(
        wavelength_aa, flam, photon_weighted=True, interpolate=True, axis=-1
    )
    return -2.5 * np.log10(np.asarray(conv) / reference_convolution(name))


@dataclass(frozen=True)
class Passbands:
    """Band names and the matrix that maps 10**log10(lambda F_lambda) on a grid to flux ratios.

    ``weights[b] @ 10**log_lam_flam`` is the band flux relative to the band's
    zero-magnitude reference, so the magnitude is ``-2.5 log10`` of it.
    """

    names: tuple[str, ...]
    weights: np.ndarray  # (n_band, n_wave)

    @classmethod
    def build(cls, names, wavelength_aa: np.ndarray) -> Passbands:
        names = check_bands(names)
        wave = np.asarray(wavelength_aa, dtype=float)
        rows = [convolution_weights(b, wave) / wave / reference_convolution(b) for b in names]
        return cls(names, np.stack(rows))


def describe() -> list[dict]:
    """One row per registry band: name, system, effective wavelength, source."""
    rows = []
    for band in REGISTRY.values():
        rows.append(
            dict(
                name=band.name,
                system=band.system,
                lambda_eff_um=round(effective_wavelength(band.name) / 1e4, 4),
                source=f"{band.package}:{band.curve}",
                vega_mag=None if band.system == "AB" else band.vega_mag,
            )
        )
    return rows
