import numpy as np
import pytest
from astropy.table import Table

from sedppl.io.catalog import CatalogError, read_catalog, write_table


def _table(**changes):
    t = Table(
        {
            "id": ["a", "b", "c"],
            "gaia_g": [10.0, 11.0, 12.0], "gaia_g_err": [0.01, 0.01, 0.01],
            "2mass_j": [9.0, 10.0, 11.0], "2mass_j_err": [0.02, 0.02, 0.02],
            "wise_w1": [8.5, 9.5, 10.5], "wise_w1_err": [0.03, 0.03, 0.03],
            "ra": [1.0, 2.0, 3.0],
        }
    )
    for name, values in changes.items():
        t[name] = values
    return t


@pytest.mark.parametrize("suffix", [".csv", ".ecsv", ".fits", ".parquet"])
def test_round_trip_formats(tmp_path, suffix):
    path = write_table(_table(), tmp_path / f"cat{suffix}")
    cat = read_catalog(path)
    assert cat.bands == ("gaia_g", "2mass_j", "wise_w1")
    assert cat.usable.all() and list(cat.extra.colnames) == ["ra"]
    np.testing.assert_allclose(cat.mag[:, 0], [10, 11, 12])


def test_csv_ids_are_read_as_written(tmp_path):
    """Ids are text: leading zeros and exponents survive, and 7, 07 and 007 are three stars."""
    path = tmp_path / "c.csv"
    rows = "".join(f"{i},10,0.01,9,0.02,8.5,0.03\n" for i in ("00123", "1e3", "7", "07", "007"))
    path.write_text("id,gaia_g,gaia_g_err,2mass_j,2mass_j_err,wise_w1,wise_w1_err\n" + rows)
    assert list(read_catalog(path).ids) == ["00123", "1e3", "7", "07", "007"]


def test_csv_byte_order_mark_and_duplicate_header(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_text("\ufeffid,gaia_g,gaia_g_err,2mass_j,2mass_j_err,wise_w1,wise_w1_err\na,10,0.01,9,0.02,8.5,0.03\n",
                    encoding="utf-8")
    assert list(read_catalog(path).ids) == ["a"]
    path = tmp_path / "twice.csv"
    path.write_text("id,gaia_g,gaia_g_err,gaia_g,2mass_j,2mass_j_err\na,10,0.01,11,9,0.02\n")
    with pytest.raises(CatalogError, match=r"\['gaia_g'\] more than once"):
        read_catalog(path)


def test_nan_and_empty_cells_mean_absent(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("id,gaia_g,gaia_g_err,2mass_j,2mass_j_err,wise_w1,wise_w1_err,wise_w2,wise_w2_err\n"
                    "a,10,0.01,,,8.5,0.03,8.4,0.03\nb,11,0.01,10,0.02,nan,nan,9.4,0.03\n")
    cat = read_catalog(path)
    assert cat.mask.tolist() == [[True, False, True, True], [True, True, False, True]]
    assert cat.usable.all()


@pytest.mark.parametrize(
    "changes, star, words",
    [
        ({"gaia_g_err": [0.01, -0.1, 0.01]}, "b", "gaia_g: magnitude without a positive finite error"),
        ({"2mass_j_err": [0.02, 0.02, np.nan]}, "c", "2mass_j: magnitude without"),
        ({"wise_w1": [8.5, np.inf, 10.5]}, "b", "wise_w1: infinite magnitude"),
        ({"gaia_g": [np.nan, 11.0, 12.0]}, "a", "only 2 usable band(s)"),
        ({"gaia_g": ["10.0", "eleven", "12"]}, "b", "gaia_g: cannot read 'eleven' as a number"),
        ({"parallax": ["1.2", "abc", ""], "parallax_error": [0.1] * 3}, "b", "parallax: cannot read 'abc' as a number"),
        ({"dec": [0.0, 0.0, -95.0], "parallax": [1.0] * 3, "parallax_error": [0.1] * 3}, "c", "dec=-95 outside [-90, 90]"),
    ],
)
def test_bad_rows_flag_the_star_and_the_rest_goes_on(changes, star, words):
    cat = read_catalog(_table(**changes))
    flagged = dict(zip(cat.ids, cat.flags))
    assert words in flagged[star]
    assert sum(bool(f) for f in cat.flags) == 1
    assert any(star in line and words in line for line in cat.flag_report())


def test_positions_are_not_read_without_parallaxes():
    """Only a catalogue with parallaxes uses ra and dec (the dust map): without one, sexagesimal text is carried."""
    cat = read_catalog(_table(ra=["10:00:01", "11:00:00", "12:00:00"], dec=["-95", "+10:00:00", "0"]))
    assert cat.usable.all()


def test_whole_file_problems_raise_with_names(tmp_path):
    with pytest.raises(CatalogError, match="unknown band column 'gaia_x'"):
        read_catalog(_table(gaia_x=[1.0, 2, 3], gaia_x_err=[0.1, 0.1, 0.1]))
    with pytest.raises(CatalogError, match="duplicate ids.*'a'"):
        read_catalog(_table(id=["a", "a", "c"]))
    with pytest.raises(CatalogError, match="'wise_w2' has no error column 'wise_w2_err'"):
        read_catalog(_table(wise_w2=[1.0, 2, 3]))
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(CatalogError, match="empty"):
        read_catalog(empty)
    header_only = tmp_path / "header.csv"
    header_only.write_text("id,gaia_g,gaia_g_err\n")
    with pytest.raises(CatalogError, match="no rows"):
        read_catalog(header_only)
    with pytest.raises(CatalogError, match="does not exist"):
        read_catalog(tmp_path / "missing.csv")
    with pytest.raises(CatalogError, match="no 'id' column"):
        read_catalog(Table({"gaia_g": [1.0], "gaia_g_err": [0.1]}))
