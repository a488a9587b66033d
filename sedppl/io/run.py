"""A fit's output folder: streamed chunk by chunk, each chunk written atomically, resumable, never read
as finished while it is not.

    OUT/run.json               what the run is (its settings and inputs) and whether it has finished
    OUT/chunks/000000.parquet  the summary rows of one chunk of input rows: written last, it marks the chunk done
    OUT/posterior/000000.nc    that chunk's draws, an ArviZ DataTree over its fitted stars
    OUT/summary.parquet        every chunk's rows in input order, written once all chunks are done

Every file is written under a temporary name and renamed into place, so a crash, a full disk or a
kill leaves either a whole file or none. ``run.json`` says ``"running"`` until the summary is written;
``FitResult.read`` refuses such a folder. Rerunning the same fit (same settings, same catalogue) on
the folder fits only the chunks that are missing; a folder that holds another run is refused unless
``overwrite``. Peak memory is set by the chunk size, not by the catalogue.

Each claim of a folder draws a token (kept when the run is resumed) that every chunk carries: a chunk is
written only while ``run.json`` holds its token, and ``finish`` drops any chunk with another one, so a task
left running on a cluster by an earlier run cannot slip its chunk into a run that replaced it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import secrets
import shutil
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

RUN_FILE = "run.json"
TOKEN_KEY = "sedppl_run"  # the run token in each chunk's summary metadata and posterior attributes
OURS = (RUN_FILE, "chunks", "posterior", "summary.parquet", "posterior.nc")  # what --overwrite may remove
DEFAULT_CHUNK = {"nuts": 32, "smc": 32, "npe": 4096, "npe-is": 512}  # rows: minutes of work each, not hours


class RunFolderError(ValueError):
    """An output folder that cannot take this run (not writable, or holding another run)."""


class UnfinishedRunError(RuntimeError):
    """A folder whose run has not finished: its outputs are incomplete."""


class StaleChunkError(RuntimeError):
    """A chunk from a run that no longer owns the folder (replaced with ``overwrite`` while it ran)."""


def atomic_write(path: Path, write, before_rename=None) -> Path:
    """``write(tmp)`` to a temporary file beside ``path``, then rename it to ``path``: readers see the old
    file or the whole new one, never a part; the temporary file is removed if ``write`` (or the check
    ``before_rename``) fails."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")  # unique: tasks share processes
    try:
        write(tmp)
        if before_rename is not None:
            before_rename()
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


@functools.cache
def code_fingerprint() -> str:
    """SHA-256 (16 hex digits) of sedppl's own source and model data, taken once per process: a run is resumed only by
    the code that started it, so no result mixes chunks from two versions of the model."""
    code = hashlib.sha256()
    package = Path(__file__).resolve().parents[1]
    data = sorted(package.rglob("*.npz")) + sorted((package / "model" / "data").rglob("*.toml"))  # the model's data too
    for path in sorted(package.rglob("*.py")) + data:
        code.update(path.read_bytes())
    return code.hexdigest()[:16]


def catalog_fingerprint(catalog) -> str:
    """SHA-256 of the ids, bands and photometry: two runs on different inputs never share a folder."""
    h = hashlib.sha256("\n".join(catalog.bands).encode())
    h.update("\n".join(map(str, catalog.ids)).encode())
    for a in (catalog.mag, catalog.err, catalog.mask):
        h.update(np.ascontiguousarray(np.nan_to_num(np.asarray(a, float), nan=-99.0)).tobytes())
    return h.hexdigest()


