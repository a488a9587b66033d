"""Survey tables become catalogs: flagged bands dropped, labels carried, clear errors."""

import numpy as np
import pytest
from astropy.table import Table

from sedppl.io.catalog import read_catalog
from sedppl.io.cli import main
from sedppl.io.survey import MappingError, SurveyMapping, join_tables, survey_catalog

MAPPING = """
id = "name"
select = {kind = ["single"]}
[bands.gaia_g]
mag = "G"
err = "eG"
max_err = 0.1
[bands.2mass_j]
mag = "J"
err = "eJ"
flag = "qf"
flag_index = 0
good = "AB"
[bands.2mass_h]
mag = "H"
err = "eH"
flag = "qf"
flag_index = 1
good = "AB"
[bands.2mass_ks]
mag = "K"
err = "eK"
[labels.teff]
value = "T"
minus = "eT"
plus = "ET"
"""


@pytest.fixture
def photometry():
    return Table({"name": ["a", "b", "c", "d"], "kind": ["single", "single", "binary", "single"],
                  "G": [10.0, 11.0, 12.0, 13.0], "eG": [0.003, 0.5, 0.003, 0.003],
                  "J": [8.0, 9.0, 10.0, 11.0], "eJ": [0.02, 0.02, 0.02, -1.0],
                  "H": [7.5, 8.5, 9.5, 10.5], "eH": [0.03, 0.03, 0.03, 0.03],
                  "K": [7.3, 8.3, 9.3, 10.3], "eK": [0.02, 0.02, 0.02, 0.02],
                  "qf": ["AA", "AE", "AA", "AA"]})


@pytest.fixture
def mapping(tmp_path):
    path = tmp_path / "map.toml"
    path.write_text(MAPPING)
    return SurveyMapping.load(path)


def test_flags_errors_and_selection_decide_which_bands_stay(photometry, mapping):
    labels = Table({"star": ["b", "a", "d"], "T": [3500.0, 3300.0, 3100.0], "eT": [30.0, 20.0, 10.0],
                    "ET": [40.0, 20.0, 10.0]})
    cat = survey_catalog(join_tables(labels, photometry, on=("star", "name")), SurveyMapping(
        "star", mapping.bands, mapping.labels, mapping.select))
    assert list(cat["id"]) == ["a", "b", "d"]  # the binary is not selected
    b, d = cat[1], cat[2]
    assert np.isnan(b["gaia_g"]) and np.isnan(b["2mass_h"]) and b["dropped"] == "gaia_g,2mass_h"  # error, flag
    assert np.isnan(d["2mass_j"]) and d["dropped"] == "2mass_j"  # negative error
    assert cat[0]["dropped"] == "" and cat[0]["label_teff"] == 3300.0 and b["label_teff_plus"] == 40.0
    catalog = read_catalog(cat)
    assert catalog.bands == ("gaia_g", "2mass_j", "2mass_h", "2mass_ks")
    np.testing.assert_array_equal(catalog.n_bands, [4, 2, 3])


def test_mapping_errors_name_what_is_wrong(tmp_path, photometry, mapping):
    bad = tmp_path / "bad.toml"
    bad.write_text(MAPPING.replace("[bands.2mass_ks]", "[bands.johnson_q]"))
    with pytest.raises(MappingError, match="unknown band 'johnson_q'"):
        SurveyMapping.load(bad)
    with pytest.raises(MappingError, match=r"lacks the mapped columns \['T', 'eT', 'ET'\]"):
        survey_catalog(photometry, mapping)


def test_ingest_cli_mirrors_the_functions(tmp_path, photometry, capsys):
    photometry["T"], photometry["eT"], photometry["ET"] = 3000.0, 10.0, 10.0
    photometry.write(tmp_path / "survey.csv", format="ascii.csv")
    (tmp_path / "map.toml").write_text(MAPPING)
    assert main(["ingest", str(tmp_path / "survey.csv"), "--mapping", str(tmp_path / "map.toml"),
                 "--out", str(tmp_path / "cat.parquet")]) == 0
    assert "wrote 3 stars in 4 bands" in capsys.readouterr().out
    assert len(read_catalog(tmp_path / "cat.parquet")) == 3
    assert main(["ingest", str(tmp_path / "survey.csv"), "--mapping", str(tmp_path / "map.toml"),
                 "--join", str(tmp_path / "survey.csv"), "--out", str(tmp_path / "x.parquet")]) == 2
    assert "--on LEFT_COLUMN=RIGHT_COLUMN" in capsys.readouterr().err


