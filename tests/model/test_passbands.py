import numpy as np
import pytest

from sedppl.model import passbands as pb

REQUIRED = (
    "gaia_g gaia_bp gaia_rp galex_fuv galex_nuv sdss_u sdss_g sdss_r sdss_i sdss_z ps1_g ps1_r ps1_i ps1_z ps1_y "
    "skymapper_u skymapper_v skymapper_g skymapper_r skymapper_i skymapper_z 2mass_j 2mass_h 2mass_ks wise_w1 wise_w2"
).split()


def test_registry_has_the_required_bands_in_native_systems():
    assert set(REQUIRED) <= set(pb.SURVEY_BANDS)
    for name in REQUIRED:
        expected = "Vega" if name.split("_")[0] in ("gaia", "2mass", "wise") else "AB"
        assert pb.REGISTRY[name].system == expected, name


def test_unknown_band_is_named():
    with pytest.raises(KeyError, match="gaia_x"):
        pb.check_bands(["gaia_g", "gaia_x"])
    with pytest.raises(ValueError, match="Duplicate band names"):
        pb.check_bands(["gaia_g", "2mass_j", "gaia_g"])
    assert pb.check_bands(["2mass_j", "gaia_g"]) == ("2mass_j", "gaia_g")
    with pytest.raises(ValueError, match="at least one band"):
        pb.check_bands(())
    with pytest.raises(TypeError, match="not the string 'gaia_g'"):  # not six one-letter bands
        pb.check_bands("gaia_g")
    assert "bessell_v" in pb.REGISTRY and "bessell_v" not in pb.SURVEY_BANDS  # a calibration band, not a survey's


