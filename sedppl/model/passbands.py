"""Passband registry and synthetic photometry as a linear operator.

Curves come from maintained packages: speclite (Gaia DR3, GALEX, SDSS,
Pan-STARRS, 2MASS, WISE, Bessell V) and pyphot (SkyMapper, CALSPEC Vega).

Each band's magnitudes are on its catalogue's own zero point
(:class:`ZeroPoint`, with the publication it follows): AB (GALEX, Pan-STARRS,
SkyMapper), AB plus a published offset (SDSS u and z; WISE's AB - Vega), or a
Vega system defined by a named CALSPEC Vega spectrum and Vega's magnitude in
it (Gaia DR3, 2MASS). The tests pin each one to independent published numbers.

Photon-counting band fluxes are linear in the spectrum, so for one wavelength
grid we extract speclite's own quadrature as a matrix once (``Passbands``) and
the JAX forward model is then ``weights @ flux``: the same numbers speclite
gives for the same tabulated spectrum, at matmul speed.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ZeroPoint:
    """Where a catalogue puts magnitude zero in one band, and the publication that says so.

    Either a named CALSPEC Vega spectrum (``vega``, a pyphot flavour) has magnitude ``vega_mag``,
    or the band is AB shifted by ``ab_offset``: m = m_AB + ab_offset.
    """

    system: str  # "AB" or "Vega": the catalogue's own name for its system
    source: str
    ab_offset: float = 0.0
    vega: str = ""
    vega_mag: float = 0.0


AB = ZeroPoint("AB", "AB (Oke & Gunn 1983): f_nu = 3631 Jy has magnitude 0")
#: Gaia DR3 VEGAMAG: Riello et al. (2021, A&A 649, A3) and the DR3 documentation (sec. 5.4.1):
#: CALSPEC alpha_lyr_mod_002 with V = 0.023.
GAIA_DR3 = ZeroPoint("Vega", "Gaia DR3 VEGAMAG (Riello et al. 2021): alpha_lyr_mod_002 has 0.023 mag",
                     vega="mod_002", vega_mag=0.023)
#: SDSS is AB up to u_AB = u_SDSS - 0.04 and z_AB = z_SDSS + 0.02 (SDSS DR7-DR9 "flux calibration" pages).
SDSS_U = ZeroPoint("AB", "SDSS flux calibration: u_AB = u_SDSS - 0.04", ab_offset=0.04)
SDSS_Z = ZeroPoint("AB", "SDSS flux calibration: z_AB = z_SDSS + 0.02", ab_offset=-0.02)
#: 2MASS on CALSPEC Vega: Maiz Apellaniz & Pantaleoni Gonzalez (2018, A&A 616, L7) find Vega at
#: J = -0.025, H = +0.004, Ks = -0.015 (each +-0.005) from HST CALSPEC spectrophotometry.
TWOMASS = {b: ZeroPoint("Vega", f"2MASS (Maiz Apellaniz & Pantaleoni Gonzalez 2018): alpha_lyr_stis_011 has {m:+.3f}",
                        vega="stis_011", vega_mag=m) for b, m in (("j", -0.025), ("h", 0.004), ("ks", -0.015))}
#: WISE All-Sky Explanatory Supplement IV.4.h (Jarrett et al. 2011): m_AB - m_Vega = 2.699 (W1), 3.339 (W2).
WISE = {b: ZeroPoint("Vega", f"WISE All-Sky Explanatory Supplement (Jarrett et al. 2011): m_AB - m_Vega = {d}",
                     ab_offset=-d) for b, d in (("w1", 2.699), ("w2", 3.339))}
#: Bessell & Murphy (2012): Vega has V = 0.03 (calibration checks only).
BESSELL_V = ZeroPoint("Vega", "Bessell & Murphy (2012): alpha_lyr_stis_011 has V = 0.03", vega="stis_011", vega_mag=0.03)


@dataclass(frozen=True)
class Band:
    """One registry entry: where its curve comes from and where its catalogue puts magnitude zero."""

    name: str
    zero_point: ZeroPoint
    package: str  # "speclite" or "pyphot"
    curve: str  # the package's own name for the curve

    @property
    def system(self) -> str:
        return self.zero_point.system

    @property
    def vega_mag(self) -> float:
        """Vega's magnitude in this band by the catalogue's definition (nominally 0 where it is set by an
        AB offset; NaN for AB systems)."""
        return self.zero_point.vega_mag if self.system == "Vega" else float("nan")


def _band(name: str, zero_point: ZeroPoint, package: str, curve: str) -> tuple[str, Band]:
    return name, Band(name, zero_point, package, curve)


REGISTRY: dict[str, Band] = dict(
    [
        _band("gaia_g", GAIA_DR3, "speclite", "gaiadr3-G"),
        _band("gaia_bp", GAIA_DR3, "speclite", "gaiadr3-BP"),
        _band("gaia_rp", GAIA_DR3, "speclite", "gaiadr3-RP"),
        _band("galex_fuv", AB, "speclite", "galex-fuv"),
        _band("galex_nuv", AB, "speclite", "galex-nuv"),
        *[_band(f"sdss_{b}", {"u": SDSS_U, "z": SDSS_Z}.get(b, AB), "speclite", f"sdss2010-{b}") for b in "ugriz"],
        *[_band(f"ps1_{b}", AB, "speclite", f"panstarrs-{b}") for b in "grizy"],
        *[_band(f"skymapper_{b}", AB, "pyphot", f"SkyMapper_{b}") for b in "uvgriz"],
        _band("2mass_j", TWOMASS["j"], "speclite", "twomass-J"),
        _band("2mass_h", TWOMASS["h"], "speclite", "twomass-H"),
        _band("2mass_ks", TWOMASS["ks"], "speclite", "twomass-Ks"),
        _band("wise_w1", WISE["w1"], "speclite", "wise2010-W1"),
        _band("wise_w2", WISE["w2"], "speclite", "wise2010-W2"),
        _band("bessell_v", BESSELL_V, "speclite", "bessell-V"),
    ]
)

#: The survey bands a catalog may carry (Bessell V is kept for calibration checks).
SURVEY_BANDS: tuple[str, ...] = tuple(b for b in REGISTRY if b != "bessell_v")


def check_bands(bands) -> tuple[str, ...]:
    """Validate band names against the registry; return them as a tuple."""
    if isinstance(bands, str):
        raise TypeError(f"bands must be a sequence of band names, not the string {bands!r} (write ({bands!r},))")
    bands = tuple(bands)
    if not bands:
        raise ValueError("need at least one band")
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
def vega_spectrum(flavor: str = "stis_011") -> tuple[np.ndarray, np.ndarray]:
    """A CALSPEC Vega spectrum shipped with pyphot (``alpha_lyr_<flavor>``): wavelength [A],
    F_lambda [erg s^-1 cm^-2 A^-1]."""
    from pyphot import Vega

    with Vega(flavor=flavor) as vega:
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
    """Convolution of a source of magnitude 0 in the band's catalogue system (photon-weighted)."""
    zp, resp = REGISTRY[name].zero_point, filter_response(name)
    if not zp.vega:
        return float(resp.ab_zeropoint.value) * 10 ** (0.4 * zp.ab_offset)
    wave, flux = vega_spectrum(zp.vega)
    return float(resp.convolve_with_array(wave, flux, photon_weighted=True, interpolate=True)) * 10 ** (
        0.4 * zp.vega_mag
    )


def ab_minus_catalogue(name: str) -> float:
    """m_AB - m_band, the same for every source: the band's zero point as one number (0 for pure AB)."""
    resp = filter_response(name)
    return float(2.5 * np.log10(float(resp.ab_zeropoint.value) / reference_convolution(name))) + 0.0


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
                zero_point=band.zero_point.source,
            )
        )
    return rows
