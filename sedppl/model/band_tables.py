"""Band magnitudes precomputed on the grid nodes and on a grid in (A_V, R_V): the fast path's tables.

At every node of a spectral library and in every band, the reddened surface
magnitude is computed exactly as the spectral path does it -- the Fitzpatrick
(1999) curve multiplies the spectrum, then the passband integrates it:

    m_b(node, A_V, R_V) = m0_b(node) + A_V g_b(node, A_V, R_V).

g (the band's extinction per magnitude of A_V) is sampled on a regular grid,
A_V in [0, AV_MAX] by AV_STEP and R_V in RV_RANGE by RV_STEP, and compressed
per band by a singular value decomposition over the nodes:

    g_b(node, A_V, R_V) = sum_r alpha_br(node) phi_br(A_V, R_V),

keeping the fewest components that reproduce every node's A_V g_b to
``TOLERANCE`` (mag) at every sample where the band's flux is real (UV bands
need the most components: their extinction depends most on the spectrum's
shape within the band). Where more than ``MAX_FLOORED`` of a band's flux comes
from the spectra's numerical floor (a cool star's far UV), its magnitude is
the floor's artifact in either path, and the tables do not follow it. Between
a node whose band is real and a neighbour whose band is floor, the two paths'
slopes differ (the reference differences the floor values, the tables their
fit), by up to ~35 mmag in FUV there, 50-70 mag below the star's brightest band. The forward model
interpolates m0 and alpha between nodes, and phi between (A_V, R_V) samples,
with the same C1 cubic Hermite scheme (``hermite``). Components whose node
slopes matter least are interpolated from their values alone (``choose_flat``:
together they move no band by more than ``TOLERANCE`` at ``FLAT_SAMPLES``
points spread over the tables' domain), which makes the fast path ~1.2x faster
on a CPU (BENCHMARKS.md).

``python -m sedppl.model.band_tables`` rebuilds ``data/<library>_bands.npz`` for
the spectral libraries; each file records the hash of the library it was built from.
"""

from __future__ import annotations

import functools
import hashlib
from importlib import resources
from pathlib import Path

import numpy as np

from .atmospheres import FLOOR_DEX, SPECTRAL_LIBRARIES, load_library
from .extinction import a_over_av
from .passbands import REGISTRY, Passbands

AV_MAX, AV_STEP = 20.0, 0.5  # mag
RV_RANGE, RV_STEP = (2.0, 6.0), 0.25  # the range Fitzpatrick99's R_V features are solved on
TOLERANCE = 1e-3  # mag: largest error of the compressed A_V g at any node and relevant sample
MAX_FLOORED = 1e-4  # share of a band's flux from floored wavelengths beyond which it is not photometry
PHOTOMETRY_DEPTH = 60.0  # mag below a star's brightest band beyond which a magnitude is the spectra's floor
FLAT_SAMPLES = 40_000  # points of the tables' domain on which ``choose_flat`` checks its choice
TABLE_BANDS: tuple[str, ...] = tuple(REGISTRY)


def av_samples() -> np.ndarray:
    return np.linspace(0.0, AV_MAX, round(AV_MAX / AV_STEP) + 1)


def rv_samples() -> np.ndarray:
    return np.linspace(*RV_RANGE, round((RV_RANGE[1] - RV_RANGE[0]) / RV_STEP) + 1)


def _library_file(library: str) -> Path:
    return Path(str(resources.files("sedppl.model.data").joinpath(f"{library}.npz")))


def table_file(library: str) -> Path:
    return Path(str(resources.files("sedppl.model.data").joinpath(f"{library}_bands.npz")))


def library_hash(library: str) -> str:
    return hashlib.sha256(_library_file(library).read_bytes()).hexdigest()


