"""Streamed fits: chunks written atomically, resumed after a kill to the same numbers, refused where they
would overwrite or could not be written, never read while unfinished."""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from sedppl.inference.npe.card import read_card
from sedppl.io import run as run_module
from sedppl.io.fit import DEFAULT_NPE_MODEL, REPORTED, FitResult, Fitter, fit_catalog
from sedppl.io.run import RunFolder, RunFolderError, StaleChunkError, UnfinishedRunError, fit_to_folder
from sedppl.model.simulate import NoiseModel, simulate_catalog

DRAWS = 300  # as every NPE fit in the tests: one compiled NPE program


@pytest.fixture(scope="module")
def table():
    t = simulate_catalog(jax.random.key(21), 7, read_card(DEFAULT_NPE_MODEL).model(),
                         NoiseModel(err_min=0.01, err_max=0.05))
    t["gaia_g_err"][4] = -1.0  # rejected by input validation: its chunk (of one row) has no usable star
    return t


@pytest.fixture(scope="module")
def in_memory(table):
    return fit_catalog(table, "npe", draws=DRAWS, progress=False)


def _same(a: FitResult, b: FitResult):
    assert list(a.summary["id"]) == list(b.summary["id"])
    assert list(a.summary["flag"]) == list(b.summary["flag"])
    for p in REPORTED:
        for q in ("median", "p16", "p84"):
            np.testing.assert_array_equal(a.summary[f"{p}_{q}"], b.summary[f"{p}_{q}"])
        np.testing.assert_array_equal(a.posterior["posterior"][p].values, b.posterior["posterior"][p].values)


def test_a_star_gets_the_same_draws_whatever_its_chunk(table, in_memory, tmp_path):
    streamed = fit_catalog(table, "npe", draws=DRAWS, progress=False, out=tmp_path, chunk=2)
    _same(in_memory, streamed)
    assert sorted(p.name for p in (tmp_path / "posterior").iterdir()) == [f"00000{i}.nc" for i in range(4)]
    assert json.loads((tmp_path / "run.json").read_text())["status"] == "complete"
    assert not list(tmp_path.rglob("*.tmp"))
    # and on its own: a star's key comes from the seed and its id, not from its row or neighbours
    alone = fit_catalog(table[5:6], "npe", draws=DRAWS, progress=False)
    star = str(table["id"][5])
    np.testing.assert_array_equal(alone.posterior["posterior"]["teff"].sel(star=star).values,
                                  in_memory.posterior["posterior"]["teff"].sel(star=star).values)


