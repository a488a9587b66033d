"""Partitioned catalogues -- a folder of Parquet files, or a HATS catalogue -- fitted as Dask tasks.

One unit of work is one chunk of one partition (file). Units run one after another in this process by
default, on a local ``dask.distributed`` cluster of ``workers`` processes, or on an existing cluster at
``scheduler``. Every worker builds the fit (model, samplers, NPE: ``fit.Fitter``) once, from the
dataset's band columns, and reuses it, so nothing is compiled per partition. Units write into the
run folder (``io.run``) themselves, atomically: a rerun resumes where a run stopped, and since each
star's draws depend only on the seed and its id, the merged result is the same star for star
whatever the number of workers or the chunk a star landed in.

    sedppl partition big.parquet --rows 100000 --out big/   # one file into a partitioned dataset
    sedppl fit big/ --method npe --out fits/ --workers 2
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.table import Table
from tqdm.auto import tqdm

from .catalog import Catalog, CatalogError, _band_columns, read_catalog, read_table
from .run import StaleChunkError

TAIL_BYTES = 1 << 16  # a partition's fingerprint reads its last 64 KiB: the Parquet footer


@dataclass(frozen=True)
class Unit:
    """Rows ``start:stop`` of one partition file: chunk ``index`` of the run folder."""

    index: int
    path: str
    start: int
    stop: int


def is_partitioned(source) -> bool:
    """Whether ``source`` names a partitioned dataset (a folder) rather than one table."""
    return isinstance(source, (str, Path)) and Path(source).is_dir()


def is_hats(source) -> bool:
    """A HATS catalogue: a folder with ``properties`` (or ``hats.properties``) and ``dataset/``."""
    root = Path(source)
    return (root / "dataset").is_dir() and any((root / n).exists() for n in ("properties", "hats.properties"))


def partition_files(source) -> list[Path]:
    """The Parquet files of a partitioned dataset, in a fixed order: every ``*.parquet`` file under the
    folder (hive-style subfolders included; names starting with ``_`` or ``.`` skipped), or for a HATS
    catalogue the files of its ``dataset/Norder=*/Dir=*/Npix=*`` partitions (a partition may be one file
    or a folder of files; the thumbnail and statistics files beside them are not partitions)."""
    root = Path(source)
    if not root.is_dir():
        raise CatalogError(f"{root} is not a folder of Parquet files")
    hats = is_hats(root)
    if hats:
        root = root / "dataset"

    def is_partition(p: Path) -> bool:
        parts = p.relative_to(root).parts
        if any(part.startswith(("_", ".")) for part in parts):
            return False
        return not hats or (len(parts) >= 3 and parts[0].startswith("Norder=") and parts[1].startswith("Dir=")
                            and parts[2].startswith("Npix="))

    files = sorted((p for p in root.rglob("*.parquet") if p.is_file() and is_partition(p)),
                   key=lambda p: p.relative_to(root).as_posix())
    if not files:
        raise CatalogError(f"{source} holds no Parquet files (*.parquet)")
    return files


def dataset_bands(files) -> tuple[str, ...]:
    """The bands of the dataset, from its files' schemas (no rows read); every file must have the same."""
    import pyarrow.parquet as pq

    bands = None
    for path in files:
        try:
            names = pq.read_schema(path).names
        except Exception as err:  # pyarrow raises several types for a file that is not Parquet
            raise CatalogError(f"partition {path} cannot be read as Parquet: {err}") from err
        if "id" not in names:
            raise CatalogError(f"partition {path} has no 'id' column; columns are {names}")
        try:
            these = tuple(_band_columns(Table(names=names, dtype=[float] * len(names))))
        except CatalogError as err:
            raise CatalogError(f"partition {path}: {err}") from err
        if bands is None:
            bands = these
        elif these != bands:
            raise CatalogError(f"partition {path} has bands {list(these)}, partition {files[0]} has {list(bands)}: "
                               "every partition of a dataset must have the same band columns")
    if not bands:
        raise CatalogError(f"partition {files[0]} has no band columns ('<band>' and '<band>_err')")
    return bands


