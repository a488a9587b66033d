import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sedppl.model.atmospheres import node_table
from sedppl.model.forward import (MAS_IN_RAD, block_sizes, dilution_mag, forward_model, log10_theta_from_dilution,
                                  many_magnitudes, vmap_in_blocks)
from sedppl.model.passbands import SURVEY_BANDS, synthetic_magnitude

R_SUN_CM, PC_CM = 6.957e10, 3.0856775814913673e18


def test_exact_at_grid_nodes_against_direct_synthetic_photometry(phoenix):
    """At a node, the JAX forward model equals speclite photometry of the stored spectrum."""
    fm = forward_model("phoenix", SURVEY_BANDS)
    wave = np.asarray(phoenix.wavelength_aa, float)
    nodes = node_table(phoenix)
    rng = np.random.default_rng(1)
    checked = 0
    for teff, logg, mh in nodes[rng.permutation(len(nodes))]:
        params = jnp.array([teff, logg, mh, 0.0, 3.1])
        if not bool(fm.in_grid(params)):
            continue
        log_lam_flam = np.asarray(phoenix.interpolate(teff, logg, mh), float)
        flam = 10**log_lam_flam / wave
        ref = np.array([synthetic_magnitude(b, wave, flam) for b in fm.bands])
        ours = np.asarray(fm.surface_magnitudes(params))
        finite = ref < 0  # bands where the star emits measurably (surface mags are ~ -40)
        np.testing.assert_allclose(ours[finite], ref[finite], atol=2e-3)
        checked += 1
        if checked == 8:
            break
    assert checked == 8


# Willmer (2018, ApJS 236, 47), Table 3: absolute magnitudes of the Sun (Vega system).
WILLMER_SUN = {"bessell_v": 4.81, "gaia_g": 4.67, "gaia_bp": 5.03, "gaia_rp": 4.18,
               "2mass_j": 3.67, "2mass_h": 3.32, "2mass_ks": 3.27, "wise_w1": 3.26, "wise_w2": 3.28}


def test_solar_model_at_10pc_reproduces_willmer():
    fm = forward_model("phoenix", tuple(WILLMER_SUN))
    theta_mas = 2 * R_SUN_CM / (10 * PC_CM) / MAS_IN_RAD
    mags = np.asarray(fm.magnitudes(jnp.array([5772.0, 4.44, 0.0, 0.0, 3.1]), np.log10(theta_mas)))
    np.testing.assert_allclose(mags, list(WILLMER_SUN.values()), atol=0.05)


def test_extinction_is_applied_to_the_spectrum_not_per_band():
    """A_G/A_V rises with Teff (the bandpass-weighted curve changes with the SED)."""
    fm = forward_model("phoenix", ("gaia_g",))
    a_g = []
    for teff in (3500.0, 10000.0):
        clean = jnp.array([teff, 4.5, 0.0, 0.0, 3.1])
        a_g.append(float(fm.surface_magnitudes(clean.at[3].set(0.01))[0] - fm.surface_magnitudes(clean)[0]) / 0.01)
    assert a_g[1] - a_g[0] > 0.1


@pytest.mark.parametrize("rv, path", [(2.5, "fast"), (3.1, "fast"), (4.5, "fast"), (3.1, "spectral"), (3.1, "multilinear")])
def test_band_extinction_equals_photometry_of_the_reddened_spectrum(phoenix, rv, path):
    """A_band of the JAX model at a node equals speclite photometry of the stored spectrum reddened by the
    ``extinction`` package's F99 (an independent implementation), to 0.3% of A_band in every band where
    the star emits measurably: a 1% change of the curve or of A_V fails. Each forward path reddens on its
    own (tables, the spectral block, the interpolated spectrum), so each is checked."""
    import extinction

    fm = forward_model("phoenix", SURVEY_BANDS, path=path)
    wave = np.asarray(phoenix.wavelength_aa, float)
    curve = extinction.fitzpatrick99(np.minimum(wave, 60000.0), 1.0, rv)  # its range ends at 6 um
    for teff, logg, mh, av in [(3500.0, 5.0, 0.0, 0.5), (5800.0, 4.5, 0.0, 1.0), (9600.0, 4.0, -0.5, 3.0)]:
        clean = jnp.array([teff, logg, mh, 0.0, rv])
        flam = 10 ** np.asarray(phoenix.interpolate(teff, logg, mh), float) / wave
        before = np.array([synthetic_magnitude(b, wave, flam) for b in fm.bands])
        after = np.array([synthetic_magnitude(b, wave, flam * 10 ** (-0.4 * av * curve)) for b in fm.bands])
        ours = np.asarray(fm.surface_magnitudes(clean.at[3].set(av)) - fm.surface_magnitudes(clean))
        measurable = before < -20  # surface magnitudes; FUV of a 3500 K star is ~ -10
        np.testing.assert_allclose(ours[measurable], (after - before)[measurable], rtol=3e-3)


