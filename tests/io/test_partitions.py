"""Partitioned catalogues: found in a fixed order, split and fitted as Dask tasks with the same answer
star for star as one process and as the single file; resumed, refused and checked like any run."""

from pathlib import Path

import jax
import numpy as np
import pytest
from astropy.table import Table, vstack

from sedppl.io.catalog import CatalogError, read_catalog, write_table
from sedppl.io.cli import main
from sedppl.io.fit import FitResult, fit_catalog
from sedppl.io.partitions import (check_dataset, check_hats_rows, check_unique_ids, dataset_bands, partition_catalog,
                                   partition_files, plan)
from sedppl.io.run import RunFolderError
from sedppl.model.generative import sed_model
from sedppl.model.simulate import simulate_catalog


HATS_IMPORT = Path(__file__).parents[1] / "data" / "hats_sim12"  # written by hats-import (tests/data/make_hats.py)


@pytest.fixture(scope="module")
def stars(tmp_path_factory):
    path = tmp_path_factory.mktemp("stars") / "stars.parquet"
    return write_table(simulate_catalog(jax.random.key(3), 10, sed_model()), path)


def _same(a: FitResult, b: FitResult) -> None:
    assert list(a.summary["id"]) == list(b.summary["id"])
    for column in ("teff_median", "logg_p16", "av_p84", "flag"):
        np.testing.assert_array_equal(np.asarray(a.summary[column]), np.asarray(b.summary[column]))
    np.testing.assert_array_equal(a.posterior["posterior"]["teff"].values, b.posterior["posterior"]["teff"].values)


def test_two_dask_workers_give_one_process_answer_star_for_star(stars, tmp_path):
    parts = partition_catalog(stars, 4, tmp_path / "parts")
    assert [p.name for p in parts] == ["part-000000.parquet", "part-000001.parquet", "part-000002.parquet"]
    settings = {"method": "npe", "draws": 300, "chunk": 3, "progress": False}
    one = fit_catalog(tmp_path / "parts", out=tmp_path / "one", **settings)
    two = fit_catalog(tmp_path / "parts", out=tmp_path / "two", workers=2, **settings)
    single = fit_catalog(stars, out=tmp_path / "single", **settings)  # the file itself, chunked differently
    _same(one, two)
    _same(one, single)
    assert len(list((tmp_path / "two" / "chunks").glob("*.parquet"))) == 5  # 4 = 3 + 1, 4 = 3 + 1, 2 rows


def test_a_dataset_run_resumes_and_refuses_changed_inputs(stars, tmp_path):
    partition_catalog(stars, 5, tmp_path / "parts")
    out = tmp_path / "fit"
    first = fit_catalog(tmp_path / "parts", "npe", out=out, draws=300, chunk=3, progress=False)  # as above: cached
    (out / "chunks" / "000001.parquet").unlink()  # as if killed before that chunk finished
    (out / "run.json").write_text((out / "run.json").read_text().replace('"complete"', '"running"'))
    with pytest.raises(Exception, match="unfinished"):
        FitResult.read(out)
    again = fit_catalog(tmp_path / "parts", "npe", out=out, draws=300, chunk=3, progress=False)
    _same(first, again)
    table = Table.read(tmp_path / "parts" / "part-000001.parquet")
    table["gaia_g"][0] += 0.01
    table.write(tmp_path / "parts" / "part-000001.parquet", overwrite=True)
    with pytest.raises(RunFolderError, match="already holds another run"):
        fit_catalog(tmp_path / "parts", "npe", out=out, draws=300, chunk=3, progress=False)