@pytest.mark.parametrize("edit, words", [
    (("flag_index = 1", 'flag_index = "zero"'), r"\[bands.2mass_h\]: flag_index must be a whole number >= 0"),
    (("flag_index = 1", "flag_index = -1"), r"\[bands.2mass_h\]: flag_index must be a whole number >= 0"),
    (('err = "eK"', 'err = "K"'), r"\[bands.2mass_ks\]: err and mag both name column 'K'"),
    (('err = "eK"', "err = 3"), r"\[bands.2mass_ks\]: err must be a column name"),
    (("max_err = 0.1", "max_err = 0"), r"\[bands.gaia_g\]: max_err must be a number > 0"),
    # once a one-word KeyError ('value'), and a text select that kept every row with an S or an M in it
    (('value = "T"', 'valu = "T"'), r"\[labels.teff\] maps 'value' and optionally 'minus', 'plus'"),
    (('select = {kind = ["single"]}', 'select = {kind = "single"}'), r"select maps each column to a list"),
])
def test_band_settings_of_the_wrong_kind_are_refused_by_name(tmp_path, edit, words):
    bad = tmp_path / "bad.toml"
    bad.write_text(MAPPING.replace(*edit))
    with pytest.raises(MappingError, match=words):
        SurveyMapping.load(bad)


def test_columns_that_are_not_photometry_are_refused_by_name(photometry, mapping):
    photometry["T"], photometry["eT"], photometry["ET"] = 3000.0, 10.0, 10.0
    text = photometry.copy()
    text["H"] = ["7.5", "8.5", "9.5", "bright"]
    with pytest.raises(MappingError, match=r"column 'H' is not numeric \(e.g. 'bright'\)"):
        survey_catalog(text, mapping)
    swapped = photometry.copy()
    swapped["eK"] = swapped["K"]  # the error column holds magnitudes
    with pytest.raises(MappingError, match=r"band 2mass_ks: the errors in column 'eK' have a median of 8.3 mag"):
        survey_catalog(swapped, mapping)


def test_a_flag_setting_that_cannot_fit_its_column_is_refused_by_name(photometry, mapping, tmp_path):
    """Once every star silently lost the band, read as bad data: an index past every flag, a numeric column."""
    photometry["T"], photometry["eT"], photometry["ET"] = 3000.0, 10.0, 10.0
    bad = tmp_path / "bad.toml"
    bad.write_text(MAPPING.replace("flag_index = 1", "flag_index = 7"))
    with pytest.raises(MappingError, match=r"flag_index 7 is beyond every flag in column 'qf' \(the longest has 2"):
        survey_catalog(photometry, SurveyMapping.load(bad))
    bad.write_text(MAPPING.replace('flag = "qf"\nflag_index = 1', 'flag = "G"\nflag_index = 0'))
    with pytest.raises(MappingError, match=r"flag column 'G' holds real numbers"):
        survey_catalog(photometry, SurveyMapping.load(bad))
    assert len(survey_catalog(photometry, mapping)) == 3  # the mapping as written still reads


def test_astrometry_columns_are_mapped(photometry, tmp_path):
    photometry["plx"], photometry["e_plx"] = [10.0, 5.0, 2.0, np.nan], [0.1, 0.1, 0.1, 0.1]
    photometry["RA"], photometry["DE"] = [10.0, 20.0, 30.0, 40.0], [-5.0, 0.0, 5.0, 10.0]
    photometry["T"], photometry["eT"], photometry["ET"] = [3300.0] * 4, [20.0] * 4, [20.0] * 4
    path = tmp_path / "m.toml"
    path.write_text(MAPPING + '[astrometry]\nparallax = "plx"\nparallax_error = "e_plx"\nra = "RA"\ndec = "DE"\n')
    out = survey_catalog(photometry, SurveyMapping.load(path))
    np.testing.assert_array_equal(out["parallax"], [10.0, 5.0, np.nan])  # the binary is not selected
    np.testing.assert_array_equal(out["dec"], [-5.0, 0.0, 10.0])
    path.write_text(MAPPING + '[astrometry]\nparallax = "plx"\n')
    with pytest.raises(MappingError, match="parallax with parallax_error"):
        SurveyMapping.load(path)
    path.write_text(MAPPING + '[astrometry]\ndistance = "d"\n')
    with pytest.raises(MappingError, match=r"\[astrometry\] maps"):
        SurveyMapping.load(path)