def test_band_extinction_ratios_match_schlafly_finkbeiner_2011():
    """A_b / A_r of a 7000 K dwarf with F99 at R_V = 3.1 against Schlafly & Finkbeiner (2011, Table 6, SDSS and
    PS1): published, independent numbers, within 2% (their normalisation and spectrum differ slightly)."""
    table6 = {"sdss_u": 4.239, "sdss_g": 3.303, "sdss_r": 2.285, "sdss_i": 1.698, "sdss_z": 1.263,
              "ps1_g": 3.172, "ps1_r": 2.271, "ps1_i": 1.682, "ps1_z": 1.322, "ps1_y": 1.087}
    fm = forward_model("phoenix", tuple(table6))
    clean = jnp.array([7000.0, 4.5, 0.0, 0.0, 3.1])
    a = np.asarray(fm.surface_magnitudes(clean.at[3].set(1.0)) - fm.surface_magnitudes(clean))
    ref = np.array(list(table6.values()))
    np.testing.assert_allclose(a / a[2], ref / ref[2], rtol=0.02)


def test_finite_everywhere_including_off_grid_and_extreme_dust():
    fm = forward_model("phoenix", SURVEY_BANDS)
    rng = np.random.default_rng(2)
    params = np.column_stack([
        rng.uniform(1000, 20000, 500), rng.uniform(-2, 8, 500), rng.uniform(-6, 3, 500),
        rng.uniform(0, 20, 500), rng.uniform(1.5, 7, 500),
    ])
    mags = jax.vmap(fm.magnitudes)(jnp.asarray(params, jnp.float32), jnp.zeros(500))
    assert np.all(np.isfinite(np.asarray(mags)))
    grads = jax.vmap(jax.grad(lambda p: jnp.sum(fm.magnitudes(p, 0.0))))(jnp.asarray(params, jnp.float32))
    assert np.all(np.isfinite(np.asarray(grads)))


def test_vmap_equals_loop_and_scale_is_a_pure_offset():
    fm = forward_model("phoenix", ("gaia_g", "2mass_ks"))
    params = jnp.array([[4000.0, 4.6, -0.3, 0.5, 3.0], [7000.0, 4.0, 0.2, 2.0, 3.6]])
    batched = jax.jit(jax.vmap(fm.magnitudes))(params, jnp.array([-1.0, 0.5]))
    looped = jnp.stack([fm.magnitudes(params[0], -1.0), fm.magnitudes(params[1], 0.5)])
    np.testing.assert_allclose(batched, looped, atol=1e-4)
    shift = fm.magnitudes(params[0], 0.0) - fm.magnitudes(params[0], 1.0)
    np.testing.assert_allclose(shift, 5.0, atol=1e-4)
    assert float(dilution_mag(0.0) - dilution_mag(1.0)) == pytest.approx(5.0)


def test_dilution_is_the_solid_angle_of_the_disc_with_astropy_units():
    """Observed minus surface magnitude is -2.5 log10((theta/2)^2), theta converted from mas to radians by
    astropy (independent of MAS_IN_RAD); a 0.1% error in the conversion is 2 mmag."""
    from astropy import units as u

    for theta_mas in (0.01, 1.0, 37.0):
        radius_rad = (theta_mas / 2 * u.mas).to_value(u.rad)
        assert float(dilution_mag(np.log10(theta_mas))) == pytest.approx(-5.0 * np.log10(radius_rad), abs=2e-5)
        assert float(log10_theta_from_dilution(-5.0 * np.log10(radius_rad))) == pytest.approx(np.log10(theta_mas),
                                                                                             abs=1e-6)