def test_registry_entries_are_immutable_values():
    """Every model shares the registry: its entries (and built operators) cannot be changed in place.
    AB bands have no Vega magnitude (NaN); SkyMapper curves are named by their band."""
    import dataclasses

    band = pb.REGISTRY["gaia_g"]
    for obj, field in ((band, "curve"), (band.zero_point, "vega_mag"), (pb.Passbands.build(["gaia_g"], np.linspace(3000, 11000, 50)), "names")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(obj, field, None)
    assert np.isnan(pb.REGISTRY["ps1_g"].vega_mag) and pb.REGISTRY["gaia_g"].vega_mag == 0.023
    assert pb.filter_response("skymapper_g").name == "sedppl_skymapper-g"


def test_operator_equals_speclite_ab_magnitudes():
    """The matrix form reproduces speclite's own AB magnitudes of a tabulated spectrum."""
    import speclite.filters as sf

    wave = np.geomspace(1000.0, 60000.0, 700)
    flam = 1e-13 * (wave / 5000.0) ** -2.2 * (1 + 0.3 * np.sin(wave / 300.0))
    bands = [b for b in REQUIRED if pb.REGISTRY[b].system == "AB" and pb.REGISTRY[b].package == "speclite"]
    op = pb.Passbands.build(bands, wave)
    ours = -2.5 * np.log10(op.weights @ (wave * flam))
    ref = [float(sf.load_filter(pb.REGISTRY[b].curve).get_ab_magnitude(flam, wave)) + SDSS_FROM_AB.get(b, 0.0)
           for b in bands]
    np.testing.assert_allclose(ours, ref, atol=1e-9)


# Published zero points, typed here from the sources (not from the code) so that a change in either shows.
#: SDSS flux-calibration pages (DR7-DR9): u_AB = u_SDSS - 0.04, z_AB = z_SDSS + 0.02.
SDSS_FROM_AB = {"sdss_u": 0.04, "sdss_z": -0.02}
#: Gaia EDR3/DR3 zero points (Riello et al. 2021; CDS J/A+A/649/A3 zeropt.dat): ZP_AB - ZP_VEGAMAG.
GAIA_AB_MINUS_VEGA = {"gaia_g": 25.8010446445 - 25.6873668671, "gaia_bp": 25.3539555559 - 25.3385422158,
                      "gaia_rp": 25.1039837393 - 24.7478955012}
#: Maiz Apellaniz & Pantaleoni Gonzalez (2018, A&A 616, L7): CALSPEC Vega's 2MASS magnitudes.
TWOMASS_VEGA = {"2mass_j": -0.025, "2mass_h": 0.004, "2mass_ks": -0.015}
#: WISE All-Sky Explanatory Supplement IV.4.h (Jarrett et al. 2011): m_AB - m_Vega.
WISE_AB_MINUS_VEGA = {"wise_w1": 2.699, "wise_w2": 3.339}
ZP_ATOL = 1.5e-3  # mag: a 5 mmag change of any zero point fails


def _ab_minus_catalogue(band: str) -> float:
    """m_AB - m_band of any source (a zero point is one number per band)."""
    wave = np.geomspace(900.0, 60000.0, 3000)
    flam = 1e-12 * (wave / 5000.0) ** -3.0
    return float(pb.filter_response(band).get_ab_magnitude(flam, wave)) - float(pb.synthetic_magnitude(band, wave, flam))


@pytest.mark.parametrize("band", REQUIRED)
def test_zero_point_reproduces_the_catalogue_definition(band):
    """AB bands: a flat 3631 Jy source has magnitude 0 (SDSS u, z: the published offsets). Gaia: the
    published ZP_AB - ZP_Vega follows from our Vega and passbands to < 1 mmag (not an input).
    2MASS: CALSPEC Vega has the published magnitudes. WISE: the published AB - Vega offsets."""
    expected = {**{b: -SDSS_FROM_AB.get(b, 0.0) for b in REQUIRED if pb.REGISTRY[b].system == "AB"},
                **GAIA_AB_MINUS_VEGA, **WISE_AB_MINUS_VEGA}
    if band in TWOMASS_VEGA:
        wave, flux = pb.vega_spectrum("stis_011")
        assert abs(float(pb.synthetic_magnitude(band, wave, flux)) - TWOMASS_VEGA[band]) < ZP_ATOL
    else:
        assert abs(_ab_minus_catalogue(band) - expected[band]) < ZP_ATOL, pb.REGISTRY[band].zero_point.source


#: Each Vega system's definition: a CALSPEC Vega spectrum and its magnitude (Gaia: Riello et al. 2021;
#: 2MASS: Maiz Apellaniz & Pantaleoni Gonzalez 2018; Bessell V: Bessell & Murphy 2012).
VEGA_DEFINITIONS = {"gaia_g": ("mod_002", 0.023), "gaia_bp": ("mod_002", 0.023), "gaia_rp": ("mod_002", 0.023),
                    "2mass_j": ("stis_011", -0.025), "2mass_h": ("stis_011", 0.004), "2mass_ks": ("stis_011", -0.015),
                    "bessell_v": ("stis_011", 0.03)}


def test_the_defining_vega_spectrum_has_the_defining_magnitude():
    """A definition holds exactly, not to a tolerance: any change of how it is applied shows (1e-6 mag)."""
    for band, (flavor, mag) in VEGA_DEFINITIONS.items():
        wave, flux = pb.vega_spectrum(flavor)
        assert abs(float(pb.synthetic_magnitude(band, wave, flux)) - mag) < 1e-6, band


def test_synthetic_magnitudes_of_many_spectra_at_once():
    """Spectra stacked along the first axis give each spectrum's own magnitude (wavelength is the last axis)."""
    wave = np.geomspace(3000.0, 30000.0, 500)
    flam = 1e-13 * (wave / 5000.0) ** np.array([[-1.0], [-2.5], [-4.0]])
    both = pb.synthetic_magnitude("2mass_j", wave, flam)
    assert both.shape == (3,)
    np.testing.assert_allclose(both, [pb.synthetic_magnitude("2mass_j", wave, f) for f in flam], rtol=1e-12)


def test_the_recorded_zero_point_is_the_photometric_offset():
    """``ab_minus_catalogue`` (what model cards record) is m_AB - m_band of an actual source."""
    for band in REQUIRED:
        assert abs(pb.ab_minus_catalogue(band) - _ab_minus_catalogue(band)) < 1e-6, band


def test_vega_is_near_zero_in_every_vega_system():
    """Independent of each definition's details: CALSPEC Vega is within 0.03 mag of 0 in Gaia, 2MASS and WISE
    (the Gaia and WISE numbers above come from other Vega spectra; 2MASS from NICMOS standards)."""
    wave, flux = pb.vega_spectrum("stis_011")
    for band in [b for b in REQUIRED if pb.REGISTRY[b].system == "Vega"]:
        assert abs(float(pb.synthetic_magnitude(band, wave, flux))) < 0.03, band


def test_skymapper_agrees_with_pyphot():
    """SkyMapper curves come from pyphot; our AB magnitudes agree with pyphot's own integration."""
    from pyphot import get_library

    lib = get_library()
    wave = np.geomspace(2500.0, 12000.0, 4000)
    flam = 1e-13 * (wave / 5000.0) ** -1.5
    for band in [b for b in REQUIRED if b.startswith("skymapper")]:
        ours = pb.synthetic_magnitude(band, wave, flam)
        ref = lib[pb.REGISTRY[band].curve].get_flux(wave, flam).value
        ref_mag = -2.5 * np.log10(ref) - lib[pb.REGISTRY[band].curve].AB_zero_mag
        assert abs(ours - ref_mag) < 5e-3, band


def test_vega_colours_are_zero_on_the_model_grid(phoenix):
    """Vega's spectrum, sampled on the Phoenix wavelength grid, has Vega-system colours ~ 0."""
    grid_wave = np.asarray(phoenix.wavelength_aa, float)
    vega_bands = [b for b in pb.SURVEY_BANDS if pb.REGISTRY[b].zero_point.vega]
    op = pb.Passbands.build(vega_bands, grid_wave)
    mags, zero = [], []
    for row, band in zip(op.weights, vega_bands):
        wave, flux = pb.vega_spectrum(pb.REGISTRY[band].zero_point.vega)
        mags.append(-2.5 * np.log10(row @ (grid_wave * np.interp(grid_wave, wave, flux))))
        zero.append(pb.REGISTRY[band].vega_mag)
    assert np.max(np.abs(np.array(mags) - zero)) < 0.01


def test_describe_lists_every_band():
    rows = pb.describe()
    assert [r["name"] for r in rows] == list(pb.REGISTRY)
    assert all(r["lambda_eff_um"] > 0.1 for r in rows)
    # `sedppl bands` shows each system as its catalogue defines it (published values, see the registry)
    by_name = {r["name"]: r for r in rows}
    expected = {"gaia_g": ("Vega", 0.023), "2mass_j": ("Vega", -0.025), "2mass_ks": ("Vega", -0.015),
                "wise_w1": ("Vega", 0.0), "ps1_g": ("AB", None), "sdss_u": ("AB", None), "bessell_v": ("Vega", 0.03)}
    assert {b: (by_name[b]["system"], by_name[b]["vega_mag"]) for b in expected} == expected
    for band in ("gaia_g", "2mass_ks", "skymapper_u"):  # speclite's effective wavelength, to 0.1 nm
        assert by_name[band]["lambda_eff_um"] == round(pb.filter_response(band).effective_wavelength.to("um").value, 4)
