"""The stellar forward model: (teff, logg, mh, av, rv) and angular diameter -> magnitudes.

For a spectral library the physics is: multiply each node's spectrum by the
Fitzpatrick (1999) extinction at the star's R_V, integrate it through every
passband (a fixed matrix), interpolate the band magnitudes between nodes with
the grid's C1 cubic Hermite scheme, and dilute by (theta/2)^2. Three paths
compute it (``forward_model(path=...)``):

- ``fast`` (default): the node magnitudes come precomputed on a grid in
  (A_V, R_V) (``band_tables``); smooth in all five parameters.
- ``spectral``: the reference; the 64 nodes around the star are reddened and
  integrated at every call. The two agree to the tables' tolerance.
- ``multilinear``: sedppl 0.4's model, kept to reproduce models trained under
  it: the spectra are interpolated multilinearly, then reddened and integrated.
  The order matters: integrating then interpolating differs from this by up to
  tens of mmag between nodes, and its gradient jumps at every cell face.

For the photometry-only BOSZ library the band fluxes are interpolated
directly and the extinction of each band is borrowed from Phoenix on the same
path.

Everything is a function of one star (vmap for many) and is finite
everywhere: outside the grid's validity region magnitudes are still finite and
``in_grid`` is False (the generative model turns that into -inf).
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float

from .atmospheres import FLOOR_DEX, PhotometricGrid, SpectralGrid, load_library
from .band_tables import load_tables
from .extinction import Fitzpatrick99
from .hermite import regular_hermite, slope_weights, with_derivatives
from .passbands import SURVEY_BANDS, Passbands, check_bands, filter_response, reference_convolution

PARAMS: tuple[str, ...] = ("teff", "logg", "mh", "av", "rv")
# On a CPU, batches of more than ONE_VMAP_MAX stars are evaluated BLOCK at a time (``vmap_in_blocks``): XLA's
# temporaries (~1.9 kB a star on the fast path) then stay ~8 MB and are reused from the heap, where one vmap
# over 1e5 stars maps ~186 MB of fresh pages at every call. At 1e4 stars one vmap is faster (BENCHMARKS.md,
# "Forward model"). An accelerator needs large batches to fill it: there one vmap takes up to
# ACCELERATOR_VMAP_MAX stars (~2 GB of temporaries; other sizes not measured).
BLOCK, ONE_VMAP_MAX = 4096, 16384
ACCELERATOR_VMAP_MAX = 2**20
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

    def extinction(self, params: Float[Array, " 5"]) -> Float[Array, " nb"]:
        """Each band's extinction A_band [mag] at the star's parameters."""
        return self.surface_magnitudes(params) - self.surface_magnitudes(params.at[3].set(0.0))

    def magnitudes(self, params: Float[Array, " 5"], log10_theta_mas: ArrayLike) -> Float[Array, " nb"]:
        """Observed magnitudes of a star of angular diameter 10**log10_theta_mas mas."""
        if jnp.shape(params) != (len(PARAMS),):  # static: JAX would clamp a missing column's index silently
            raise ValueError(f"params of one star must have shape ({len(PARAMS)},) with columns {PARAMS}, "
                             f"got {jnp.shape(params)} (many stars: many_magnitudes or jax.vmap)")
        return self.surface_magnitudes(params) + dilution_mag(log10_theta_mas)

    def in_grid(self, params: Float[Array, " 5"]) -> Bool[Array, ""]:
        return self.grid.is_valid(params[0], params[1], params[2])

    def logg_floor(self, teff: ArrayLike, mh: ArrayLike) -> Float[Array, ""]:
        return self.grid.logg_floor(teff, mh)

    @property
    def library(self) -> str:
        return self.grid.name

    def extinction_domain(self) -> dict[str, tuple[float, float]]:
        """The A_V and R_V ranges the model is defined on (the prior's support must lie inside)."""
        return {"av": (-np.inf, np.inf), "rv": (0.0, np.inf)}


def _band_magnitudes(log_flux: Float[Array, "... nw"], weights: Float[Array, "nb nw"]) -> Float[Array, "... nb"]:
    """Magnitudes of log10(lambda F_lambda) spectra through the passband matrix, finite for any spectrum."""
    peak = jnp.max(log_flux, axis=-1, keepdims=True)
    relative = 10.0 ** jnp.maximum(log_flux - peak, -FLOOR_DEX)
    return -2.5 * (jnp.log10(relative @ weights.T) + peak)


class SpectralForwardModel(_ForwardModel):
    """Forward model on a spectral library: extinction multiplies the spectrum before integration.

    ``interpolation="hermite"`` (the reference path): the reddened band
    magnitudes of the 4 x 4 x 4 nodes around the star are integrated from their
    spectra at the star's (A_V, R_V), then combined by the grid's C1 cubic Hermite
    interpolant. ``"multilinear"``: the spectra are interpolated multilinearly and
    then integrated (sedppl up to 0.4; its gradient jumps at cell faces).
    """

    grid: SpectralGrid
    extinction_curve: Fitzpatrick99
    weights: Float[Array, "nb nw"]
    padded: Float[Array, "nt2 ng2 nz2 nw"] | None
    bands: tuple[str, ...] = eqx.field(static=True)
    interpolation: str = eqx.field(static=True)

    def __init__(self, grid: SpectralGrid, bands=SURVEY_BANDS, interpolation: str = "hermite"):
        if interpolation not in ("hermite", "multilinear"):
            raise ValueError(f"interpolation must be 'hermite' or 'multilinear', not {interpolation!r}")
        self.bands = check_bands(bands)
        self.interpolation = interpolation
        wave = np.asarray(grid.wavelength_aa, np.float64)
        self.grid = grid
        self.extinction_curve = Fitzpatrick99(wave)
        self.weights = jnp.asarray(Passbands.build(self.bands, wave).weights, jnp.float32)
        self.padded = jnp.pad(grid.values, ((1, 1), (1, 1), (1, 1), (0, 0)), mode="edge") if interpolation == "hermite" else None

    @property
    def path(self) -> str:
        return "spectral" if self.interpolation == "hermite" else "multilinear"

    def spectrum(self, params: Float[Array, " 5"]) -> Float[Array, " nw"]:
        """Reddened log10(lambda F_lambda) of the stellar surface, interpolated multilinearly."""
        log_flux = self.grid.interpolate(params[0], params[1], params[2])
        return log_flux - 0.4 * params[3] * self.extinction_curve(params[4])

    def surface_magnitudes(self, params: Float[Array, " 5"]) -> Float[Array, " nb"]:
        """Magnitudes of the stellar surface flux (theta/2 = 1 rad)."""
        if self.interpolation == "multilinear":
            return _band_magnitudes(self.spectrum(params), self.weights)
        start, weights = self.grid.stencil(params[0], params[1], params[2])
        zero = jnp.zeros((), start.dtype)
        block = jax.lax.dynamic_slice(self.padded, (start[0], start[1], start[2], zero),
                                      (4, 4, 4, self.padded.shape[-1]))
        reddened = block - 0.4 * params[3] * self.extinction_curve(params[4])
        return jnp.tensordot(weights.astype(block.dtype), _band_magnitudes(reddened, self.weights), axes=3)


def _band_matrix(owners: np.ndarray, columns: list[int]) -> Float[Array, "r nb"]:
    """One-hot (components, bands): which of the model's bands (``columns`` of the tables) each component's
    term adds to."""
    return jnp.asarray(owners[:, None] == np.asarray(columns)[None, :], jnp.float32)


class TabulatedForwardModel(_ForwardModel):
    """The fast path: band magnitudes precomputed from the spectra (``band_tables``), C1 in every parameter.

    m_b = m0_b + A_V sum_r alpha_br phi_br(A_V, R_V): m0 and alpha are Hermite-interpolated
    between the grid's nodes, phi between the (A_V, R_V) samples. The flat components, whose node
    slopes together change no band by more than the tables' tolerance (``band_tables.choose_flat``;
    ``flat`` overrides the tables' choice), are interpolated from their values alone (``hermite``:
    still C1), which reads one row per corner instead of four. Agrees with the spectral path
    (``interpolation="hermite"``) to the tables' tolerance twice over: the compression's and the
    flat components'.
    """

    grid: SpectralGrid
    table: Float[Array, "nt ng nz 4 q"]
    flat_table: Float[Array, "nt ng nz 1 rf"]
    phi: Float[Array, "nav nrv 3 rs"]
    flat_phi: Float[Array, "nav nrv 1 rf"]
    shaped_band: Float[Array, "rs nb"]
    flat_band: Float[Array, "rf nb"]
    bands: tuple[str, ...] = eqx.field(static=True)
    av_axis: tuple[float, float, int] = eqx.field(static=True)
    rv_axis: tuple[float, float, int] = eqx.field(static=True)

    def __init__(self, grid: SpectralGrid, bands=SURVEY_BANDS, flat: np.ndarray | None = None,
                 tables: dict[str, np.ndarray] | None = None):
        self.bands = check_bands(bands)
        self.grid = grid
        tables = load_tables(grid.name) if tables is None else tables
        known = list(tables["bands"])
        missing = [b for b in self.bands if b not in known]
        if missing:
            raise KeyError(f"no band tables for {missing}; use the spectral forward path")
        columns = [known.index(b) for b in self.bands]
        owner = tables["component_band"]
        is_flat = np.asarray(tables["flat"] if flat is None else flat, bool)
        if is_flat.shape != owner.shape:
            raise ValueError(f"flat must hold one flag per component {owner.shape}, got shape {is_flat.shape}")
        components = np.flatnonzero(np.isin(owner, columns))
        shaped_ids, flat_ids = components[~is_flat[components]], components[is_flat[components]]
        alpha = tables["alpha"]
        self.table = grid.with_slopes(np.concatenate([tables["m0"][..., columns], alpha[..., shaped_ids]], axis=-1))
        self.flat_table = jnp.asarray(alpha[..., None, flat_ids], jnp.float32)
        self.shaped_band = _band_matrix(owner[shaped_ids], columns)
        self.flat_band = _band_matrix(owner[flat_ids], columns)
        av, rv = tables["av"], tables["rv"]
        slopes = slope_weights((av, rv), np.ones((av.size, rv.size), bool))
        phi = np.moveaxis(tables["phi"], 0, -1)
        self.phi = jnp.asarray(with_derivatives(phi[..., shaped_ids], slopes), jnp.float32)
        self.flat_phi = jnp.asarray(phi[..., None, flat_ids], jnp.float32)
        self.av_axis = (float(av[0]), float(av[1] - av[0]), int(av.size))
        self.rv_axis = (float(rv[0]), float(rv[1] - rv[0]), int(rv.size))

    @property
    def path(self) -> str:
        return "fast"

    def extinction_domain(self) -> dict[str, tuple[float, float]]:
        return {name: (start, start + step * (n - 1)) for name, (start, step, n) in
                (("av", self.av_axis), ("rv", self.rv_axis))}

    def in_grid(self, params: Float[Array, " 5"]) -> Bool[Array, ""]:
        """Inside the grid's validity region and the tables' (A_V, R_V) range (beyond it the basis is held
        at the edge: finite, not physics)."""
        inside = self.grid.is_valid(params[0], params[1], params[2])
        for value, (lo, hi) in zip(params[3:], self.extinction_domain().values()):
            inside &= (value >= lo) & (value <= hi)
        return inside

    def components(self, params: Float[Array, " 5"]) -> tuple[Array, Array, Array]:
        """(m0 (nb,), alpha phi of the shaped components, alpha phi of the flat ones), each component in
        the tables' order within its group: the terms of ``surface_magnitudes`` before the band sums."""
        teff, logg, mh, av, rv = params
        shaped = self.grid.hermite(self.table, teff, logg, mh)
        flat = self.grid.hermite(self.flat_table, teff, logg, mh)
        at, axes = jnp.stack([av, rv]), (self.av_axis, self.rv_axis)
        nb = len(self.bands)
        return (shaped[:nb], shaped[nb:] * regular_hermite(self.phi, at, axes),
                flat * regular_hermite(self.flat_phi, at, axes))

    def _split(self, params: Float[Array, " 5"]) -> tuple[Array, Array]:
        m0, shaped, flat = self.components(params)
        return m0, params[3] * (shaped @ self.shaped_band + flat @ self.flat_band)

    def extinction(self, params: Float[Array, " 5"]) -> Float[Array, " nb"]:
        return self._split(params)[1]

    def surface_magnitudes(self, params: Float[Array, " 5"]) -> Float[Array, " nb"]:
        m0, extinction = self._split(params)
        return m0 + extinction


class PhotometricForwardModel(_ForwardModel):
    """Forward model on a photometry-only library (BOSZ).

    Extinction of each band is the Phoenix model's reddening at the same
    (teff, logg, mh, av, rv), m(av) - m(0), on the same path (fast, spectral or
    multilinear), so the band-integrated curvature is kept. The unreddened band
    fluxes are Hermite-interpolated in the BOSZ grid (multilinearly on the
    multilinear path).
    """

    grid: PhotometricGrid
    reddening: SpectralForwardModel | TabulatedForwardModel
    table: Float[Array, "nt ng nz 4 nb"]
    band_index: Array
    band_norm_mag: Float[Array, " nb"]
    bands: tuple[str, ...] = eqx.field(static=True)

    def __init__(self, grid: PhotometricGrid, bands=SURVEY_BANDS, path: str = "fast"):
        self.bands = check_bands(bands)
        missing = [b for b in self.bands if b not in grid.bands]
        if missing:
            raise KeyError(f"Library {grid.name!r} has no photometry for {missing}; it has {grid.bands}")
        self.grid = grid
        self.reddening = _build("phoenix", self.bands, path)
        # magnitude of a flat unit F_lambda in each band: -2.5 log10(conv(1) / reference)
        flat = np.array([
            -2.5 * np.log10(float(filter_response(b).convolve_with_function(lambda w: np.ones_like(w)).value)
                            / reference_convolution(b))
            for b in self.bands
        ])
        index = [grid.bands.index(b) for b in self.bands]
        self.band_index, self.band_norm_mag = jnp.asarray(index), jnp.asarray(flat, jnp.float32)
        # a band a node lacks was filled FLOOR_DEX below the band's faintest value (``load_library``): its
        # slopes must not reach across that fill, or the cubic overshoots by magnitudes in the next cells
        values = np.asarray(grid.values, np.float64)[..., index]
        fill = values.min(axis=(0, 1, 2), keepdims=True)
        lowest_real = np.where(values > fill + 1e-3, values, np.inf).min(axis=(0, 1, 2), keepdims=True)
        real = ~((lowest_real - fill > 0.5 * FLOOR_DEX) & (values <= fill + 1e-3))
        axes = tuple(np.asarray(a, np.float64) for a in grid.axes)
        has = np.asarray(grid.has_node)
        self.table = jnp.stack([jnp.asarray(with_derivatives(-2.5 * values[..., b] + flat[b],
                                                             slope_weights(axes, has & real[..., b])), jnp.float32)
                                for b in range(len(index))], axis=-1)

    @property
    def path(self) -> str:
        return self.reddening.path

    def in_grid(self, params: Float[Array, " 5"]) -> Bool[Array, ""]:
        return self.grid.is_valid(params[0], params[1], params[2]) & self.reddening.in_grid(params)

    def logg_floor(self, teff: ArrayLike, mh: ArrayLike) -> Float[Array, ""]:
        return jnp.maximum(self.grid.logg_floor(teff, mh), self.reddening.logg_floor(teff, mh))

    def extinction_domain(self) -> dict[str, tuple[float, float]]:
        return self.reddening.extinction_domain()

    def surface_magnitudes(self, params: Float[Array, " 5"]) -> Float[Array, " nb"]:
        if self.path == "multilinear":
            unreddened = -2.5 * self.grid.interpolate(params[0], params[1], params[2])[self.band_index] + self.band_norm_mag
        else:
            unreddened = self.grid.hermite(self.table, params[0], params[1], params[2])
        return unreddened + self.reddening.extinction(params)


ForwardModel = SpectralForwardModel | TabulatedForwardModel | PhotometricForwardModel


def block_sizes() -> tuple[int, int]:
    """(block, one_vmap_max) for the default backend: ``vmap_in_blocks``' defaults."""
    if jax.default_backend() == "cpu":
        return BLOCK, ONE_VMAP_MAX
    return ACCELERATOR_VMAP_MAX, ACCELERATOR_VMAP_MAX


def vmap_in_blocks(per_row, xs, block: int | None = None, one_vmap_max: int | None = None):
    """``jax.vmap(per_row)(xs)``, over more than ``one_vmap_max`` rows evaluated in equal blocks of at most
    ``block`` rows (padded at the end with fewer repeated rows than there are blocks, so that one program
    serves every block): the same numbers to float32 rounding, in bounded memory. Sizes default to
    ``block_sizes()``."""
    default_block, default_max = block_sizes()
    block = default_block if block is None else block
    one_vmap_max = default_max if one_vmap_max is None else one_vmap_max
    n = jax.tree_util.tree_leaves(xs)[0].shape[0]
    if n <= one_vmap_max:
        return jax.vmap(per_row)(xs)
    count = -(-n // block)
    size = -(-n // count)
    padded = jax.tree_util.tree_map(lambda x: jnp.concatenate([x, x[: count * size - n]]), xs)
    ys = jax.lax.map(per_row, padded, batch_size=size)
    return jax.tree_util.tree_map(lambda y: y[:n], ys)


def many_magnitudes(forward: ForwardModel, params: Float[ArrayLike, "n 5"],
                    log10_theta_mas: Float[ArrayLike, " n"] | float, block: int | None = None,
                    one_vmap_max: int | None = None) -> Float[Array, "n nb"]:
    """``forward.magnitudes`` of n stars (``vmap_in_blocks``): ``jax.vmap(forward.magnitudes)``'s numbers,
    faster and in bounded memory for large n. ``log10_theta_mas``: one per star, or one for all. Shapes are
    checked, and a non-finite input, a teff <= 0 K or an A_V or R_V outside ``forward.extinction_domain()``
    is refused naming its star (row) and column: call it outside jit (``vmap_in_blocks`` is the traceable
    part). The inputs are checked on the device in the same call; only a refused batch is read back."""
    params = jnp.asarray(params, jnp.result_type(float))
    if params.ndim != 2 or params.shape[1] != len(PARAMS):
        raise ValueError(f"params must have shape (n, {len(PARAMS)}) with columns {PARAMS}, got {params.shape}")
    log10_theta_mas = jnp.asarray(log10_theta_mas, params.dtype)
    if log10_theta_mas.shape not in ((), params.shape[:1]):
        raise ValueError(f"log10_theta_mas must be one number or one per star ({params.shape[0]},), "
                         f"got shape {log10_theta_mas.shape}")
    log10_theta_mas = jnp.broadcast_to(log10_theta_mas, params.shape[:1])
    magnitudes, valid = _many_magnitudes(forward, params, log10_theta_mas, block, one_vmap_max)
    if not bool(valid):
        _refuse_invalid(forward, np.column_stack([np.asarray(params), np.asarray(log10_theta_mas)]))
    return magnitudes


def _outside(forward: ForwardModel, columns):
    """Per row and checked column (teff, av, rv): outside the model's domain (numpy or jax arrays alike)."""
    domain = forward.extinction_domain()
    outside = {}
    for name in ("teff", "av", "rv"):
        value = columns[:, PARAMS.index(name)]
        lo, hi = domain.get(name, (-np.inf, np.inf))
        inside = (value >= lo) & (value <= hi)
        outside[name] = ~(inside & (value > 0)) if name in ("teff", "rv") else ~inside
    return outside


def _refuse_invalid(forward: ForwardModel, columns: np.ndarray) -> None:
    """Raise for the inputs ``many_magnitudes`` found invalid, naming the first rows and columns."""
    names = PARAMS + ("log10_theta_mas",)
    bad = np.argwhere(~np.isfinite(columns))
    if bad.size:
        where = ", ".join(f"row {i} {names[j]}" for i, j in bad[:5])
        raise ValueError(f"{len(bad)} non-finite input value(s): {where}{' ...' if len(bad) > 5 else ''}")
    outside = sorted((i, name, columns[i, PARAMS.index(name)])
                     for name, rows in _outside(forward, columns).items() for i in np.flatnonzero(rows))
    ranges = ", ".join(f"{name} in [{lo:g}, {hi:g}]" for name, (lo, hi) in forward.extinction_domain().items())
    where = ", ".join(f"row {i} {name}={value:g}" for i, name, value in outside[:5])
    raise ValueError(f"{len(outside)} value(s) outside the forward model's domain (teff > 0 K, rv > 0, {ranges}): "
                     f"{where}{' ...' if len(outside) > 5 else ''}")


@eqx.filter_jit
def _many_magnitudes(forward: ForwardModel, params, log10_theta_mas, block, one_vmap_max):
    magnitudes = vmap_in_blocks(lambda star: forward.magnitudes(*star), (params, log10_theta_mas), block, one_vmap_max)
    valid = jnp.isfinite(params).all() & jnp.isfinite(log10_theta_mas).all()
    for rows in _outside(forward, params).values():
        valid &= ~rows.any()
    return magnitudes, valid


PATHS = ("fast", "spectral", "multilinear")


@functools.cache
def _build(library: str, bands: tuple[str, ...], path: str) -> ForwardModel:
    grid = load_library(library)
    if not isinstance(grid, SpectralGrid):
        return PhotometricForwardModel(grid, bands, path)
    if path == "fast":
        return TabulatedForwardModel(grid, bands)
    return SpectralForwardModel(grid, bands, "hermite" if path == "spectral" else "multilinear")


def forward_model(library: str = "phoenix", bands=SURVEY_BANDS, path: str = "fast") -> ForwardModel:
    """The forward model for a library and band list (cached).

    ``path``: ``"fast"`` (precomputed band tables, the default), ``"spectral"``
    (the same interpolant integrated from the spectra at every call: the
    reference) or ``"multilinear"`` (spectra interpolated multilinearly, the
    model of sedppl 0.4 and of the NPE models trained under it).
    """
    if path not in PATHS:
        raise ValueError(f"unknown forward path {path!r}; choose one of {PATHS}")
    return _build(library, check_bands(bands), path)