def test_spectral_path_at_the_grid_edges_agrees_with_the_tables():
    """The spectral path's 4-node stencils are padded on every side: in the last cell of each axis (and at
    its last node) it agrees with the fast path's tables, which are built without padding."""
    bands = ("gaia_g", "sdss_u", "2mass_ks")
    spectral, fast = forward_model("phoenix", bands, path="spectral"), forward_model("phoenix", bands)
    for point in ([5800.0, 5.9, 0.0], [5800.0, 6.0, 0.0], [5800.0, 4.5, 0.9], [11800.0, 4.5, 0.0]):
        params = jnp.asarray(point + [0.5, 3.1], jnp.float32)
        assert bool(fast.in_grid(params)), point
        np.testing.assert_allclose(spectral.surface_magnitudes(params), fast.surface_magnitudes(params), atol=0.01,
                                   err_msg=str(point))


def test_fast_path_is_defined_on_the_range_its_tables_sample():
    """The fast path's (A_V, R_V) domain is the first to the last sample of its tables, ends included; one
    step beyond is outside (in_grid False), where the interpolant is held at the edge."""
    from sedppl.model.band_tables import load_tables

    tables, fm = load_tables("phoenix"), forward_model("phoenix", ("gaia_g",))
    av, rv = np.asarray(tables["av"], float), np.asarray(tables["rv"], float)
    domain = fm.extinction_domain()
    assert domain["av"] == pytest.approx((av[0], av[-1]), abs=1e-6)
    assert domain["rv"] == pytest.approx((rv[0], rv[-1]), abs=1e-6)
    star = np.array([5800.0, 4.4, 0.0, av[-1], rv[-1]])
    assert bool(fm.in_grid(jnp.asarray(star, jnp.float32)))
    for index, value in ((3, av[-1] + 0.01), (4, rv[-1] + 0.01), (4, rv[0] - 0.01)):
        assert not bool(fm.in_grid(jnp.asarray(np.where(np.arange(5) == index, value, star), jnp.float32)))


def test_bosz_paths_interpolate_as_documented():
    """BOSZ's band fluxes: multilinear in (log Teff, logg, [M/H]) on the multilinear path (a cell's centre is
    the mean of its 8 corners' magnitudes, computed here with numpy), C1 on the fast path (the Teff derivative
    has no jump at a node; multilinear's jumps by the change of slope between cells)."""
    from sedppl.model.atmospheres import load_library

    bands = ("gaia_g", "2mass_j", "wise_w1")
    grid = load_library("bosz")
    axes = [np.asarray(a, float) for a in grid.axes]
    i, j, k = (int(np.searchsorted(a, x)) for a, x in zip(axes, (np.log10(5800.0), 4.4, -0.1)))
    assert np.all(np.asarray(grid.has_node)[i - 1:i + 2, j:j + 2, k:k + 2])
    linear = forward_model("bosz", bands, path="multilinear")
    corners = np.asarray(grid.values, float)[i:i + 2, j:j + 2, k:k + 2][..., [grid.bands.index(b) for b in bands]]
    expected = (-2.5 * corners).mean(axis=(0, 1, 2)) + np.asarray(linear.band_norm_mag)
    centre = [10 ** axes[0][i:i + 2].mean(), axes[1][j:j + 2].mean(), axes[2][k:k + 2].mean(), 0.0, 3.1]
    np.testing.assert_allclose(linear.surface_magnitudes(jnp.asarray(centre, jnp.float32)), expected, atol=2e-4)
    assert bool(linear.in_grid(jnp.asarray(centre, jnp.float32)))
    node = jnp.asarray([10 ** axes[0][i], axes[1][j], axes[2][k], 0.0, 3.1], jnp.float32)  # exact at a node
    np.testing.assert_allclose(forward_model("bosz", bands).surface_magnitudes(node),
                               -2.5 * corners[0, 0, 0] + np.asarray(linear.band_norm_mag), atol=2e-4)
    assert not bool(linear.in_grid(jnp.asarray([centre[0], 5.6, centre[2], 0.0, 3.1], jnp.float32)))  # BOSZ: logg <= 5.5

    def slopes(fm, side):  # d m / d log10(Teff) just off the node at axes[0][i]
        at = lambda log_teff: fm.surface_magnitudes(jnp.array([10 ** log_teff, centre[1], centre[2], 0.0, 3.1]))
        return np.asarray(jax.jacfwd(at)(jnp.float32(axes[0][i] + side * 1e-4)))

    jump = {path: np.abs(slopes(fm, 1) - slopes(fm, -1)) / np.abs(slopes(fm, 1)) for path, fm in
            (("fast", forward_model("bosz", bands)), ("spectral", forward_model("bosz", bands, path="spectral")),
             ("multilinear", linear))}
    assert np.all(jump["fast"] < 0.003) and np.all(jump["spectral"] < 0.003), jump  # 0.0005 (2026-12-01)
    assert jump["multilinear"].max() > 0.02, jump  # 0.044