def check_unique_ids(files) -> None:
    """Refuse a dataset whose ``id`` repeats across (or within) partitions: a star's draws follow its id,
    so two stars with one id would get one answer. Reads only the ``id`` columns and keeps a 64-bit hash
    per row (8 bytes a star); ids whose hashes meet are compared as text before anything is refused."""
    import pandas as pd
    import pyarrow.parquet as pq

    def ids_of(f) -> np.ndarray:
        return np.asarray(pq.read_table(f, columns=["id"])["id"].to_numpy(zero_copy_only=False)).astype(str)

    hashes = np.sort(np.concatenate([pd.util.hash_array(ids_of(f)) for f in files]))
    meeting = set(hashes[1:][hashes[1:] == hashes[:-1]].tolist())
    if not meeting:
        return
    seen: dict[str, str] = {}
    repeated = []
    for f in files:
        col = ids_of(f)
        for i in map(str, col[np.isin(pd.util.hash_array(col), list(meeting))]):
            if i in seen:
                repeated.append(f"{i!r} ({seen[i]}, {f.name})")
            seen.setdefault(i, f.name)
    if repeated:
        raise CatalogError(f"ids repeat across the partitions: {', '.join(repeated[:10])}"
                           f"{' ...' if len(repeated) > 10 else ''}; every star needs its own id")


def template_catalog(bands) -> Catalog:
    """A catalogue with these bands and no stars: what a ``Fitter`` is built from for a dataset."""
    n = len(bands)
    return Catalog(np.array([], str), tuple(bands), np.zeros((0, n)), np.zeros((0, n)), np.zeros((0, n), bool),
                   np.array([], str), Table())


def plan(files, chunk: int) -> list[Unit]:
    """Every partition cut into chunks of ``chunk`` rows, numbered in file order."""
    import pyarrow.parquet as pq

    units = []
    for path in files:
        rows = pq.ParquetFile(path).metadata.num_rows
        for start in range(0, rows, chunk):
            units.append(Unit(len(units), str(path), start, min(start + chunk, rows)))
    if not units:
        raise CatalogError("the partitioned catalogue has no rows")
    return units


def check_hats_rows(source, units) -> None:
    """A HATS catalogue states its row count (``hats_nrows`` in ``properties``): refuse one whose partitions
    hold another number (a partly copied catalogue would otherwise fit, and read as complete)."""
    root = Path(source)
    for name in ("properties", "hats.properties"):
        if (root / name).exists():
            for line in (root / name).read_text().splitlines():
                key, _, value = line.partition("=")
                if key.strip() == "hats_nrows" and value.strip().isdigit():
                    found = sum(u.stop - u.start for u in units)
                    if int(value) != found:
                        raise CatalogError(f"HATS catalogue {root} states {int(value)} rows (hats_nrows) but its "
                                           f"partitions hold {found}: is it complete?")
            return


def dataset_fingerprint(files) -> str:
    """SHA-256 over each partition's name, size, modification time and Parquet footer: the identity of a
    dataset's inputs, taken without reading its rows (a rewritten file has a new modification time)."""
    h = hashlib.sha256()
    root = Path(os.path.commonpath([Path(f).parent for f in files]))
    for path in map(Path, files):
        stat = path.stat()
        with path.open("rb") as fh:
            fh.seek(max(0, stat.st_size - TAIL_BYTES))
            h.update(f"{path.relative_to(root).as_posix()}:{stat.st_size}:{stat.st_mtime_ns}:".encode() + fh.read())
    return h.hexdigest()


def read_rows(path, start: int, stop: int) -> Table:
    """Rows ``start:stop`` of a Parquet file, reading only the row groups that hold them."""
    import pyarrow.parquet as pq

    f = pq.ParquetFile(path)
    groups, first, offset = [], None, 0
    for g in range(f.metadata.num_row_groups):
        n = f.metadata.row_group(g).num_rows
        if offset + n > start and offset < stop:
            groups.append(g)
            first = offset if first is None else first
        offset += n
    table = f.read_row_groups(groups) if groups else f.schema_arrow.empty_table()
    return Table.from_pandas(table.slice(start - (first or 0), stop - start).to_pandas())


def read_unit(unit: Unit, bands=None) -> Catalog:
    """The stars of one unit, checked like any catalogue (errors name the partition)."""
    table = read_rows(unit.path, unit.start, unit.stop)
    try:
        return read_catalog(table, bands=bands)
    except CatalogError as err:
        raise CatalogError(f"partition {unit.path}, rows {unit.start}-{unit.stop - 1}: {err}") from err