def test_hats_layout_and_file_order(tmp_path):
    root = tmp_path / "cat"
    table = Table({"id": ["a", "b"], "gaia_g": [10.0, 11.0], "gaia_g_err": [0.01, 0.01]})
    for order, pix in ((2, 5), (1, 0), (2, 12)):
        write_table(table, root / "dataset" / f"Norder={order}" / "Dir=0" / f"Npix={pix}.parquet")
    (root / "dataset" / "_metadata").write_bytes(b"")
    write_table(table, root / "dataset" / "_common.parquet")  # underscore: metadata, not a partition
    write_table(table, root / "dataset" / "data_thumbnail.parquet")  # HATS side files, not partitions
    write_table(Table({"column": ["gaia_g"]}), root / "dataset" / "per_partition_statistics.parquet")
    write_table(table, root / "dataset" / "Norder=3" / "Dir=0" / "Npix=7.parquet" / "part0.parquet")  # a folder
    (root / "properties").write_text("dataset_type=object\n")
    files = partition_files(root)
    assert [f.relative_to(root / "dataset").as_posix() for f in files] == [
        "Norder=1/Dir=0/Npix=0.parquet", "Norder=2/Dir=0/Npix=12.parquet", "Norder=2/Dir=0/Npix=5.parquet",
        "Norder=3/Dir=0/Npix=7.parquet/part0.parquet"]
    assert dataset_bands(files) == ("gaia_g",)
    assert [(u.index, u.start, u.stop) for u in plan(files, 1)][:3] == [(0, 0, 1), (1, 1, 2), (2, 0, 1)]
    check_hats_rows(root, plan(files, 1))  # no row count stated: nothing to check
    (root / "properties").write_text("dataset_type=object\nhats_nrows=9\n")
    with pytest.raises(CatalogError, match="states 9 rows .* partitions hold 8"):
        check_hats_rows(root, plan(files, 1))


def test_a_catalogue_written_by_hats_import_fits_as_one_file_of_its_rows(tmp_path):
    """The layout hats-import 0.11 writes (hats.properties, _metadata, skymaps, Norder/Dir/Npix files with a
    _healpix_29 column): every star found once, its stated row count checked, and each star's fit the same
    as in one file of the same rows, its extra columns carried along."""
    files = partition_files(HATS_IMPORT)
    assert len(files) == 8 and all(f.relative_to(HATS_IMPORT / "dataset").parts[0].startswith("Norder=") for f in files)
    check_hats_rows(HATS_IMPORT, plan(files, 4))  # hats_nrows=12
    rows = vstack([Table.read(f) for f in files])
    assert sorted(rows["id"]) == [f"sim{i:02d}" for i in range(12)]
    settings = {"method": "npe", "draws": 300, "chunk": 3, "progress": False}  # the shapes of the tests above
    hats = fit_catalog(HATS_IMPORT, out=tmp_path / "hats", **settings)
    single = fit_catalog(write_table(rows, tmp_path / "rows.parquet"), out=tmp_path / "single", **settings)
    _same(hats, single)
    for column in ("ra", "dec", "_healpix_29", "true_teff"):
        np.testing.assert_array_equal(np.asarray(hats.summary[column]), np.asarray(rows[column]))


def test_ids_must_not_repeat_across_partitions(tmp_path):
    for k, ids in enumerate((["a", "b"], ["c", "a"])):
        write_table(Table({"id": ids, "gaia_g": [10.0, 11.0], "gaia_g_err": [0.01, 0.01]}),
                    tmp_path / "d" / f"p{k}.parquet")
    with pytest.raises(CatalogError, match=r"ids repeat across the partitions: 'a' \(p0.parquet, p1.parquet\)"):
        check_unique_ids(partition_files(tmp_path / "d"))


