"""Reading and checking photometric catalogs.

A catalog is a table (astropy Table, CSV, ECSV, FITS or Parquet) with an ``id``
column and, for any subset of registry bands, ``<band>`` and ``<band>_err``
columns in magnitudes. Empty or NaN cells mean the band is absent. Other
columns (coordinates, true parameters of a simulation) are carried along.

Problems with the whole file raise ``CatalogError`` naming the column or ids;
problems with one star flag that star (``Catalog.flags``) and the rest goes on.
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.table import Table

from ..model.passbands import REGISTRY, SURVEY_BANDS

MIN_BANDS = 3
FORMATS = {".csv": "ascii.csv", ".ecsv": "ascii.ecsv", ".fits": "fits", ".fit": "fits", ".parquet": "parquet"}


class CatalogError(ValueError):
    """A catalog that cannot be read as a whole."""


@dataclass
class Catalog:
    """Magnitudes, errors and presence masks of n stars in a fixed band order."""

    ids: np.ndarray  # (n,) str
    bands: tuple[str, ...]
    mag: np.ndarray  # (n, nb), NaN where absent
    err: np.ndarray  # (n, nb), NaN where absent
    mask: np.ndarray  # (n, nb) bool, True where the band is present and usable
    flags: np.ndarray  # (n,) str, "" for a usable star
    extra: Table  # the other columns, row-aligned
    astrometry: np.ndarray | None = None  # (n, 4) for a fit: ``catalog_astrometry``'s vectors, or None

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def usable(self) -> np.ndarray:
        return self.flags == ""

    @property
    def n_bands(self) -> np.ndarray:
        return self.mask.sum(axis=1)

    def with_bands(self, bands) -> Catalog:
        """The same stars in another band order; bands the catalog lacks are absent.

        Raises ``CatalogError`` if a band with data is not in ``bands``."""
        bands = tuple(bands)
        dropped = [b for j, b in enumerate(self.bands) if b not in bands and self.mask[:, j].any()]
        if dropped:
            raise CatalogError(f"catalog bands {dropped} are not among the requested bands {list(bands)}")
        n = len(self)
        mag, err, mask = np.full((n, len(bands)), np.nan), np.full((n, len(bands)), np.nan), np.zeros((n, len(bands)), bool)
        for j, b in enumerate(bands):
            if b in self.bands:
                k = self.bands.index(b)
                mag[:, j], err[:, j], mask[:, j] = self.mag[:, k], self.err[:, k], self.mask[:, k]
        return Catalog(self.ids, bands, mag, err, mask, self.flags, self.extra, self.astrometry)

    def take(self, rows) -> Catalog:
        """The stars at ``rows`` (positions), in that order: one chunk of a streamed fit."""
        rows = np.asarray(rows, int)
        return Catalog(self.ids[rows], self.bands, self.mag[rows], self.err[rows], self.mask[rows], self.flags[rows],
                       self.extra[rows], None if self.astrometry is None else self.astrometry[rows])

    def flag_report(self) -> list[str]:
        return [f"star {str(i)!r}: {f}" for i, f in zip(self.ids, self.flags) if f]

    def to_table(self) -> Table:
        table = Table({"id": self.ids})
        for j, band in enumerate(self.bands):
            table[band] = np.where(self.mask[:, j], self.mag[:, j], np.nan)
            table[f"{band}_err"] = np.where(self.mask[:, j], self.err[:, j], np.nan)
        for name in self.extra.colnames:
            table[name] = self.extra[name]
        return table


def read_table(source) -> Table:
    """A Table from a path (format from the extension) or a Table/DataFrame."""
    if isinstance(source, Table):
        return source
    if hasattr(source, "to_dict") and hasattr(source, "columns"):
        return Table.from_pandas(source)
    path = Path(source)
    if not path.exists():
        raise CatalogError(f"catalog file {path} does not exist")
    if path.stat().st_size == 0:
        raise CatalogError(f"catalog file {path} is empty")
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise CatalogError(f"catalog file {path}: unknown extension {path.suffix!r}; use one of {sorted(FORMATS)}")
    if fmt == "ascii.csv":
        return _read_csv(path)
    try:
        return Table.read(path, format=fmt)
    except Exception as err:  # astropy raises many types for malformed files
        raise CatalogError(f"catalog file {path} could not be read as {fmt}: {err}") from err


def _read_csv(path: Path) -> Table:
    """CSV with its ids kept as written (``007`` stays ``007``, ``1e3`` stays ``1e3``), a UTF-8 byte-order
    mark ignored, and a header that names a column twice refused by name (astropy would rename one)."""
    from astropy.io.ascii import convert_numpy

    with path.open(newline="", encoding="utf-8-sig") as fh:
        header = [h.strip() for h in next(csv.reader(fh), [])]
    twice = sorted(name for name, count in Counter(header).items() if count > 1)
    if twice:
        raise CatalogError(f"catalog file {path}: the header names column(s) {twice} more than once")
    try:
        return Table.read(path, format="ascii.csv", encoding="utf-8-sig", converters={"id": [convert_numpy(str)]})
    except Exception as err:  # astropy raises many types for malformed files
        raise CatalogError(f"catalog file {path} could not be read as CSV: {err}") from err


def write_table(table: Table, path: str | Path) -> Path:
    """Write a table in the format its extension names (CSV, ECSV, FITS, Parquet)."""
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: unknown extension {path.suffix!r}; use one of {sorted(FORMATS)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    table.write(path, format=fmt, overwrite=True)
    return path


_ABSENT_TEXT = {"", "--", "nan", "null", "none"}


def _float_column(table: Table, name: str) -> tuple[np.ndarray, dict[int, str]]:
    """A column as floats (absent -> NaN) and the rows whose text is not a number."""
    col = table[name]
    if col.dtype.kind in "biuf":
        return np.ma.filled(np.ma.asarray(col, dtype=float), np.nan), {}
    values, unreadable = np.full(len(col), np.nan), {}
    for i, cell in enumerate(col):
        text = "" if np.ma.is_masked(cell) else str(cell).strip()
        if text.lower() in _ABSENT_TEXT:
            continue
        try:
            values[i] = float(text)
        except ValueError:
            unreadable[i] = f"{name}: cannot read {text!r} as a number"
    return values, unreadable


def _band_columns(table: Table) -> list[str]:
    cols = set(table.colnames)
    bands = []
    for name in table.colnames:
        if name.endswith("_err"):
            base = name[: -len("_err")]
            if base not in REGISTRY:
                raise CatalogError(
                    f"unknown band column {base!r} (found {name!r}); known bands: {', '.join(SURVEY_BANDS)}"
                )
            if base not in cols:
                raise CatalogError(f"error column {name!r} has no magnitude column {base!r}")
        elif name in REGISTRY:
            if f"{name}_err" not in cols:
                raise CatalogError(f"band column {name!r} has no error column {name + '_err'!r}")
            bands.append(name)
    return bands


def read_catalog(source, bands=None, min_bands: int = MIN_BANDS) -> Catalog:
    """Read and check a catalog; see the module docstring for the rules."""
    table = read_table(source)
    if len(table) == 0:
        raise CatalogError("catalog has no rows")
    if "id" not in table.colnames:
        raise CatalogError(f"catalog has no 'id' column; columns are {table.colnames}")
    ids = np.array([str(v).strip() for v in table["id"]])
    if np.any(ids == "") or np.any(ids == "--"):
        rows = np.nonzero((ids == "") | (ids == "--"))[0][:5]
        raise CatalogError(f"catalog rows {rows.tolist()} have an empty 'id'")
    dupes = [i for i, c in Counter(ids).items() if c > 1]
    if dupes:
        raise CatalogError(f"duplicate ids in catalog: {dupes[:10]}{' ...' if len(dupes) > 10 else ''}")
    present_bands = _band_columns(table)
    if bands is None:
        bands = tuple(present_bands)
    else:
        bands = tuple(bands)
        unknown = [b for b in bands if b not in REGISTRY]
        if unknown:
            raise CatalogError(f"unknown band(s) requested: {unknown}")
    if not bands:
        raise CatalogError(f"catalog has no band columns; expected '<band>' and '<band>_err' for bands in {SURVEY_BANDS}")

    n = len(table)
    mag = np.full((n, len(bands)), np.nan)
    err = np.full((n, len(bands)), np.nan)
    problems: list[list[str]] = [[] for _ in range(n)]
    for j, band in enumerate(bands):
        if band not in present_bands:
            continue
        (m, bad_m), (e, bad_e) = _float_column(table, band), _float_column(table, f"{band}_err")
        for i, message in (bad_m | bad_e).items():
            problems[i].append(message)
        for i in np.nonzero(np.isinf(m))[0]:
            problems[i].append(f"{band}: infinite magnitude")
        bad_err = np.isfinite(m) & ~(np.isfinite(e) & (e > 0))
        for i in np.nonzero(bad_err)[0]:
            problems[i].append(f"{band}: magnitude without a positive finite error ({band}_err={e[i]})")
        mag[:, j], err[:, j] = m, e
    mask = np.isfinite(mag) & np.isfinite(err) & (err > 0)
    n_present = mask.sum(axis=1)
    for i in np.nonzero(n_present < min_bands)[0]:
        problems[i].append(f"only {n_present[i]} usable band(s), need at least {min_bands}")
    for name, (lo, hi) in ASTROMETRIC_RANGES.items():  # read here so that a bad cell flags its star, not the fit
        if "parallax" in table.colnames and name in table.colnames:  # without a parallax they are not used
            values, unreadable = _float_column(table, name)
            for i, message in unreadable.items():
                problems[i].append(message)
            for i in np.flatnonzero(np.isfinite(values) & ((values < lo) | (values > hi))):
                problems[i].append(f"{name}={values[i]:g} outside [{lo:g}, {hi:g}]")
    flags = np.array(["; ".join(p) for p in problems], dtype=object).astype(str)
    used = {"id"} | {c for b in present_bands for c in (b, f"{b}_err")}
    extra = table[[c for c in table.colnames if c not in used]] if len(table.colnames) > len(used) else Table()
    return Catalog(ids, bands, mag, err, mask, flags, extra)


ASTROMETRIC_COLUMNS = ("parallax", "parallax_error", "ra", "dec")
# mas, mas, deg, deg: what flags a star (an ra wraps; a missing or non-positive parallax error: fitted without one)
ASTROMETRIC_RANGES = {"parallax": (-np.inf, np.inf), "parallax_error": (-np.inf, np.inf), "ra": (-np.inf, np.inf),
                      "dec": (-90.0, 90.0)}


def catalog_astrometry(catalog: Catalog, zero_point: float, dust_map: str | None) -> np.ndarray | None:
    """(n, 4) astrometric vectors (``model.astrometry.COLUMNS``) from the catalogue's ``parallax``,
    ``parallax_error`` [mas], ``ra`` and ``dec`` [deg] columns, or None if it has no parallax column.

    A star whose parallax or error is missing, or whose error is not positive, is fitted without one
    (NaN); in a catalogue with parallaxes, a cell that is not a number, or a dec beyond +-90, flags its
    star in ``read_catalog``
    (an unflagged one here is an error naming it). A ``parallax`` column without
    ``parallax_error`` is not used (with a warning).
    """
    import warnings

    from ..model.astrometry import catalogue_astrometry

    names = catalog.extra.colnames
    if "parallax" not in names:
        return None
    if "parallax_error" not in names:
        warnings.warn("catalog has a 'parallax' column but no 'parallax_error' (mas): parallaxes not used",
                      stacklevel=2)
        return None
    values = {}
    for name in ASTROMETRIC_COLUMNS:
        if name in names:
            values[name], bad = _float_column(catalog.extra, name)
            bad = {i: message for i, message in bad.items() if catalog.flags[i] == ""}  # flagged: not fitted
            if bad:
                i, message = next(iter(bad.items()))
                raise CatalogError(f"star {str(catalog.ids[i])!r}: {message}")
    if ("ra" in values) != ("dec" in values):
        raise CatalogError("catalog has one of 'ra' and 'dec' but not the other")
    err = values["parallax_error"]
    usable = np.isfinite(values["parallax"]) & np.isfinite(err) & (err > 0)
    parallax = np.where(usable, values["parallax"], np.nan)
    return catalogue_astrometry(parallax, np.where(usable, err, np.nan), values.get("ra"), values.get("dec"),
                                zero_point=zero_point, dust_map=dust_map)