@dataclass
class DatasetCheck:
    """What ``check_dataset`` found: the stars, the usable ones, and one line per flagged star."""

    files: int
    bands: tuple[str, ...]
    stars: int
    usable: int
    flag_report: list[str]  # empty when the lines went to ``check_dataset``'s on_flag


def check_dataset(source, bands=None, chunk: int = 100_000, on_flag: Callable[[str], None] | None = None
                  ) -> DatasetCheck:
    """``read_catalog``'s checks over a partitioned dataset (``sedppl check`` on a folder), one chunk of
    ``chunk`` rows at a time so that a catalogue beyond memory can be checked: every partition has the
    same band columns, ids are unique across them, and each flagged star is reported as
    ``"<partition>: star 'id': why"``: to ``on_flag`` as it is found (the result then keeps none, so that
    memory stays one chunk's however many stars are flagged) or, by default, in the result's
    ``flag_report``. A problem with a whole partition raises ``CatalogError`` naming it."""
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    files = partition_files(source)
    bands = tuple(bands) if bands is not None else dataset_bands(files)
    units = plan(files, chunk)
    if is_hats(source):
        check_hats_rows(source, units)
    check_unique_ids(files)
    stars = usable = 0
    report: list[str] = []
    on_flag = report.append if on_flag is None else on_flag
    for unit in units:
        catalog = read_unit(unit, bands)
        stars += len(catalog)
        usable += int(catalog.usable.sum())
        for line in catalog.flag_report():
            on_flag(f"{Path(unit.path).name}: {line}")
    return DatasetCheck(len(files), bands, stars, usable, report)


_FITTERS: dict[bytes, object] = {}  # per process (a Dask worker): the fits built so far, by settings
MAX_FITTERS = 4  # fits kept per process; the oldest goes first


def _fitter_key(bands, settings: dict, identity: dict) -> bytes:
    return pickle.dumps((tuple(bands), sorted(settings.items()), identity["code"]))


def _worker_fitter(bands, settings: dict, identity: dict):
    """The ``Fitter`` of these settings in this process, built on first use; refused unless this process's
    sedppl code and the fit's settings are the run's (a long-lived cluster may run another version)."""
    from .fit import Fitter
    from .run import code_fingerprint

    if code_fingerprint() != identity["code"]:
        raise RuntimeError(f"this Dask worker runs other sedppl code ({code_fingerprint()}) than the run "
                           f"({identity['code']}): restart the cluster's workers from the same installation")
    key = _fitter_key(bands, settings, identity)
    if key not in _FITTERS:
        while len(_FITTERS) >= MAX_FITTERS:
            _FITTERS.pop(next(iter(_FITTERS)))
        _FITTERS[key] = Fitter(template_catalog(bands), **settings)
    fitter = _FITTERS[key]
    if fitter.settings() != identity["settings"]:
        raise RuntimeError("this Dask worker's fit differs from the run's settings (a prior or model file that "
                           "is not the same on every machine?)")
    return fitter


def fit_unit(unit: Unit, out: str, bands, settings: dict, keep_draws: int | None, identity: dict,
             run_token: str) -> int:
    """Fit one unit and write it into the run folder ``out`` (while it still holds ``run_token``'s run): the
    task each Dask worker runs."""
    from .run import write_chunk

    fit = _worker_fitter(bands, settings, identity).fit_part(read_unit(unit, bands), progress=False)
    write_chunk(Path(out), unit.index, fit, keep_draws, run_token)
    return unit.stop - unit.start


class DaskRunError(RuntimeError):
    """A Dask run that stopped (a worker lost, the cluster gone): its finished chunks are kept."""


