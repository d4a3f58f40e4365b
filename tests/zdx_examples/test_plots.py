"""The figures: what each panel shows, checked against the numbers drawn."""

import jax.numpy as jnp
import numpy as onp
import pytest

from zdx_examples import _plot_covariance, plots
from zdx_examples import optics as ex

FILTERS = {"blue": jnp.linspace(1.0, 1.2, 2), "red": jnp.linspace(1.4, 1.6, 2)}


@pytest.fixture(scope="module")
def sim():
    optics = ex.build_optics(FILTERS, npix=16, psf_npixels=8, n_zernike=3)
    return ex.simulate(optics, n_images=50)


def test_group_of_is_the_top_level_name():
    assert [plots.group_of(n) for n in ("position.blue[0]", "wfe[3]", "flux", "a.b.c")] == [
        "position",
        "wfe",
        "flux",
        "a",
    ]


@pytest.mark.parametrize("radius", [1.0, 2.0])
def test_ellipses_are_mahalanobis_contours(radius):
    correlation = onp.array([[1.0, -0.7], [-0.7, 1.0]])
    x, y = _plot_covariance._ellipse(correlation, radius)
    points = onp.stack([x, y])
    distance = onp.einsum("in,ij,jn->n", points, onp.linalg.inv(correlation), points)
    onp.testing.assert_allclose(distance, radius**2, rtol=1e-12)


def test_corner_plot_standardises_by_the_gaussian():
    mean = onp.array([10.0, -5.0, 0.0])
    sigma = onp.array([0.1, 2.0, 1.0])
    covariance = onp.diag(sigma**2)
    truth = mean + onp.array([1.0, -2.0, 0.5]) * sigma
    samples = mean + onp.array([[1.0, 1.0, 1.0], [-1.0, 0.5, 0.0]]) * sigma
    fig = plots.corner_plot(mean, covariance, ["a", "b", "c"], samples=samples, truth=truth)
    axes = onp.array(fig.axes).reshape(3, 3)
    assert [ax.axison for ax in axes.ravel()] == [
        True,
        False,
        False,
        True,
        True,
        False,
        True,
        True,
        True,
    ]
    scatter = axes[1, 0].collections[0].get_offsets()
    onp.testing.assert_allclose(scatter, [[1.0, 1.0], [-1.0, 0.5]])  # (a, b) in sigmas
    truth_lines = [line.get_xdata()[0] for line in axes[0, 0].lines if line.get_color() == "C3"]
    assert truth_lines == pytest.approx([1.0])
    assert [ax.get_xlabel() for ax in axes[-1]] == ["a", "b", "c"]
    assert [ax.get_ylabel() for ax in axes[1:, 0]] == ["b", "c"]


def test_corner_plot_shows_a_selection_and_checks_shapes():
    cov = onp.eye(4)
    fig = plots.corner_plot(onp.zeros(4), cov, list("wxyz"), select=[1, 3])
    assert len(fig.axes) == 4
    assert [ax.get_xlabel() for ax in fig.axes[2:]] == ["x", "z"]
    with pytest.raises(ValueError, match="expected \\(4,\\), \\(4, 4\\) and 4"):
        plots.corner_plot(onp.zeros(4), cov, list("wxy"))
    with pytest.raises(ValueError, match="`samples` must have shape \\(m, 4\\)"):
        plots.corner_plot(onp.zeros(4), cov, list("wxyz"), samples=onp.zeros((5, 3)))


def test_key_parameters_prefers_correlated_ones():
    cov = onp.eye(5)
    cov[1, 4] = cov[4, 1] = 0.8
    cov[0, 2] = cov[2, 0] = -0.3
    assert plots.key_parameters(cov, 2) == [1, 4]
    assert plots.key_parameters(cov, 4) == [0, 1, 2, 4]
    assert plots.key_parameters(cov, 0) == [0, 1, 2, 3, 4]


def test_matrix_figure_marks_exact_zeros_and_shows_correlations():
    fisher = onp.array([[4.0, 0.0], [0.0, 1e-3]])
    covariance = onp.array([[1.0, 0.5], [0.5, 4.0]])
    fig = plots.plot_matrices(fisher, covariance, ["p", "q"])
    log_f = fig.axes[0].images[0].get_array()
    assert log_f[0, 1] is onp.ma.masked  # exactly zero: drawn in the "bad" colour
    assert log_f[0, 0] == pytest.approx(onp.log10(4.0))
    assert log_f[1, 1] == pytest.approx(-3.0)
    correlation = fig.axes[2].images[0].get_array()
    onp.testing.assert_allclose(correlation, [[1.0, 0.25], [0.25, 1.0]])
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["p", "q"]


def test_z_score_maps_are_data_minus_model_over_error(sim):
    params = sim.true_params
    fig = plots.plot_z_scores({"truth": params}, sim.optics, sim.observations)
    panels = [ax for ax in fig.axes if ax.images]  # the others are colour bars
    assert len(panels) == len(sim.observations)
    for ax, obs in zip(panels, sim.observations):
        expected = (obs.data - obs(params, sim.optics)) / obs.error
        onp.testing.assert_allclose(ax.images[0].get_array(), expected, rtol=1e-9, atol=1e-9)
        low, high = ax.images[0].get_clim()
        assert high == -low == pytest.approx(float(onp.max(onp.abs(expected))))
    chi2r = float(ex.get_reduced_chi2(params, sim.optics, sim.observations))
    assert f"{chi2r:.4g}" in panels[0].get_ylabel()


def test_parameter_history_has_one_panel_per_group():
    names = ["flux.a", "flux.b", "wfe[0]"]
    history = onp.array([[1.0, 2.0, 3.0], [2.0, 2.5, 1.0]])
    fig = plots.plot_parameter_history(history, names, truth=onp.array([3.0, 2.0, 0.0]))
    assert [ax.get_title() for ax in fig.axes] == ["flux", "wfe"]
    lines = fig.axes[0].lines
    onp.testing.assert_allclose(lines[0].get_ydata(), [0.0, 1.0])  # moves from the start
    onp.testing.assert_allclose(lines[1].get_ydata(), [2.0, 2.0])  # truth - start, dashed


def test_data_losses_pulls_and_gaussians_figures(sim):
    fig = plots.plot_data(sim.observations, sim.optics)
    assert [ax.get_title() for ax in fig.axes if ax.images] == [
        "blue filter (1.00-1.20 µm)",
        "red filter (1.40-1.60 µm)",
    ]
    assert len(plots.plot_losses([3.0, 2.0, 1.0]).axes) == 1
    assert len(plots.plot_losses([3.0, 2.0], [2.0, 1.0], reference=1.0).axes) == 2
    fig = plots.plot_pulls(["a", "b"], [1.0, 2.0], [0.5, 0.5], [0.0, 2.5], [1.0, 2.0], [0.5, 1.0])
    points = fig.axes[0].lines[1].get_ydata()  # the best-fit markers
    onp.testing.assert_allclose(points, [2.0, -1.0])
    fig = plots.plot_gaussians(onp.arange(3.0), onp.ones(3), 0.5, {"fit": onp.zeros(3)})
    onp.testing.assert_allclose(fig.axes[1].collections[0].get_offsets()[:, 1], [2.0, 2.0, 2.0])