class RunFolder:
    """The folder of one run: opened (checked, claimed or resumed) before any fitting."""

    def __init__(self, path, identity: dict, n_chunks: int, overwrite: bool = False):
        self.path, self.identity, self.n_chunks = Path(path), identity, n_chunks
        self._claim(overwrite)

    def _claim(self, overwrite: bool) -> None:
        path = self.path
        if path.exists() and not path.is_dir():
            raise RunFolderError(f"--out {path} is a file, not a folder")
        try:
            path.mkdir(parents=True, exist_ok=True)
            probe = path / f".sedppl-write-test-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as err:
            raise RunFolderError(f"--out {path} cannot be written: {err.strerror or err}") from err
        run = path / RUN_FILE
        previous = json.loads(run.read_text()) if run.exists() else None
        if previous is not None and previous.get("identity") == self.identity and previous.get("token"):
            self.token = previous["token"]
            return  # the same run: resume (or find it finished)
        if previous is not None or any((path / name).exists() for name in OURS):
            if not overwrite:
                what = ("another run" if previous is not None and previous.get("status") == "complete"
                        else "an unfinished run with other settings, inputs or sedppl code" if previous is not None
                        else "an earlier result")
                raise RunFolderError(f"--out {path} already holds {what}; choose another folder, or pass "
                                     "--overwrite (overwrite=True) to replace it")
            for name in OURS:
                target = path / name
                shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
        self.token = secrets.token_hex(8)
        self._write_status("running")

    def _write_status(self, status: str) -> None:
        record = {"status": status, "chunks": self.n_chunks, "token": self.token, "identity": self.identity}
        atomic_write(self.path / RUN_FILE, lambda tmp: tmp.write_text(json.dumps(record, indent=1) + "\n"))

    def _summary_path(self, i: int) -> Path:
        return _summary_path(self.path, i)

    def done(self, i: int) -> bool:
        """Chunk ``i`` is written, by this run (a chunk another run slipped in is fitted again)."""
        path = self._summary_path(i)
        if not path.exists():
            return False
        import pyarrow.parquet as pq

        return chunk_token(pq.read_schema(path)) == self.token

    def write_chunk(self, i: int, fit, keep_draws: int | None) -> None:
        write_chunk(self.path, i, fit, keep_draws, self.token)

    def finish(self) -> Path:
        """Every chunk's summary rows, streamed into ``summary.parquet``; then the run is complete. A chunk
        that carries another run's token is removed and the run stays unfinished (rerun to refit it)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        parts = [self._summary_path(i) for i in range(self.n_chunks)]
        schemas = [pq.read_schema(p) for p in parts]
        stale = {i for i, schema in enumerate(schemas) if chunk_token(schema) != self.token}
        for draws in sorted((self.path / "posterior").glob("*.nc")):  # draws of another run, or of no chunk
            index = int(draws.stem) if draws.stem.isdigit() else -1
            if not 0 <= index < self.n_chunks:
                draws.unlink()
            elif posterior_token(draws) != self.token:
                stale.add(index)
        for i in stale:
            self._summary_path(i).unlink(missing_ok=True)
            (self.path / "posterior" / f"{i:06d}.nc").unlink(missing_ok=True)
        stale = sorted(stale)
        if stale:
            raise UnfinishedRunError(f"{self.path}: chunks {stale} were written by another run (a task left over "
                                     "from a run this one replaced) and were removed: rerun to fit them")
        widest = max(schemas, key=len)  # a chunk with fitted stars: its column metadata describes the rest
        metadata = dict(widest.metadata)
        for part in schemas:  # astropy's string widths ("table::len::NAME"): the longest of any chunk
            for k, v in (part.metadata or {}).items():
                if k.startswith(b"table::len::"):
                    metadata[k] = str(max(int(metadata.get(k, 0)), int(v))).encode()
        schema = pa.unify_schemas([widest] + schemas, promote_options="permissive").with_metadata(metadata)

        def write(tmp):
            with pq.ParquetWriter(tmp, schema) as writer:
                for p in parts:
                    table = pq.read_table(p)
                    columns = [table[f.name].cast(f.type) if f.name in table.column_names
                               else pa.nulls(len(table), f.type) for f in schema]
                    writer.write_table(pa.Table.from_arrays(columns, schema=schema))

        atomic_write(self.path / "summary.parquet", write)
        self._write_status("complete")
        return self.path / "summary.parquet"


def _summary_path(out: Path, i: int) -> Path:
    return out / "chunks" / f"{i:06d}.parquet"


def chunk_token(schema) -> str | None:
    """The run token a chunk's summary carries: astropy's table metadata within the Parquet schema, read by
    pattern (parsing its YAML takes ~70 ms a chunk)."""
    found = re.search(rb"\b" + TOKEN_KEY.encode() + rb": ([0-9a-f]+)\b", (schema.metadata or {}).get(b"table_meta_yaml", b""))
    return found.group(1).decode() if found else None


def posterior_token(path: Path) -> str | None:
    """The run token a chunk's draws carry (an attribute of the netCDF file's root group)."""
    import h5netcdf

    with h5netcdf.File(path, "r") as f:
        token = f.attrs.get(TOKEN_KEY)
    return token.decode() if isinstance(token, bytes) else token


def _check_owner(out: Path, token: str, i: int) -> None:
    record = json.loads((out / RUN_FILE).read_text()) if (out / RUN_FILE).exists() else {}
    if record.get("token") != token:
        raise StaleChunkError(f"chunk {i} not written: {out} now holds another run (replaced while this one ran)")


def write_chunk(out: Path, i: int, fit, keep_draws: int | None, token: str) -> None:
    """Chunk ``i``'s draws, then its summary rows (the marker that it is done), into the run folder ``out``
    (claimed by a ``RunFolder`` with ``token``, here or in the process that sent this chunk to a worker).
    Each file is renamed into place only while the folder still belongs to that run."""
    tree = thin(fit.posterior, keep_draws)
    if tree is not None:
        tree = tree.copy(deep=False)
        tree.attrs[TOKEN_KEY] = token
        posterior = out / "posterior" / f"{i:06d}.nc"
        posterior.parent.mkdir(exist_ok=True)
        atomic_write(posterior, lambda tmp: tree.to_netcdf(tmp, engine="h5netcdf"),
                     before_rename=lambda: _check_owner(out, token, i))
    summary = fit.summary.copy(copy_data=False)
    summary.meta[TOKEN_KEY] = token
    _summary_path(out, i).parent.mkdir(exist_ok=True)
    atomic_write(_summary_path(out, i), lambda tmp: summary.write(tmp, format="parquet"),
                 before_rename=lambda: _check_owner(out, token, i))


def thin(tree, keep_draws: int | None):
    """The posterior as stored: whole (None), its ``posterior`` group thinned evenly to ``keep_draws`` draws
    per star without the sampler groups, or nothing (0)."""
    if keep_draws == 0 or "posterior" not in tree.children:  # nothing to keep, or no usable star in the chunk
        return None
    if keep_draws is None:
        return tree
    import xarray as xr

    post = tree["posterior"].to_dataset().stack(sample=("chain", "draw"))
    pick = np.unique(np.linspace(0, post.sizes["sample"] - 1, keep_draws).round().astype(int))
    post = post.isel(sample=pick).drop_vars(["sample", "chain", "draw"]).rename({"sample": "draw"})
    post = post.expand_dims(chain=1).transpose("chain", "draw", ...)
    thinned = xr.DataTree.from_dict({"posterior": post})
    thinned.attrs.update(tree.attrs | {"sedppl_keep_draws": keep_draws})
    return thinned


def read_posterior(out: Path):
    """The posterior DataTree of a finished run: its chunks' trees joined along ``star``."""
    import xarray as xr

    parts = sorted((out / "posterior").glob("*.nc"))
    if not parts:
        return xr.DataTree(dataset=xr.Dataset(attrs={"note": "no draws stored (--keep-draws 0, or no usable star)"}))
    trees = [xr.open_datatree(p, engine="h5netcdf").load() for p in parts]
    if len(trees) == 1:
        return trees[0]
    groups = {name: xr.concat([t[name].to_dataset() for t in trees], dim="star", data_vars="all",
                              coords="different", compat="equals", join="outer")
              for name in trees[0].children}
    joined = xr.DataTree.from_dict(groups)
    joined.attrs.update(trees[0].attrs)
    return joined


