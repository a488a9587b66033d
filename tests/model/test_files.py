"""User TOML files: a missing file or bad TOML is an error naming what the file is and where."""

import pytest

from sedppl.inference.npe.train import TrainConfig
from sedppl.io.survey import MappingError, SurveyMapping
from sedppl.model.files import read_toml
from sedppl.model.offsets import BandOffsets
from sedppl.model.priors import Prior, PriorError


@pytest.mark.parametrize("load, error, what", [
    (Prior.load, PriorError, "prior file"), (BandOffsets.load, ValueError, "offsets file"),
    (TrainConfig.from_toml, ValueError, "training config"), (SurveyMapping.load, MappingError, "survey mapping")])
def test_missing_and_invalid_files_are_named(tmp_path, load, error, what):
    with pytest.raises(error, match=f"{what} .*nowhere.toml does not exist"):
        load(tmp_path / "nowhere.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[teff\nlow = ")
    with pytest.raises(error, match=f"{what} .*bad.toml is not valid TOML"):
        load(bad)


def test_read_toml_returns_the_tables(tmp_path):
    path = tmp_path / "ok.toml"
    path.write_text("[gaia_g]\noffset = 0.1\n")
    assert read_toml(path, "offsets file") == {"gaia_g": {"offset": 0.1}}