def test_a_killed_fit_resumes_to_the_same_result(table, in_memory, tmp_path):
    catalog, out = tmp_path / "cat.parquet", tmp_path / "fit"
    table.write(catalog)
    cmd = [sys.executable, "-m", "sedppl", "fit", str(catalog), "--method", "npe", "--draws", str(DRAWS),
           "--chunk", "1", "--out", str(out), "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = out / "chunks" / "000000.parquet"
    deadline = time.time() + 300
    while not first.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert first.exists()
    done = sorted(p.name for p in (out / "chunks").glob("*.parquet"))
    assert len(done) < len(table), "the fit finished before it could be killed: nothing was resumed"
    assert json.loads((out / "run.json").read_text())["status"] == "running"
    with pytest.raises(UnfinishedRunError, match=f"{len(done)} of {len(table)} chunks"):
        FitResult.read(out)

    resumed = fit_catalog(table, "npe", draws=DRAWS, progress=False, out=out, chunk=1)
    assert sorted(p.name for p in (out / "chunks").glob("*.parquet"))[: len(done)] == done  # kept, not redone
    assert len(resumed.summary) == len(table) and len(set(resumed.summary["id"])) == len(table)  # each star once
    _same(in_memory, resumed)


def test_an_existing_result_is_refused_before_any_work_unless_overwritten(table, tmp_path):
    fitter = Fitter(table, "npe", draws=DRAWS)
    RunFolder(tmp_path, {"settings": "another run"}, 1)  # a folder claimed by a different run
    fitter.fit_rows = lambda *a, **k: pytest.fail("fitted before the folder was checked")
    with pytest.raises(RunFolderError, match="already holds an unfinished run with other settings"):
        fit_to_folder(fitter, tmp_path, progress=False)
    (tmp_path / "summary.parquet").write_bytes(b"an earlier result")
    (tmp_path / "run.json").unlink()
    with pytest.raises(RunFolderError, match="already holds an earlier result.*--overwrite"):
        fit_to_folder(fitter, tmp_path, progress=False)
    (tmp_path / "notes.txt").write_text("the user's own file")
    RunFolder(tmp_path, {"settings": "this run"}, 1, overwrite=True)
    assert not (tmp_path / "summary.parquet").exists() and (tmp_path / "notes.txt").exists()


def test_a_chunk_of_a_replaced_run_never_enters_the_run_that_replaced_it(table, in_memory, tmp_path):
    """A task left running by a run that ``overwrite`` replaced (on an external Dask cluster) cannot write
    into the new run; a chunk of it found on resuming is fitted again; one that lands while the new run fits
    (in the instant between the check and its rename) is found at the end, removed, and fitted on the rerun."""
    fit_catalog(table, "npe", draws=DRAWS, progress=False, out=tmp_path, chunk=4, seed=1)
    leftover = {name: (tmp_path / name).read_bytes() for name in ("chunks/000000.parquet", "posterior/000000.nc")}
    old_token = json.loads((tmp_path / "run.json").read_text())["token"]

    def land_leftover(folder):
        for name, data in leftover.items():
            (folder / name).parent.mkdir(exist_ok=True)
            (folder / name).write_bytes(data)

    class Interrupted(Exception):
        pass

    fitter = Fitter(table, "npe", draws=DRAWS)
    fitter.fit_rows = lambda *a, **k: (_ for _ in ()).throw(Interrupted())
    with pytest.raises(Interrupted):  # the new run has claimed the folder (cleared it) and fitted nothing yet
        fit_to_folder(fitter, tmp_path, chunk=4, overwrite=True, progress=False)
    assert not (tmp_path / "chunks").exists()
    token = json.loads((tmp_path / "run.json").read_text())["token"]
    assert token != old_token
    with pytest.raises(StaleChunkError, match="another run"):
        run_module.write_chunk(tmp_path, 0, in_memory, None, old_token)
    assert not list(tmp_path.rglob("*.parquet")) and not list(tmp_path.rglob("*.nc")) and not list(tmp_path.rglob("*.tmp"))

    land_leftover(tmp_path)  # found on resuming: not done, fitted again
    _same(in_memory, fit_catalog(table, "npe", draws=DRAWS, progress=False, out=tmp_path, chunk=4))
    assert json.loads((tmp_path / "run.json").read_text())["token"] == token  # resumed, not replaced

    fitter = Fitter(table, "npe", draws=DRAWS)
    fit_rows = fitter.fit_rows

    def racing(rows, progress=True):  # while the last chunk is fitted, the left-over chunk 0 lands
        fit = fit_rows(rows, progress)
        if rows[0] == 4:
            land_leftover(fresh)
        return fit

    fitter.fit_rows, fresh = racing, tmp_path / "fresh"
    with pytest.raises(UnfinishedRunError, match=r"chunks \[0\] were written by another run"):
        fit_to_folder(fitter, fresh, chunk=4, progress=False)
    assert not (fresh / "chunks" / "000000.parquet").exists() and not (fresh / "summary.parquet").exists()
    _same(in_memory, fit_catalog(table, "npe", draws=DRAWS, progress=False, out=fresh, chunk=4))


def test_an_output_path_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(RunFolderError, match="is a file"):
        RunFolder(tmp_path / "f", {}, 1)


def test_a_failed_write_leaves_nothing_that_reads_as_finished(table, tmp_path, monkeypatch):
    real = run_module.atomic_write
    calls = {"n": 0}

    def full_disk(path, write, before_rename=None):
        if path.suffix == ".nc":
            calls["n"] += 1
            if calls["n"] == 2:  # the second chunk's draws: the disk fills mid-file
                return real(path, lambda tmp: (tmp.write_bytes(b"half a file"), _raise_enospc()), before_rename)
        return real(path, write, before_rename)

    monkeypatch.setattr(run_module, "atomic_write", full_disk)
    with pytest.raises(OSError, match="No space left"):
        fit_catalog(table, "npe", draws=DRAWS, progress=False, out=tmp_path, chunk=2)
    assert not (tmp_path / "summary.parquet").exists() and not list(tmp_path.rglob("*.tmp"))
    assert [p.name for p in (tmp_path / "chunks").iterdir()] == ["000000.parquet"]
    with pytest.raises(UnfinishedRunError):
        FitResult.read(tmp_path)


def _raise_enospc():
    raise OSError(28, "No space left on device")


def test_thinned_and_summary_only_outputs(table, in_memory, tmp_path):
    thin = fit_catalog(table, "npe", draws=DRAWS, progress=False, out=tmp_path / "thin", keep_draws=10)
    assert thin.posterior["posterior"]["teff"].shape == (1, 10, 6) and "sample_stats" not in thin.posterior.children
    np.testing.assert_array_equal(thin.summary["teff_median"], in_memory.summary["teff_median"])  # from all draws
    bare = fit_catalog(table, "npe", draws=DRAWS, progress=False, out=tmp_path / "bare", keep_draws=0)
    assert not (tmp_path / "bare" / "posterior").exists() and "posterior" not in bare.posterior.children
    assert len(bare.summary) == len(table)
    assert len(FitResult.read(tmp_path / "bare").summary) == len(table)  # kept none: nothing is missing


def test_a_finished_fit_with_lost_draws_or_a_damaged_summary_does_not_read_as_whole(table, tmp_path):
    """Once it read with an empty posterior and the note 'no draws stored', as if none had been kept."""
    fit_catalog(table, "npe", draws=DRAWS, progress=False, out=tmp_path / "fit", chunk=2)
    (tmp_path / "fit" / "posterior" / "000001.nc").unlink()  # stars 2 and 3
    with pytest.raises(UnfinishedRunError, match=r"the draws of 2 fitted star\(s\) are missing"):
        FitResult.read(tmp_path / "fit")
    for draws in (tmp_path / "fit" / "posterior").glob("*.nc"):
        draws.unlink()
    with pytest.raises(UnfinishedRunError, match=r"the draws of 6 fitted star\(s\) are missing"):
        FitResult.read(tmp_path / "fit")
    summary = tmp_path / "fit" / "summary.parquet"
    summary.write_bytes(summary.read_bytes()[:300])
    with pytest.raises(UnfinishedRunError, match=r"summary.parquet cannot be read"):
        FitResult.read(tmp_path / "fit")