def check_finished(out: Path) -> dict:
    """Raise ``UnfinishedRunError`` unless ``out``'s run finished (folders without ``run.json`` predate it);
    return its record (empty without one)."""
    run = out / RUN_FILE
    if not run.exists():
        return {}
    record = json.loads(run.read_text())
    if record.get("status") != "complete":
        done = len(list((out / "chunks").glob("*.parquet"))) if (out / "chunks").exists() else 0
        raise UnfinishedRunError(f"{out} holds an unfinished run ({done} of {record.get('chunks', '?')} chunks "
                                 "written): rerun the same fit with the same --out to finish it")
    return record


def checked_chunking(method: str, chunk: int | None, keep_draws: int | None) -> int:
    """The chunk size (``chunk``, else the method's default), after checking it and ``keep_draws``."""
    chunk = chunk or DEFAULT_CHUNK[method]
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1 rows, got {chunk}")
    if keep_draws is not None and keep_draws < 0:
        raise ValueError(f"keep_draws must be >= 0, got {keep_draws}")
    return chunk


def run_identity(fitter, catalog: str, rows: int, chunk: int, keep_draws: int | None, **more) -> dict:
    """What a run folder is: sedppl's version and code, the fit's settings, the inputs' fingerprint and the
    chunking (``more``: what a kind of input adds). A folder is resumed only by a run with the same."""
    from .. import __version__

    return {"sedppl": __version__, "code": code_fingerprint(), "settings": fitter.settings(), "catalog": catalog,
            "rows": rows, "chunk": chunk, "keep_draws": keep_draws, **more}


def fit_to_folder(fitter, out, chunk: int | None = None, overwrite: bool = False, keep_draws: int | None = None,
                  progress: bool = True) -> Path:
    """Fit ``fitter``'s catalogue into ``out``, ``chunk`` rows at a time, skipping chunks already written by
    an interrupted run of the same fit. Returns the summary's path."""
    n = len(fitter.catalog)
    chunk = checked_chunking(fitter.method, chunk, keep_draws)
    starts = list(range(0, n, chunk)) or [0]
    identity = run_identity(fitter, catalog_fingerprint(fitter.catalog), n, chunk, keep_draws)
    folder = RunFolder(out, identity, len(starts), overwrite)
    todo = [i for i in range(len(starts)) if not folder.done(i)]
    inner = progress and len(starts) == 1  # one chunk: the sampler's own bar; several: one bar over rows
    with tqdm(total=n, initial=n - sum(min(chunk, n - starts[i]) for i in todo), desc=f"fit ({fitter.method})",
              unit="star", disable=not progress or inner) as bar:
        for i in todo:
            rows = np.arange(starts[i], min(starts[i] + chunk, n))
            folder.write_chunk(i, fitter.fit_rows(rows, progress=inner), keep_draws)
            bar.update(len(rows))
    return folder.finish()