def test_bosz_fuv_next_to_nodes_without_flux_stays_between_its_nodes():
    """BOSZ has no FUV flux for 732 cool nodes (filled 30 dex down). Between two nodes that have it, next to
    one that does not, the interpolant stays between the two nodes' magnitudes: slopes taken across the fill
    would overshoot there by tens of magnitudes; and the nodes that have flux keep their slopes."""
    from sedppl.model.atmospheres import load_library

    grid, fm = load_library("bosz"), forward_model("bosz", ("galex_fuv",))
    values = np.asarray(grid.values, float)[..., grid.bands.index("galex_fuv")]
    has = np.asarray(grid.has_node)
    real = has & (values > values.min() + 1e-3)
    log_teff, logg, mh = (np.asarray(a, float) for a in grid.axes)
    points, node_mags = [], []
    for i, j, k in zip(*np.nonzero(has[:-2] & ~real[:-2] & real[1:-1] & real[2:])):  # fill at i, flux at i+1, i+2
        points.append([10 ** ((log_teff[i + 1] + log_teff[i + 2]) / 2), logg[j], mh[k], 0.0, 3.1])
        node_mags.append(-2.5 * values[[i + 1, i + 2], j, k] + float(fm.band_norm_mag[0]))
    assert len(points) > 100
    mags = np.asarray(jax.vmap(fm.surface_magnitudes)(jnp.asarray(points, jnp.float32)))[:, 0]
    node_mags = np.asarray(node_mags)
    assert np.all(mags > node_mags.min(axis=1) - 0.01) and np.all(mags < node_mags.max(axis=1) + 0.01)
    # and where the flux is real all around, the slopes come from the neighbours: a quarter of the way along
    # a cell the cubic stays near the straight line (zero slopes would put it 3/32 of the step off)
    linear = forward_model("bosz", ("galex_fuv",), path="multilinear")
    points, steps = [], []
    for i, j, k in zip(*np.nonzero(real[:-3] & real[1:-2] & real[2:-1] & real[3:])):
        points.append([10 ** (0.75 * log_teff[i + 1] + 0.25 * log_teff[i + 2]), logg[j], mh[k], 0.0, 3.1])
        steps.append(2.5 * abs(values[i + 2, j, k] - values[i + 1, j, k]))
    points = jnp.asarray(points, jnp.float32)
    off = np.abs(np.asarray(jax.vmap(fm.surface_magnitudes)(points) - jax.vmap(linear.surface_magnitudes)(points)))[:, 0]
    assert np.median(off / np.maximum(steps, 1e-3)) < 0.03  # 0.008 (2026-12-01)


@pytest.mark.parametrize("library", ["kurucz", "bosz"])
def test_other_libraries_agree_with_phoenix_for_the_sun(library):
    bands = ("gaia_bp", "gaia_rp", "2mass_j", "2mass_ks", "wise_w1")
    sun = jnp.array([5772.0, 4.44, 0.0, 0.3, 3.1])
    ref = np.asarray(forward_model("phoenix", bands).surface_magnitudes(sun))
    other = np.asarray(forward_model(library, bands).surface_magnitudes(sun))
    np.testing.assert_allclose(np.diff(other), np.diff(ref), atol=0.06)


def test_model_vega_has_vega_system_colours_near_zero():
    """A Phoenix model at Vega's parameters (9600 K, logg 4.0, [M/H] -0.5) has Vega colours ~ 0."""
    from sedppl.model.passbands import REGISTRY

    bands = ("bessell_v", "gaia_bp", "gaia_g", "gaia_rp", "2mass_j", "2mass_h", "2mass_ks", "wise_w1", "wise_w2")
    mags = np.asarray(forward_model("phoenix", bands).surface_magnitudes(jnp.array([9600.0, 4.0, -0.5, 0.0, 3.1])))
    colours = np.diff(mags - np.array([REGISTRY[b].vega_mag for b in bands]))
    assert np.max(np.abs(colours)) < 0.05


