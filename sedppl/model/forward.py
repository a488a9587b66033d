"""The stellar forward model: (teff, logg, mh, av, rv) and angular diameter -> magnitudes.

For a spectral library the steps are: interpolate log10(lambda F_lambda) in
the grid, multiply the whole spectrum by the Fitzpatrick (1999) extinction at
the star's R_V, integrate through every passband (a fixed matrix), and dilute
by (theta/2)^2. For the photometry-only BOSZ library the band fluxes are
interpolated directly and the extinction of each band is borrowed from the
Phoenix spectrum at the same parameters, reddened and integrated as above.

Everything is a function of one star (vmap for many) and is finite
everywhere: outside the grid's validity region magnitudes are still finite and
``in_grid`` is False (the generative model turns that into -inf).
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float

from .atmospheres import FLOOR_DEX, PhotometricGrid, SpectralGrid, load_library
from .extinction import Fitzpatrick99
from .passbands import SURVEY_BANDS, Passbands, check_bands, filter_response, reference_convolution

PARAMS: tuple[str, ...] = ("teff", "logg", "mh", "av", "rv")
MAS_IN_RAD = np.pi / (180.0 * 3600.0 * 1000.0)


def dilution_mag(log10_theta_mas: ArrayLike) -> Float[Array, ""]:
    """Magnitude offset from surface to observed flux: -2.5 log10((theta/2)^2), theta in mas."""
    return -5.0 * (jnp.asarray(log10_theta_mas) + np.log10(MAS_IN_RAD / 2.0))


def log10_theta_from_dilution(dilution: ArrayLike) -> Float[Array, ""]:
    """Inverse of :func:`dilution_mag`: log10 of the angular diameter in mas."""
    return -jnp.asarray(dilution) / 5.0 - np.log10(MAS_IN_RAD / 2.0)


class _ForwardModel(eqx.Module):
    """Shared interface: surface magnitudes, diluted by the angular diameter."""

    def surface_magnitudes(self, params: Float[Array, " 5"]) -> Float[Array, " nb"]:
        raise NotImplementedError

    def magnitudes(self, params: Float[Array, " 5"], log10_theta_mas: ArrayLike) -> Float[Array, " nb"]:
        """Observed magnitudes of a star of angular diameter 10**log10_theta_mas mas."""
        return self.surface_magnitudes(params) + dilution_mag(log10_theta_mas)


class SpectralForwardModel(_ForwardModel):
    """Forward model on a spectral library: extinction multiplies the spectrum before integration."""

    grid: SpectralGrid
    extinction: Fitzpatrick99
    weights: Float[Array, "nb nw"]
    bands: tuple[str, ...] = eqx.field(static=True)

    def __init__(self, grid: SpectralGrid, bands=SURVEY_BANDS):
        self.bands = check_bands(bands)
        wave = np.asarray(grid.wavelength_aa, np.float64)
        self.grid = grid
        self.extinction = Fitzpatrick99(wave)
        self.weights = jnp.asarray(Passbands.build(self.bands, wave).weights, jnp.float32)

    @property
    def library(self) -> str:
        return self.grid.name

    def in_grid(self, params: Float[Array, " 5"]) -> Bool[Array, ""]:
        return self.grid.is_valid(params[0], params[1], params[2])

    def logg_floor(self, teff: ArrayLike, mh: ArrayLike) -> Float[Array, ""]:
        return self.grid.logg_floor(teff, mh)

    def spectrum(self, params: Float[Array, " 5"]) -> Float[Array, " nw"]:
        """Reddened log10(lambda F_lambda) of the stellar surface on the library's wavelengths."""
        log_flux = self.grid.interpolate(params[0], params[1], params[2])
        return log_flux - 0.4 * params[3] * self.extinction(params[4])

    def surface_magnitudes(self, params: Float[Array, " 5"]) -> Float[Array, " nb"]:
        """Magnitudes of the stellar surface flux (theta/2 = 1 rad)."""
        log_flux = self.spectrum(params)
        peak = jnp.max(log_flux)
        relative = 10.0 ** jnp.maximum(log_flux - peak, -FLOOR_DEX)
        return -2.5 * (jnp.log10(self.weights @ relative) + peak)


class PhotometricForwardModel(_ForwardModel):
    """Forward model on a photometry-only library (BOSZ).

    Extinction of each band is the Phoenix model's reddening at the same
    (teff, logg, mh, av, rv): m(av) - m(0), computed by reddening the Phoenix
    spectrum, so the band-integrated curvature is kept.
    """

    grid: PhotometricGrid
    reddening: SpectralForwardModel
    band_index: Array
    band_norm_mag: Float[Array, " nb"]
    bands: tuple[str, ...] = eqx.field(static=True)

    def __init__(self, grid: PhotometricGrid, bands=SURVEY_BANDS):
        self.bands = check_bands(bands)
        missing = [b for b in self.bands if b not in grid.bands]
        if missing:
            raise KeyError(f"Library {grid.name!r} has no photometry for {missing}; it has {grid.bands}")
        self.grid = grid
        self.reddening = SpectralForwardModel(load_library("phoenix"), self.bands)
        self.band_index = jnp.asarray([grid.bands.index(b) for b in self.bands])
        # magnitude of a flat unit F_lambda in each band: -2.5 log10(conv(1) / reference)
        flat = [
            -2.5 * np.log10(float(filter_response(b).convolve_with_function(lambda w: np.ones_like(w)).value)
                            / reference_convolution(b))
            for b in self.bands
        ]
        self.band_norm_mag = jnp.asarray(flat, jnp.float32)

    @property
    def library(self) -> str:
        return self.grid.name

    def in_grid(self, params: Float[Array, " 5"]) -> Bool[Array, ""]:
        return self.grid.is_valid(params[0], params[1], params[2]) & self.reddening.in_grid(params)

    def logg_floor(self, teff: ArrayLike, mh: ArrayLike) -> Float[Array, ""]:
        return jnp.maximum(self.grid.logg_floor(teff, mh), self.reddening.logg_floor(teff, mh))

    def surface_magnitudes(self, params: Float[Array, " 5"]) -> Float[Array, " nb"]:
        log_band_flam = self.grid.interpolate(params[0], params[1], params[2])[self.band_index]
        unreddened = params.at[3].set(0.0)
        extinction = self.reddening.surface_magnitudes(params) - self.reddening.surface_magnitudes(unreddened)
        return -2.5 * log_band_flam + self.band_norm_mag + extinction


ForwardModel = SpectralForwardModel | PhotometricForwardModel


@functools.cache
def _build(library: str, bands: tuple[str, ...]) -> ForwardModel:
    grid = load_library(library)
    if isinstance(grid, SpectralGrid):
        return SpectralForwardModel(grid, bands)
    return PhotometricForwardModel(grid, bands)


def forward_model(library: str = "phoenix", bands=SURVEY_BANDS) -> ForwardModel:
    """The forward model for a library and band list (cached)."""
    return _build(library, check_bands(bands))
