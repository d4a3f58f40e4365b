"""The telescope of the optics example: layers, aperture, Zernike basis, filters, PSF."""

import dLux.utils as dlu
import jax
import jax.numpy as jnp
import numpy as onp
import pytest

from zdx_examples import optics as ex

NPIX = 64


@pytest.fixture(scope="module")
def optics():
    return ex.build_optics(npix=NPIX)


def test_structure_matches_the_tutorial(optics):
    assert isinstance(optics, ex.FilteredOpticalSystem)
    assert list(optics.layers) == ["aperture", "wfe"]
    aperture, wfe = optics.layers["aperture"], optics.layers["wfe"]
    assert aperture.transmission.shape == (NPIX, NPIX)
    assert aperture.normalise is True
    assert wfe.basis.shape == (7, NPIX, NPIX)
    assert wfe.as_phase is False
    onp.testing.assert_array_equal(optics.coefficients, jnp.zeros(7))
    assert optics.wf_npixels == NPIX
    assert float(optics.diameter) == 1.2
    assert optics.psf_npixels == 32
    assert float(optics.psf_pixel_scale) == 0.075
    assert optics.oversample == 1


def test_default_filters_are_the_tutorials(optics):
    assert list(optics.filters) == ["blue", "green", "red"]
    for name, (lo, hi) in {"blue": (1.0, 1.2), "green": (1.2, 1.4), "red": (1.4, 1.6)}.items():
        onp.testing.assert_allclose(optics.filters[name], onp.linspace(lo, hi, 5), rtol=0)
    assert [name for name in optics.filters] == list(ex.default_filters())


def test_custom_filters_and_sizes():
    optics = ex.build_optics(
        {"J": [1.1, 1.2, 1.3], "H": onp.array([1.6])}, npix=16, psf_npixels=8, n_zernike=3
    )
    assert list(optics.filters) == ["J", "H"]
    assert optics.filters["H"].shape == (1,)
    assert optics.layers["wfe"].basis.shape == (3, 16, 16)
    assert optics.psf_npixels == 8


def test_wfe_basis_is_noll_zernikes_from_defocus(optics):
    with ex.allow_rank_promotion():
        expected = dlu.zernike_basis(list(range(4, 11)), dlu.pixel_coords(NPIX, 1.2), 1.2)
    onp.testing.assert_allclose(optics.layers["wfe"].basis, expected, atol=1e-12)


def test_noll_indices_agree_with_dlux():
    for j in range(1, 37):
        assert ex.noll_to_nm(j) == dlu.noll_indices(j)


def test_zernikes_are_orthonormal_over_the_disk():
    npix = 256
    basis = onp.asarray(ex.zernike_basis(range(1, 12), npix, 2.0))
    x = (onp.arange(npix) - (npix - 1) / 2) * (2.0 / npix)
    inside = onp.hypot(*onp.meshgrid(x, x)) <= 1
    gram = onp.einsum("iyx,jyx->ij", basis * inside, basis) / inside.sum()
    onp.testing.assert_allclose(gram, onp.eye(11), atol=2e-2)


