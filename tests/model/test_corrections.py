"""The libraries' empirical corrections: where they apply, what they add, and that the model uses them."""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sedppl.inference.npe.card import load_npe, read_card
from sedppl.model.corrections import load_correction, smoothstep
from sedppl.model.generative import log_joint, sed_model
from sedppl.model.offsets import BandOffsets
from sedppl.model.passbands import SURVEY_BANDS

ROOT = Path(__file__).parents[2]
M_DWARF = jnp.array([3400.0, 4.9, 0.0, 0.05, 3.1])
CALIBRATION = ROOT / "validation" / "mdwarfs" / "offsets_half0_libraries.toml"  # what `calibrate-offsets` wrote


def test_phoenix_corrects_cool_dwarfs_by_the_offsets_learned_on_real_m_dwarfs():
    """In full on the calibrated M dwarfs, the offsets of the half-0 calibration to the last digit (a 5 mmag
    change fails); nothing on FGK stars or giants; bands the calibration lacked get nothing."""
    c = load_correction("phoenix", SURVEY_BANDS)
    learned = BandOffsets.load(CALIBRATION).offsets
    expected = np.array([learned.get(b, 0.0) for b in SURVEY_BANDS])
    np.testing.assert_allclose(c(M_DWARF), expected, atol=1e-6)
    assert set(np.asarray(SURVEY_BANDS)[expected != 0]) == {"gaia_g", "gaia_bp", "gaia_rp", "2mass_j", "2mass_h",
                                                             "2mass_ks", "wise_w1", "wise_w2"}
    assert np.all(c(M_DWARF.at[0].set(5000.0)) == 0)  # a K dwarf
    assert np.all(c(M_DWARF.at[1].set(3.5)) == 0)  # an M giant
    halfway = c(M_DWARF.at[0].set(4300.0))
    np.testing.assert_allclose(halfway, 0.5 * expected, atol=1e-6)  # the smoothstep's midpoint
    assert load_correction("kurucz", SURVEY_BANDS) is None  # no correction of its own
    assert load_correction("phoenix", SURVEY_BANDS, "none") is None
    with pytest.raises(ValueError, match="unknown correction 'mdwarfs' for library 'phoenix'"):
        load_correction("phoenix", SURVEY_BANDS, "mdwarfs")


def test_the_weight_is_smooth_where_it_switches_on():
    """C1: no step in the posterior's gradient at the edges of the taper (NUTS)."""
    slope = jax.vmap(jax.grad(lambda t: smoothstep(t, 4600.0, 4000.0)))
    for edge in (4000.0, 4600.0):
        inside_outside = slope(jnp.array([edge - 1e-2, edge + 1e-2]))
        np.testing.assert_allclose(inside_outside, 0.0, atol=1e-6)
    assert float(smoothstep(4300.0, 4600.0, 4000.0)) == pytest.approx(0.5)


def test_every_likelihood_sees_the_corrected_surface():
    """The corrected model on magnitudes m is the bare model on m - correction: one log-joint, shifted."""
    corrected, bare = (sed_model(bands=SURVEY_BANDS, marginalize_scale=True, correction=c) for c in ("default", "none"))
    offsets = corrected.correction(M_DWARF)
    np.testing.assert_allclose(corrected.surface(M_DWARF) - bare.surface(M_DWARF), offsets, atol=1e-5)
    mag = bare.surface(M_DWARF) + 40.0 + 0.03 * jax.random.normal(jax.random.key(0), (len(SURVEY_BANDS),))
    err, mask = jnp.full(len(SURVEY_BANDS), 0.03), jnp.ones(len(SURVEY_BANDS), bool)
    values = dict(zip(("teff", "logg", "mh", "av", "rv"), M_DWARF))
    shifted = log_joint(corrected, values, err, mask, mag + offsets)
    assert np.isfinite(shifted)
    np.testing.assert_allclose(shifted, log_joint(bare, values, err, mask, mag), rtol=1e-6)
    assert abs(float(log_joint(corrected, values, err, mask, mag) - log_joint(bare, values, err, mask, mag))) > 3  # 6.8 nats here


def test_models_record_the_correction_they_were_trained_with():
    """A card without the field was trained on the bare library: it says so, still verifies, and builds
    that; the default NPE was trained with Phoenix's correction and builds it."""
    old = read_card(ROOT / "models" / "survey")
    assert old.correction == "none" and old.model().correction is None
    load_npe(ROOT / "models" / "survey")  # its checksum is unchanged by the new field
    default = read_card(ROOT / "models" / "default")
    assert default.correction == "phoenix-m-dwarfs" and default.model().correction.name == "phoenix-m-dwarfs"