def test_many_magnitudes_in_blocks_are_the_vmapped_magnitudes():
    fm = forward_model("phoenix")
    rng = np.random.default_rng(5)
    params = jnp.asarray(np.column_stack([rng.uniform(3500, 9000, 11), rng.uniform(4.0, 4.8, 11),
                                          rng.uniform(-1.0, 0.3, 11), rng.uniform(0, 5, 11), rng.uniform(2.5, 5, 11)]),
                         jnp.float32)
    log10_theta = jnp.asarray(rng.uniform(-2, 0, 11), jnp.float32)
    reference = np.asarray(jax.jit(jax.vmap(fm.magnitudes))(params, log10_theta))
    for block, one_vmap_max in ((4, 0), (11, 0), (4, 11)):  # 3 blocks of 4, one row repeated; one block; one vmap
        np.testing.assert_allclose(many_magnitudes(fm, params, log10_theta, block, one_vmap_max), reference, atol=2e-5)
    shift = float(dilution_mag(0.0)) - np.asarray(dilution_mag(log10_theta))[:, None]
    np.testing.assert_allclose(many_magnitudes(fm, params, 0.0), reference + shift, atol=1e-4)  # one scale for all
    whole = np.asarray(params).round()
    np.testing.assert_allclose(many_magnitudes(fm, whole.astype(int), -1.5), many_magnitudes(fm, whole, -1.5), atol=1e-5)
    with pytest.raises(ValueError, match=r"params must have shape \(n, 5\).*\(11, 4\)"):
        many_magnitudes(fm, params[:, :4], log10_theta)
    with pytest.raises(ValueError, match=r"log10_theta_mas must be one number or one per star \(11,\), got .*\(10,\)"):
        many_magnitudes(fm, params, log10_theta[:10])
    with pytest.raises(ValueError, match=r"2 non-finite input value\(s\): row 3 teff, row 7 log10_theta_mas"):
        many_magnitudes(fm, params.at[3, 0].set(jnp.nan), log10_theta.at[7].set(jnp.inf))
    # finite but outside the model: a log of teff <= 0, A_V or R_V beyond the tables (held at the edge there)
    with pytest.raises(ValueError, match=r"3 value\(s\) outside .*: row 2 teff=-5000, row 4 av=25, row 6 rv=1\b"):
        many_magnitudes(fm, params.at[2, 0].set(-5000.0).at[4, 3].set(25.0).at[6, 4].set(1.0), log10_theta)
    assert fm.extinction_domain() == {"av": (0.0, 20.0), "rv": (2.0, 6.0)}
    spectral = forward_model("phoenix", ("gaia_g",), path="spectral")  # R_V = 0 divides by zero in Fitzpatrick99
    with pytest.raises(ValueError, match=r"row 0 rv=0\b"):
        many_magnitudes(spectral, params[:1].at[0, 4].set(0.0), 0.0)
    assert np.all(np.isfinite(fm.magnitudes(params[0].at[0].set(-5000.0), 0.0)))  # unchecked, still finite
    for wrong in (params[0, :3], jnp.concatenate([params[0], params[0, :2]]), params[:2]):  # once clamped silently
        with pytest.raises(ValueError, match=r"params of one star must have shape \(5,\)"):
            fm.magnitudes(wrong, 0.0)


def test_vmap_in_blocks_keeps_every_row_in_order_and_blocks_only_large_batches():
    xs = {"a": jnp.arange(10.0), "b": jnp.arange(20.0).reshape(10, 2)}
    per_row = lambda x: x["a"] * 100 + x["b"].sum()  # noqa: E731
    for block in (3, 4, 5, 9, 10, 64):
        np.testing.assert_array_equal(vmap_in_blocks(per_row, xs, block, one_vmap_max=0), jax.vmap(per_row)(xs))
    scans = lambda n: "scan" in str(jax.make_jaxpr(lambda x: vmap_in_blocks(jnp.sin, x))(jnp.zeros(n)))  # noqa: E731
    one_vmap_max = block_sizes()[1]  # the backend's default
    assert not scans(one_vmap_max) and scans(one_vmap_max + 1)