def test_partitions_must_share_their_bands_and_have_ids(tmp_path):
    write_table(Table({"id": ["a"], "gaia_g": [10.0], "gaia_g_err": [0.01]}), tmp_path / "d" / "p0.parquet")
    write_table(Table({"id": ["b"], "gaia_bp": [10.0], "gaia_bp_err": [0.01]}), tmp_path / "d" / "p1.parquet")
    with pytest.raises(CatalogError, match=r"p1.parquet has bands \['gaia_bp'\]"):
        dataset_bands(partition_files(tmp_path / "d"))
    write_table(Table({"name": ["b"], "gaia_g": [10.0], "gaia_g_err": [0.01]}), tmp_path / "e" / "p0.parquet")
    with pytest.raises(CatalogError, match="p0.parquet has no 'id' column"):
        dataset_bands(partition_files(tmp_path / "e"))
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "p0.parquet").write_bytes(b"")
    with pytest.raises(CatalogError, match="p0.parquet cannot be read as Parquet"):
        dataset_bands(partition_files(tmp_path / "f"))
    write_table(Table({"id": ["b"], "foo": [10.0], "foo_err": [0.01]}), tmp_path / "g" / "p0.parquet")
    with pytest.raises(CatalogError, match="p0.parquet: unknown band column 'foo'"):
        dataset_bands(partition_files(tmp_path / "g"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(CatalogError, match="holds no Parquet files"):
        partition_files(tmp_path / "empty")


def test_a_dataset_is_checked_chunk_by_chunk_like_one_catalogue(stars, tmp_path, capsys):
    table = Table.read(stars)
    table["gaia_g_err"][7] = -0.1  # flags star 7 (its band), in the second partition
    table["2mass_j"][2] = np.nan
    table["2mass_j_err"][2] = 0.02  # an error without a magnitude: flagged
    write_table(table, tmp_path / "flagged.parquet")
    partition_catalog(tmp_path / "flagged.parquet", 6, tmp_path / "parts")
    one = read_catalog(tmp_path / "flagged.parquet")
    found = check_dataset(tmp_path / "parts", chunk=4)
    assert (found.files, found.stars, found.usable, found.bands) == (2, 10, int(one.usable.sum()), one.bands)
    expected = [f"{'part-000000' if k < 6 else 'part-000001'}.parquet: {line}"
                for k, line in zip(np.flatnonzero(~one.usable), one.flag_report())]
    assert found.flag_report == expected and len(expected) >= 1
    streamed = []
    assert check_dataset(tmp_path / "parts", chunk=4, on_flag=streamed.append).flag_report == []  # none kept
    assert streamed == expected
    assert main(["check", str(tmp_path / "parts")]) == 0
    out = capsys.readouterr().out
    assert "2 partition(s), 10 stars" in out and f"flagged: {10 - found.usable}" in out
    assert all(line in out for line in expected)
    write_table(table[:1], tmp_path / "parts" / "part-000002.parquet")  # star 0 again
    with pytest.raises(CatalogError, match="ids repeat across the partitions"):
        check_dataset(tmp_path / "parts")
    write_table(Table({"id": ["new"], "gaia_g": [10.0], "gaia_g_err": [0.01]}), tmp_path / "parts" / "part-000002.parquet")
    with pytest.raises(CatalogError, match="part-000002.parquet has bands"):
        check_dataset(tmp_path / "parts")
    assert main(["check", str(tmp_path / "parts")]) == 2
    assert "part-000002.parquet has bands" in capsys.readouterr().err


def test_cli_partition_and_its_refusals(stars, tmp_path, capsys):
    assert main(["partition", str(stars), "--rows", "6", "--out", str(tmp_path / "p")]) == 0
    assert "wrote 2 partitions" in capsys.readouterr().out
    assert main(["partition", str(stars), "--rows", "6", "--out", str(tmp_path / "p")]) == 1
    assert "not an empty folder" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p"]  # no temporary folder left behind
    assert main(["fit", str(stars), "--out", str(tmp_path / "f"), "--workers", "2", "--method", "npe"]) == 2
    assert "sedppl partition" in capsys.readouterr().err
    assert not (tmp_path / "f").exists()  # refused before any work
    assert main(["fit", str(tmp_path / "p"), "--method", "npe", "--draws", "300", "--chunk", "3", "--out",
                 str(tmp_path / "f"), "--quiet"]) == 0
    assert "fitted 10/10 stars" in capsys.readouterr().out
    assert len(FitResult.read(tmp_path / "f").summary) == 10
