"""Calibration statistics: coverage, pulls, normality and SBC ranks, against closed forms
and scipy."""

import math

import jax.numpy as jnp
import numpy as onp
import pytest
import scipy.stats

import zdx_stats


def test_nominal_coverage_is_the_normal_probability_within_k_sigma():
    for k in (0.5, 1.0, 2.0, 3.0):
        expected = scipy.stats.norm.cdf(k) - scipy.stats.norm.cdf(-k)
        assert float(zdx_stats.nominal_coverage(k)) == pytest.approx(expected, rel=1e-12)


def test_pulls_broadcast_one_truth_over_trials():
    estimates = jnp.array([[1.0, 2.0], [3.0, 5.0]])
    sigmas = jnp.array([[0.5, 1.0], [2.0, 4.0]])
    values = zdx_stats.pulls(estimates, jnp.array([1.0, 1.0]), sigmas)
    onp.testing.assert_allclose(values, [[0.0, 1.0], [1.0, 1.0]])


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(sigmas=[[1.0, 0.0]]), "sigmas"),
        (dict(truths=[[1.0, 2.0, 3.0]]), "same shape"),
    ],
)
def test_pulls_refuse_bad_input(bad, message):
    kwargs = {"estimates": [[1.0, 2.0]], "truths": [[0.0, 0.0]], "sigmas": [[1.0, 1.0]], **bad}
    with pytest.raises(ValueError, match=message):
        zdx_stats.pulls(**kwargs)


def test_coverage_counts_and_binomial_errors():
    values = jnp.array([[0.1, 1.5], [-0.9, -2.5], [1.2, 0.0], [3.0, 0.99]])
    cover = zdx_stats.coverage(values, levels=[1.0, 2.0])
    onp.testing.assert_allclose(cover.per_parameter, [[0.5, 0.5], [0.75, 0.75]])
    onp.testing.assert_allclose(cover.overall, [0.5, 0.75])
    p = onp.array([0.6826894921370859, 0.9544997361036416])
    onp.testing.assert_allclose(cover.nominal, p, rtol=1e-12)
    onp.testing.assert_allclose(cover.error_per_parameter, onp.sqrt(p * (1 - p) / 4))
    onp.testing.assert_allclose(cover.error_overall, onp.sqrt(p * (1 - p) / 8))
    expected = (0.5 - p[0]) / math.sqrt(p[0] * (1 - p[0]) / 4)
    onp.testing.assert_allclose(cover.deviation()[0], expected)


def test_coverage_of_normal_pulls_is_nominal_within_its_error():
    rng = onp.random.default_rng(1)
    cover = zdx_stats.coverage(rng.standard_normal((4000, 3)))
    assert onp.all(onp.abs(cover.deviation()) < 4)
    # and of pulls twice too wide, far below nominal
    wide = zdx_stats.coverage(2 * rng.standard_normal((4000, 3)))
    assert onp.all(wide.deviation()[0] < -10)


def test_normality_test_matches_scipy():
    rng = onp.random.default_rng(2)
    for sample in (rng.standard_normal(50), rng.exponential(size=200), rng.standard_t(3, 500)):
        ours = zdx_stats.normality_test(sample)
        theirs = scipy.stats.normaltest(sample)
        assert float(ours.statistic) == pytest.approx(theirs.statistic, rel=1e-9)
        assert float(ours.pvalue) == pytest.approx(theirs.pvalue, rel=1e-9, abs=1e-300)


def test_normality_test_refuses_short_samples():
    with pytest.raises(ValueError, match="at least 20"):
        zdx_stats.normality_test(jnp.ones(10))


def test_pull_statistics():
    rng = onp.random.default_rng(3)
    values = rng.standard_normal((300, 2)) * onp.array([1.0, 1.5]) + onp.array([0.0, 0.3])
    stats = zdx_stats.pull_statistics(values)
    onp.testing.assert_allclose(stats.mean, values.mean(0), rtol=1e-12)
    onp.testing.assert_allclose(stats.std, values.std(0, ddof=1), rtol=1e-12)
    onp.testing.assert_allclose(stats.mean_error, values.std(0, ddof=1) / math.sqrt(300))
    assert float(stats.overall_std) == pytest.approx(values.ravel().std(ddof=1), rel=1e-12)
    expected = [scipy.stats.normaltest(values[:, j]).pvalue for j in range(2)]
    onp.testing.assert_allclose(stats.normality_pvalue, expected, rtol=1e-9)


def test_sbc_ranks_count_the_draws_below_the_truth():
    truths = jnp.array([[0.0, 10.0], [2.0, -1.0]])
    draws = jnp.array(
        [[[-1.0, 11.0], [1.0, 9.0], [-0.5, 12.0]], [[1.0, 0.0], [3.0, 1.0], [2.5, 2.0]]]
    )
    onp.testing.assert_array_equal(zdx_stats.sbc_ranks(truths, draws), [[2, 1], [1, 0]])


def test_rank_histogram_needs_bins_that_divide_the_ranks():
    with pytest.raises(ValueError, match="divide"):
        zdx_stats.rank_histogram(jnp.array([0, 1]), num_draws=9, bins=3)


def test_uniformity_test_is_pearsons_chi2_and_rejects_a_biased_sampler():
    rng = onp.random.default_rng(4)
    num_draws = 99
    uniform = rng.integers(0, num_draws + 1, size=(500, 2))
    test = zdx_stats.rank_uniformity_test(uniform, num_draws, bins=10)
    counts = onp.stack([onp.bincount(uniform[:, j] // 10, minlength=10) for j in range(2)])
    onp.testing.assert_array_equal(test.counts, counts)
    expected = scipy.stats.chisquare(counts, axis=1)
    onp.testing.assert_allclose(test.statistic, expected.statistic, rtol=1e-12)
    onp.testing.assert_allclose(test.pvalue, expected.pvalue, rtol=1e-9)
    # A posterior too narrow puts the truth at the extremes: a U-shaped histogram.
    truths = rng.standard_normal(500)
    draws = 0.5 * rng.standard_normal((500, num_draws))
    ranks = zdx_stats.sbc_ranks(truths, draws)
    assert float(zdx_stats.rank_uniformity_test(ranks, num_draws).pvalue[0]) < 1e-6
    # A correct posterior (here the truth is one more draw of the same law) passes.
    ranks = zdx_stats.sbc_ranks(truths, rng.standard_normal((500, num_draws)))
    assert float(zdx_stats.rank_uniformity_test(ranks, num_draws).pvalue[0]) > 1e-3


def test_default_bins_keep_five_expected_counts():
    test = zdx_stats.rank_uniformity_test(jnp.zeros((40, 1), int), num_draws=99)
    assert test.bins == 5  # the largest divisor of 100 up to 20 with 40 / bins >= 5
    with pytest.raises(ValueError, match="no bin count"):
        zdx_stats.rank_uniformity_test(jnp.zeros((4, 1), int), num_draws=99)


def test_figures_draw(tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    rng = onp.random.default_rng(5)
    values = rng.standard_normal((60, 3))
    names = ["a", "b", "c"]
    cover = zdx_stats.coverage(values)
    for fig in (
        zdx_stats.plot_pull_histograms(values, names),
        zdx_stats.plot_coverage(cover, names, values),
        zdx_stats.plot_rank_histograms(
            zdx_stats.rank_histogram(rng.integers(0, 20, (60, 3)), 19, 4), names
        ),
    ):
        fig.savefig(tmp_path / "f.png")
        assert (tmp_path / "f.png").stat().st_size > 1000