def test_aperture_area_obscuration_and_spiders():
    npix, diameter, eps, width = 256, 1.2, 0.2, 0.03
    transmission = onp.asarray(ex.telescope_aperture(npix, diameter, eps, width))
    assert transmission.min() >= 0 and transmission.max() <= 1
    pixel_area = (diameter / npix) ** 2
    annulus = onp.pi / 4 * diameter**2 * (1 - eps**2)
    spiders = 3 * width * (1 - eps) * diameter / 2
    assert transmission.sum() * pixel_area == pytest.approx(annulus - spiders, rel=2e-3)
    assert transmission[npix // 2, npix // 2] == 0  # the obscuration
    # Three spiders 120 degrees apart: a mirror symmetry, but no half-turn symmetry.
    onp.testing.assert_allclose(transmission, transmission[::-1, :], atol=1e-12)
    assert onp.abs(transmission - onp.rot90(transmission, 2)).max() > 0.9


def test_four_spiders_give_a_pupil_symmetric_under_quarter_turns():
    transmission = onp.asarray(
        ex.telescope_aperture(128, 1.2, spider_angles=(45, 135, 225, 315), spider_width=0.01)
    )
    onp.testing.assert_allclose(transmission, onp.rot90(transmission), atol=1e-12)
    onp.testing.assert_allclose(transmission, transmission.T, atol=1e-12)


def test_aperture_edges_are_anti_aliased():
    npix, diameter, oversample = 64, 1.2, 8
    soft = onp.asarray(ex.telescope_aperture(npix, diameter, 0.2, 0.03))
    fine = onp.asarray(ex.telescope_aperture(npix * oversample, diameter, 0.2, 0.03))
    area_fraction = fine.reshape(npix, oversample, npix, oversample).mean((1, 3))
    partial = (soft > 0) & (soft < 1)
    assert partial.sum() > 0.5 * onp.pi * npix  # edge pixels are grey, not 0 or 1
    assert onp.abs(soft - area_fraction).max() < 0.1


def test_psf_holds_all_light_at_nyquist_over_one_period():
    """Parseval: lambda/D pixels, as many as pupil pixels, sample exactly one period."""
    wavelength = 1.0
    scale = float(dlu.rad2arcsec(wavelength * 1e-6 / 1.2))
    optics = ex.build_optics(
        {"mono": [wavelength]}, npix=NPIX, psf_npixels=NPIX, psf_pixel_scale=scale
    )
    with ex.allow_rank_promotion():
        psf = optics.propagate(jnp.array([wavelength * 1e-6]))
    assert float(psf.sum()) == pytest.approx(1.0, abs=1e-12)


def test_psf_of_default_field_loses_a_little_light_more_in_the_red(optics):
    with ex.allow_rank_promotion():
        sums = [float(optics.propagate(1e-6 * optics.filters[f]).sum()) for f in optics.filters]
    assert all(0.9 < s < 1 for s in sums)
    assert sums[0] > sums[1] > sums[2]


@pytest.mark.parametrize("position", [(0.0, 0.0), (0.3, -0.15)])
def test_psf_centroid_is_the_source_position(position):
    n, scale = 128, 0.05
    optics = ex.build_optics(npix=NPIX, psf_npixels=n, psf_pixel_scale=scale)
    with ex.allow_rank_promotion():
        psf = optics.propagate(1e-6 * optics.filters["blue"], dlu.arcsec2rad(jnp.array(position)))
    x = (onp.arange(n) - (n - 1) / 2) * scale
    centroid = [(psf.sum(0) * x).sum() / psf.sum(), (psf.sum(1) * x).sum() / psf.sum()]
    onp.testing.assert_allclose(centroid, position, atol=0.01)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"npix": 4}, "npix"),
        ({"n_zernike": 0}, "n_zernike"),
        ({"psf_npixels": 0}, "psf_npixels"),
        ({"diameter": -1.0}, "diameter"),
        ({"psf_pixel_scale": float("nan")}, "psf_pixel_scale"),
        ({"filters": {}}, "at least one filter"),
        ({"filters": {"a": [[1.0, 1.1]]}}, r"filters\['a'\].*1-D"),
        ({"filters": {"a": []}}, r"filters\['a'\].*non-empty"),
        ({"filters": {"a": [1.0, -1.0]}}, "positive"),
        ({"filters": {"a": [1e-6, 1.2e-6]}}, "microns"),
        ({"obscuration": 1.0}, "obscuration"),
        ({"spider_width": -0.1}, "spider_width"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    kwargs = {"npix": 16, **kwargs}
    with pytest.raises(ValueError, match=match):
        ex.build_optics(**kwargs)


def test_a_whole_number_of_pixels_is_asked_for():
    with pytest.raises(TypeError, match="build_optics: npix must be an integer >= 8, got float"):
        ex.build_optics(npix=64.0)


@pytest.mark.parametrize("filters", [[1.0, 1.1], {1: [1.0]}])
def test_filters_must_be_a_mapping_of_names(filters):
    with pytest.raises(TypeError, match="filters"):
        ex.build_optics(filters, npix=16)


def _defocus_sensitivity(optics):
    """d(PSF)/d(defocus coefficient) at zero aberration, through the model."""
    wavels = 1e-6 * optics.filters["blue"]

    def psf(defocus):
        coefficients = jnp.zeros(7).at[0].set(defocus)
        with ex.allow_rank_promotion():
            return optics.set("wfe.coefficients", coefficients).propagate(wavels)

    return jax.jvp(psf, (jnp.asarray(0.0),), (jnp.asarray(1e-9),))


def test_half_turn_symmetric_pupil_cannot_see_defocus_to_first_order():
    symmetric = ex.build_optics(npix=NPIX, spider_angles=(45, 135, 225, 315))
    psf, slope = _defocus_sensitivity(symmetric)
    assert float(jnp.abs(slope).max()) < 1e-12 * float(psf.max())


def test_default_pupil_sees_defocus_to_first_order(optics):
    psf, slope = _defocus_sensitivity(optics)
    assert float(jnp.abs(slope).max()) > 1e-5 * float(psf.max())


def test_filter_sets_start_with_the_tutorials():
    assert list(ex.filter_set(3)) == ["blue", "green", "red"]
    five = ex.filter_set(5)
    assert list(five) == ["blue", "green", "red", "band4", "band5"]
    assert [float(five["band5"][0]), float(five["band5"][-1])] == pytest.approx([1.8, 2.0])
    with pytest.raises(ValueError, match="filter_set: filters must be an integer >= 1, got"):
        ex.filter_set(0)