def node_extinction(library: str, band: str, nodes: np.ndarray | None = None,
                    peaks: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(m0 (n,), g (n, n_av, n_rv), the share of the band's flux at the floor (n, n_av, n_rv)) of one band at the grid's nodes (flat index; all of them by default),
    in float64, computed from the spectra as the spectral path does: each reddened spectrum floored
    ``FLOOR_DEX`` below its own peak (``reddened_peaks``, computed here unless given)."""
    grid = load_library(library)
    wave = np.asarray(grid.wavelength_aa, np.float64)
    values = np.asarray(grid.values, np.float64).reshape(-1, wave.size)
    if nodes is not None:
        values = values[nodes]
    if peaks is None:
        peaks = reddened_peaks(library, nodes)
    weights = Passbands.build((band,), wave).weights[0].astype(np.float64)
    used = weights > 0
    band_values, weights = values[:, used], weights[used]
    k = np.stack([a_over_av(1e4 / wave[used], rv) for rv in rv_samples()])  # A_lambda / A_V, (n_rv, w)
    av = av_samples()
    log_flux, floored = np.empty(peaks.shape), np.empty(peaks.shape)
    for i, a in enumerate(np.r_[1e-4, av[1:]]):  # the first sample is the limit A_V -> 0
        for j in range(k.shape[0]):
            relative = band_values - 0.4 * a * k[j] - peaks[:, i, j, None]
            flux = 10.0 ** np.maximum(relative, -FLOOR_DEX) * weights
            total = flux.sum(axis=1)
            log_flux[:, i, j] = np.log10(total) + peaks[:, i, j]
            floored[:, i, j] = np.where(relative <= -FLOOR_DEX + 1e-3, flux, 0.0).sum(axis=1) / total
    m0 = _unreddened_magnitudes(band_values, weights, values.max(axis=1))
    return m0, (-2.5 * log_flux - m0[:, None, None]) / np.r_[1e-4, av[1:]][None, :, None], floored


def _unreddened_magnitudes(band_values: np.ndarray, weights: np.ndarray, peak: np.ndarray) -> np.ndarray:
    relative = np.maximum(band_values - peak[:, None], -FLOOR_DEX)
    return -2.5 * (np.log10(10.0**relative @ weights) + peak)


def reddened_peaks(library: str, nodes: np.ndarray | None = None, av: np.ndarray | None = None,
                   rv: np.ndarray | None = None) -> np.ndarray:
    """(n, n_av, n_rv): the peak of each node's reddened log10 spectrum at every (A_V, R_V) sample
    (A_V = 1e-4 in place of 0)."""
    grid = load_library(library)
    wave = np.asarray(grid.wavelength_aa, np.float64)
    values = np.asarray(grid.values, np.float64).reshape(-1, wave.size)
    if nodes is not None:
        values = values[nodes]
    av = np.r_[1e-4, av_samples()[1:]] if av is None else av
    rv = rv_samples() if rv is None else rv
    k = np.stack([a_over_av(1e4 / wave, r) for r in rv])
    peaks = np.empty((len(values), len(av), len(rv)))
    for i, a in enumerate(av):
        for j in range(len(rv)):
            peaks[:, i, j] = (values - 0.4 * a * k[j]).max(axis=1)
    return peaks


def relevant_samples(floored: np.ndarray) -> np.ndarray:
    """(n, n_av, n_rv) bool: the samples where less than ``MAX_FLOORED`` of the band's flux comes from
    wavelengths at the spectra's numerical floor (``FLOOR_DEX`` below the peak, in the data files and
    after reddening). Elsewhere the band's magnitude is the floor's artifact in either path -- a cool
    star's far UV, or a band extinguished by tens of magnitudes -- not photometry any survey holds."""
    return floored < MAX_FLOORED


def _masked_fit(flat: np.ndarray, mask: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """Per row, least-squares coefficients on ``basis`` (R, S) over the row's masked samples only."""
    alpha = flat @ basis.T
    partial = np.flatnonzero(~mask.all(axis=1) & mask.any(axis=1))
    if partial.size:
        m = mask[partial].astype(float)
        normal = np.einsum("rs,ns,qs->nrq", basis, m, basis) + 1e-12 * np.eye(len(basis))
        alpha[partial] = np.linalg.solve(normal, np.einsum("rs,ns->nr", basis, m * flat[partial])[..., None])[..., 0]
    return alpha


def compress(g: np.ndarray, relevant: np.ndarray, fit_rows: np.ndarray,
             tolerance: float = TOLERANCE) -> tuple[np.ndarray, np.ndarray]:
    """(alpha (n, R), phi (R, n_av, n_rv)): the fewest SVD components of g with max |A_V (g - approx)|
    <= ``tolerance`` over the ``relevant`` samples of ``fit_rows`` (A_V taken as at least 1 mag, so the
    slope at A_V = 0 is kept too). The basis is fitted with each irrelevant sample replaced by the last
    relevant one along A_V; each row's coefficients are then fitted to its relevant samples only."""
    flat = g.reshape(len(g), -1)
    mask = relevant.reshape(len(g), -1)
    filled = g.copy()
    for i in range(1, g.shape[1]):
        filled[:, i] = np.where(relevant[:, i], g[:, i], filled[:, i - 1])
    _, _, vt = np.linalg.svd(filled.reshape(len(g), -1)[fit_rows], full_matrices=False)
    scale = np.broadcast_to(np.maximum(av_samples(), 1.0)[:, None], g.shape[1:]).ravel()
    for rank in range(1, vt.shape[0] + 1):
        alpha = _masked_fit(flat, mask, vt[:rank])
        error = np.abs(alpha[fit_rows] @ vt[:rank] - flat[fit_rows]) * scale
        if np.max(error, where=mask[fit_rows], initial=0.0) <= tolerance:
            break
    return alpha, vt[:rank].reshape((rank,) + g.shape[1:])


def domain_sample(library: str, n: int, seed: int) -> np.ndarray:
    """(n, 5) points (teff, logg, mh, av, rv) spread over the tables' domain: a valid grid cell at random,
    uniform within it, A_V and R_V uniform over the sampled ranges."""
    grid = load_library(library)
    rng = np.random.default_rng(seed)
    valid = np.argwhere(np.asarray(grid.cell_valid))
    cells = valid[rng.integers(len(valid), size=n)]
    x = []
    for a, nodes in enumerate(grid.axes):
        nodes = np.asarray(nodes, np.float64)
        lower, upper = nodes[cells[:, a]], nodes[cells[:, a] + 1]
        x.append(lower + rng.uniform(size=n) * (upper - lower))
    return np.column_stack([10.0 ** x[0], x[1], x[2], rng.uniform(0.0, AV_MAX, n), rng.uniform(*RV_RANGE, n)])


def flat_effects(library: str, tables: dict[str, np.ndarray], n: int = FLAT_SAMPLES,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """At n points of the tables' domain (``domain_sample``): how much interpolating each component from its
    values alone changes its band (n, R), and which band magnitudes are photometry (n, nb): within
    ``PHOTOMETRY_DEPTH`` of the star's brightest band (beyond, both paths give the spectra's floor)."""
    import jax.numpy as jnp
    from jax import jit, vmap

    from .forward import TabulatedForwardModel  # here: the forward model imports this module

    grid, owner = load_library(library), tables["component_band"]
    bands = tuple(str(b) for b in tables["bands"])
    shaped = TabulatedForwardModel(grid, bands, np.zeros(owner.shape, bool), tables)
    flat = TabulatedForwardModel(grid, bands, np.ones(owner.shape, bool), tables)
    points = jnp.asarray(domain_sample(library, n, seed), jnp.float32)
    magnitudes = np.asarray(jit(vmap(shaped.surface_magnitudes))(points), np.float64)
    with_slopes = np.asarray(jit(vmap(lambda p: shaped.components(p)[1]))(points), np.float64)
    without = np.asarray(jit(vmap(lambda p: flat.components(p)[2]))(points), np.float64)
    change = np.asarray(points[:, 3:4], np.float64) * (with_slopes - without)
    return change, magnitudes - magnitudes.min(axis=1, keepdims=True) < PHOTOMETRY_DEPTH


def greedy_flat(change: np.ndarray, photometry: np.ndarray, owner: np.ndarray, tolerance: float) -> np.ndarray:
    """(R,) bool: per band, the components with the smallest largest change join the flat ones, one at a
    time, while the largest change of the band by all of them together, over its photometry rows, stays
    within ``tolerance``. A band without photometry rows keeps every slope."""
    chosen = np.zeros(owner.shape, bool)
    for b in range(photometry.shape[1]):
        mine, rows = np.flatnonzero(owner == b), np.flatnonzero(photometry[:, b])
        if rows.size == 0:
            continue
        effects = change[np.ix_(rows, mine)]
        total = np.zeros(rows.size)
        for j in np.argsort(np.abs(effects).max(axis=0), kind="stable"):
            if np.abs(total + effects[:, j]).max() > tolerance:
                break
            total += effects[:, j]
            chosen[mine[j]] = True
    return chosen


def choose_flat(library: str, tables: dict[str, np.ndarray], tolerance: float = TOLERANCE,
                n: int = FLAT_SAMPLES, seed: int = 0) -> np.ndarray:
    """(R,) bool: the components the fast path interpolates from their node values alone (zero slopes;
    ``hermite``): ``greedy_flat`` on ``flat_effects`` at n points of the tables' domain."""
    change, photometry = flat_effects(library, tables, n, seed)
    return greedy_flat(change, photometry, tables["component_band"], tolerance)


def build(library: str, bands=TABLE_BANDS, tolerance: float = TOLERANCE) -> dict[str, np.ndarray]:
    """The tables of one spectral library: m0 (grid + (nb,)), alpha (grid + (R,)), phi (R, n_av, n_rv),
    the band of each component, which components are flat (``choose_flat``), the sample axes and the
    library file's hash."""
    if library not in SPECTRAL_LIBRARIES:
        raise ValueError(f"band tables are built from spectra; {library!r} is not one of {SPECTRAL_LIBRARIES}")
    grid = load_library(library)
    shape = tuple(grid.has_node.shape)
    existing = np.flatnonzero(np.asarray(grid.has_node).ravel())
    peaks = reddened_peaks(library)
    m0s, alphas, phis, owners = [], [], [], []
    for b, band in enumerate(bands):
        m0, g, floored = node_extinction(library, band, peaks=peaks)
        alpha, phi = compress(g, relevant_samples(floored), existing, tolerance)
        m0s.append(m0)
        alphas.append(alpha)
        phis.append(phi)
        owners += [b] * len(phi)
    tables = {
        "bands": np.array(bands), "av": av_samples(), "rv": rv_samples(),
        "m0": np.stack(m0s, axis=-1).reshape(shape + (len(bands),)).astype(np.float32),
        "alpha": np.concatenate(alphas, axis=1).reshape(shape + (-1,)).astype(np.float32),
        "phi": np.concatenate(phis).astype(np.float32), "component_band": np.array(owners, np.int32),
        "library_hash": np.array(library_hash(library)), "tolerance": np.array(tolerance),
        "max_floored": np.array(MAX_FLOORED),
    } | inputs(library, bands)
    return tables | {"flat": choose_flat(library, tables, tolerance)}


def inputs(library: str, bands=TABLE_BANDS) -> dict[str, np.ndarray]:
    """What the tables are computed from besides the spectra: the passband matrix (zero points included)
    and the extinction curve at every R_V sample, on the library's wavelengths. Stored with the tables
    and compared on loading, so a changed zero point or curve cannot leave stale tables in use."""
    wave = np.asarray(load_library(library).wavelength_aa, np.float64)
    return {"input_weights": Passbands.build(tuple(bands), wave).weights.astype(np.float64),
            "input_curve": np.stack([a_over_av(1e4 / wave, rv) for rv in rv_samples()])}


@functools.cache
def load_tables(library: str) -> dict[str, np.ndarray]:
    """The shipped tables of a spectral library (cached); refused if the library file changed since."""
    path = table_file(library)
    if not path.exists():
        raise FileNotFoundError(f"no band tables for library {library!r} ({path}); "
                                "run `python -m sedppl.model.band_tables` or use the spectral forward path")
    with np.load(path) as data:
        tables = {k: data[k] for k in data.files}
    if "flat" not in tables:
        raise ValueError(f"{path.name} was built by an earlier sedppl (no choice of flat components); rebuild it "
                         "with `python -m sedppl.model.band_tables`")
    if str(tables["library_hash"]) != library_hash(library):
        raise ValueError(f"{path.name} was built from another version of {library}.npz; "
                         "rebuild it with `python -m sedppl.model.band_tables`")
    for name, now in inputs(library, tuple(tables["bands"])).items():
        if not np.allclose(tables[name], now, rtol=1e-6, atol=1e-12):
            what = "passbands or zero points" if name == "input_weights" else "extinction curve"
            raise ValueError(f"{path.name} was built with other {what} than sedppl has now; rebuild it with "
                             "`python -m sedppl.model.band_tables` (or use the spectral forward path)")
    return tables


def main() -> None:
    for library in SPECTRAL_LIBRARIES:
        tables = build(library)
        target = table_file(library)
        partial = target.with_name(target.stem + ".partial.npz")  # a killed build never leaves a torn table
        np.savez_compressed(partial, **tables)
        partial.replace(target)
        ranks = np.bincount(tables["component_band"], minlength=len(tables["bands"]))
        print(f"wrote {table_file(library)}: {len(tables['phi'])} components ({tables['flat'].sum()} flat); "
              "per band " + ", ".join(f"{b} {r}" for b, r in zip(tables["bands"], ranks)))


if __name__ == "__main__":
    main()