def fit_dataset(source, out, settings: dict, chunk: int | None = None, overwrite: bool = False,
                keep_draws: int | None = None, progress: bool = True, workers: int | None = None,
                scheduler: str | None = None, bands=None) -> Path:
    """Fit a partitioned dataset into the run folder ``out`` (``settings``: ``fit.Fitter``'s keywords;
    ``bands``: use only these). Runs in this process unless ``workers`` (a local cluster) or
    ``scheduler`` (an existing one) is given. Returns the summary's path.

    With ``workers``, call it under ``if __name__ == "__main__":`` in a script: Dask starts its worker
    processes by importing the main module again.
    """
    from .fit import Fitter
    from .run import RunFolder, checked_chunking, run_identity

    if workers is not None and workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    files = [f.resolve() for f in partition_files(source)]  # workers may run elsewhere: absolute paths
    bands = tuple(bands) if bands is not None else dataset_bands(files)
    settings = _portable(settings)
    fitter = Fitter(template_catalog(bands), **settings)  # checks the settings before any work; one-process fits
    chunk = checked_chunking(fitter.method, chunk, keep_draws)
    units = plan(files, chunk)
    if is_hats(source):
        check_hats_rows(source, units)
    identity = run_identity(fitter, dataset_fingerprint(files), sum(u.stop - u.start for u in units), chunk,
                            keep_draws, partitions=len(files), bands=list(bands))
    folder = RunFolder(Path(out).resolve(), identity, len(units), overwrite)
    todo = [u for u in units if not folder.done(u.index)]
    if todo:
        check_unique_ids(files)
    total = identity["rows"]
    with tqdm(total=total, initial=total - sum(u.stop - u.start for u in todo), desc=f"fit ({fitter.method})",
              unit="star", disable=not progress) as bar:
        if workers is None and scheduler is None:
            _FITTERS[_fitter_key(bands, settings, identity)] = fitter
            for unit in todo:
                bar.update(fit_unit(unit, str(folder.path), bands, settings, keep_draws, identity, folder.token))
        else:
            _on_dask(todo, folder.path, bands, settings, keep_draws, identity, folder.token, workers, scheduler, bar)
    return folder.finish()


def _portable(settings: dict) -> dict:
    """The settings as every worker must see them: the prior loaded here (not a path a worker may lack or
    read differently), the NPE model's path absolute."""
    from ..model.priors import Prior

    settings = dict(settings)
    if settings.get("prior") is not None and not isinstance(settings["prior"], Prior):
        settings["prior"] = Prior.load(settings["prior"])
    if settings.get("npe_model") is not None:
        settings["npe_model"] = Path(settings["npe_model"]).resolve()
    return settings


def _on_dask(units, out: Path, bands, settings, keep_draws, identity, run_token, workers, scheduler, bar) -> None:
    """The units as Dask tasks, each written by its worker; a failed unit stops the run (the others'
    results stay written, and a rerun resumes)."""
    from dask.distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler is None:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0")
    client = Client(cluster if cluster is not None else scheduler)
    try:
        futures = [client.submit(fit_unit, unit, str(out), bands, settings, keep_draws, identity, run_token,
                                 pure=False, key=f"sedppl-{run_token}-{unit.index:06d}")  # this run's own keys
                   for unit in units]
        for future in as_completed(futures):
            bar.update(future.result())
            future.release()
    except (CatalogError, ValueError, FileNotFoundError, StaleChunkError):  # a task's own error, as in one process
        raise
    except (Exception, asyncio.CancelledError) as err:  # KilledWorker, a cancelled task, a lost scheduler
        if type(err) is RuntimeError:  # a worker's refusal (``_worker_fitter``)
            raise
        raise DaskRunError(f"the Dask run stopped ({type(err).__name__}: {err}); every finished chunk is kept in "
                           f"{out}: run the same command again to resume") from err
    finally:
        client.close()  # before the cluster, so that no worker leaves with results the client still holds
        if cluster is not None:
            cluster.close()


def partition_catalog(source, rows: int, out) -> list[Path]:
    """Split one catalogue (any format ``read_table`` reads) into Parquet files of ``rows`` rows each in the
    new folder ``out``: a dataset that ``sedppl fit`` runs partition by partition. The files are written
    into a temporary folder that is renamed to ``out`` at the end, so ``out`` is whole or absent."""
    import shutil

    if rows < 1:
        raise ValueError(f"rows must be >= 1, got {rows}")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} exists and is not an empty folder: choose a new folder for the partitions")
    table = read_table(source)
    read_catalog(table)  # the whole file checked once: ids present and unique
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        width = max(6, len(str(len(table) // rows)))
        names = []
        for k, start in enumerate(range(0, len(table), rows)):
            names.append(f"part-{k:0{width}d}.parquet")
            table[start:start + rows].write(tmp / names[-1], format="parquet")
        if out.exists():
            out.rmdir()  # empty, checked above
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return [out / name for name in names]
