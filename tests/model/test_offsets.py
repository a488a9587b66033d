"""Band offsets learned from labelled stars: injected offsets and scatter come back; applied as documented."""

import jax
import numpy as np
import pytest

from sedppl.io.cli import main
from sedppl.model.forward import PARAMS
from sedppl.model.generative import sed_model
from sedppl.model.offsets import BandOffsets, calibrate
from sedppl.model.priors import Prior
from sedppl.model.simulate import NoiseModel, simulate_catalog

BANDS = ("gaia_g", "gaia_bp", "gaia_rp", "2mass_j", "2mass_h", "2mass_ks", "wise_w1", "wise_w2")
INJECTED = np.array([0.0, 0.12, 0.03, -0.02, 0.0, 0.01, -0.06, 0.0])
EXTRA = np.array([0.0, 0.08, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])


@pytest.fixture(scope="module")
def labelled():
    fixed_floor = Prior.default(sys_floor=0.02)
    model = sed_model(bands=BANDS, prior=fixed_floor)  # the libraries' floor (0.1 mag in BP when cool) blurs 0.006
    table = simulate_catalog(jax.random.key(7), 300, model, NoiseModel(0.01, 0.02, p_missing=0.1))
    rng = np.random.default_rng(0)
    for j, band in enumerate(BANDS):
        table[band] = table[band] + INJECTED[j] + EXTRA[j] * rng.standard_normal(len(table))
    return model, table


def test_injected_offsets_and_scatter_come_back(labelled):
    model, table = labelled
    params = np.stack([np.asarray(table[f"true_{p}"], float) for p in PARAMS], axis=-1)
    mag = np.stack([np.asarray(table[b], float) for b in BANDS], axis=-1)
    err = np.stack([np.asarray(table[f"{b}_err"], float) for b in BANDS], axis=-1)
    found = calibrate(model, params, mag, err, np.isfinite(mag))
    offsets = np.array([found.offsets[b] for b in BANDS])
    # a common constant is absorbed by each star's angular diameter: compare about the median
    np.testing.assert_allclose(offsets - np.median(offsets), INJECTED - np.median(INJECTED), atol=0.006)
    scatter = np.array([found.scatter[b] for b in BANDS])
    assert scatter[1] == pytest.approx(0.08, abs=0.015) and np.all(scatter[[0, 2, 3, 4, 5, 6, 7]] < 0.015)
    assert all(240 <= found.stars[b] <= 300 for b in BANDS)  # ~10% of each band absent


def test_offsets_are_applied_and_round_trip(tmp_path):
    offsets = BandOffsets({"gaia_bp": 0.4, "gaia_g": -0.1}, {"gaia_bp": 0.1, "gaia_g": 0.0}, {"gaia_bp": 9, "gaia_g": 9})
    mag, err = offsets.apply(("gaia_g", "gaia_bp", "2mass_j"), np.array([[10.0, 11.0, 9.0]]), np.array([[0.01] * 3]))
    np.testing.assert_allclose(mag, [[10.1, 10.6, 9.0]])
    np.testing.assert_allclose(err, [[0.01, np.hypot(0.01, 0.1), 0.01]])
    path = tmp_path / "o.toml"
    path.write_text(offsets.to_toml())
    again = BandOffsets.load(path)
    assert again.offsets == offsets.offsets and again.scatter == offsets.scatter
    path.write_text("[gaia_g]\noffset = 0.1\nscatter = -1.0\n")
    with pytest.raises(ValueError, match="scatter >= 0"):
        BandOffsets.load(path)


def test_calibrate_offsets_command(labelled, tmp_path, capsys):
    _, table = labelled
    path = tmp_path / "labelled.parquet"
    table.write(path)
    out = tmp_path / "offsets.toml"
    labels = ["teff=true_teff", "logg=true_logg", "mh=true_mh", "av=true_av", "rv=true_rv"]
    assert main(["calibrate-offsets", str(path), "--labels", *labels, "--out", str(out)]) == 0
    found = BandOffsets.load(out)
    assert found.offsets["gaia_bp"] - found.offsets["2mass_h"] == pytest.approx(0.12, abs=0.01)
    assert main(["calibrate-offsets", str(path), "--labels", "teff=true_teff", "--out", str(out)]) == 2
    assert "no column for ['logg', 'mh']" in capsys.readouterr().err
