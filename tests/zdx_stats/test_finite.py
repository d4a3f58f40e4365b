"""Statistics over the finite pixels: masks, masked chi-squared, NaN-free gradients."""

import jax
import jax.numpy as jnp
import pytest
from jax.scipy.stats import norm

import zdx_stats as stats

NAN = jnp.nan


@pytest.fixture(scope="module")
def image(gaussian_data):
    """A model, data and error with NaN in the data, the error and the model."""
    model, data, error = gaussian_data(1, (4, 4))
    data = data.at[0, 0].set(NAN)
    error = error.at[1, 2].set(NAN).at[3, 3].set(jnp.inf)
    model = model.at[2, 1].set(NAN)
    good = jnp.ones((4, 4), bool).at[0, 0].set(False).at[1, 2].set(False)
    good = good.at[3, 3].set(False).at[2, 1].set(False)
    return model, data, error, good


def test_finite_mask_is_true_where_every_array_is_finite(image):
    model, data, error, good = image
    assert (stats.finite_mask(model, data, error) == good).all()
    assert stats.finite_mask(jnp.array([1.0, NAN]), 1.0).tolist() == [True, False]
    assert stats.finite_mask(jnp.ones((2, 1)), jnp.ones(3)).shape == (2, 3)


def test_finite_mask_errors():
    with pytest.raises(ValueError, match="at least one array"):
        stats.finite_mask()
    with pytest.raises(
        ValueError, match=r"arrays\[0\] \(shape \(2,\)\), arrays\[1\] \(shape \(3,\)\)"
    ):
        stats.finite_mask(jnp.ones(2), jnp.ones(3))


def test_chi2_finite_sums_over_the_finite_pixels(image):
    model, data, error, good = image
    z = (data[good] - model[good]) / error[good]
    assert float(stats.chi2_finite(model, data, error)) == pytest.approx(float(jnp.sum(z**2)))
    assert jnp.isnan(stats.chi2(model, data, error))


def test_chi2r_finite_counts_only_the_finite_pixels_as_data(image):
    model, data, error, good = image
    z = (data[good] - model[good]) / error[good]
    params = {"a": jnp.ones(2), "b": 1.0}
    expected = float(jnp.sum(z**2)) / (12 - 3)
    assert float(stats.chi2r_finite(model, data, error, params)) == pytest.approx(expected)
    assert float(stats.chi2r_finite(model, data, error, 3)) == pytest.approx(expected)
    # the same as chi2_finite over ddof with finite_only
    dof = stats.ddof(params, jnp.where(good, data, NAN), finite_only=True)
    assert float(stats.chi2_finite(model, data, error)) / dof == pytest.approx(expected)


def test_chi2r_from_z_finite(image):
    model, data, error, _ = image
    zs = stats.z_score(model, data, error)
    finite = jnp.isfinite(zs)  # an infinite error gives a finite z-score of 0
    assert int(finite.sum()) == 13
    expected = float(jnp.sum(zs[finite] ** 2)) / (13 - 2)
    assert float(stats.chi2r_from_z_finite(zs, 2)) == pytest.approx(expected)
    assert float(stats.chi2r_from_z_finite(zs, jnp.ones(2))) == pytest.approx(expected)


def test_a_mask_leaves_out_more_pixels(image):
    model, data, error, good = image
    mask = jnp.ones((4, 4), bool).at[:, 0].set(False)
    used = good & mask
    z = (data[used] - model[used]) / error[used]
    assert float(stats.chi2_finite(model, data, error, mask=mask)) == pytest.approx(
        float(jnp.sum(z**2))
    )
    expected = float(jnp.sum(z**2)) / (int(used.sum()) - 1)
    assert float(stats.chi2r_finite(model, data, error, 1, mask=mask)) == pytest.approx(expected)
    row_mask = jnp.array([True, True, True, False])  # broadcasts along rows
    assert float(stats.chi2_finite(model, data, error, mask=row_mask)) == pytest.approx(
        float(
            jnp.sum(jnp.where(good & row_mask[None, :], stats.z_score(model, data, error), 0) ** 2)
        )
    )


def test_loglike_and_z_score_finite_are_zero_where_left_out(image):
    model, data, error, good = image
    ll = stats.loglike_finite(model, data, error)
    assert jnp.allclose(ll[good], norm.logpdf(data[good], model[good], error[good]), rtol=1e-14)
    assert (ll[~good] == 0).all()
    z = stats.z_score_finite(model, data, error)
    assert jnp.allclose(z[good], ((data - model) / error)[good], rtol=1e-15)
    assert (z[~good] == 0).all()


def test_gradients_are_free_of_nan_and_zero_at_left_out_pixels(image):
    model, data, error, good = image
    model = jnp.where(jnp.isnan(model), 0.0, model)  # differentiate with respect to a model
    good = stats.finite_mask(model, data, error)
    for f in (
        lambda m: stats.chi2_finite(m, data, error),
        lambda m: stats.chi2r_finite(m, data, error, 2),
        lambda m: stats.loglike_finite(m, data, error).sum(),
    ):
        g = jax.grad(f)(model)
        assert jnp.isfinite(g).all()
        assert (g[~good] == 0).all()
    g = jax.grad(lambda m: stats.chi2_finite(m, data, error))(model)
    assert jnp.allclose(g[good], (-2 * (data - model) / error**2)[good], rtol=1e-13)
    g = jax.grad(lambda s: stats.loglike_finite(model, data, s).sum())(error)
    assert jnp.isfinite(g).all() and (g[~good] == 0).all()


def test_chi2r_from_z_finite_gradient_with_respect_to_the_z_scores():
    z = jnp.array([1.0, NAN, -2.0, jnp.inf])
    g = jax.grad(lambda z: stats.chi2r_from_z_finite(z, 0))(z)
    assert g.tolist() == [1.0, 0.0, -2.0, 0.0]


def test_too_few_finite_pixels_raise_with_both_counts():
    data = jnp.array([1.0, NAN, NAN, 2.0])
    message = r"chi2r_finite: ddof must be positive.*got ddof=0 \(2 used data points minus 2"
    with pytest.raises(ValueError, match=message):
        stats.chi2r_finite(jnp.zeros(4), data, jnp.ones(4), jnp.ones(2))
    with pytest.raises(ValueError, match=r"chi2r_from_z_finite: .*ddof=-1 \(2 used"):
        stats.chi2r_from_z_finite(data, 3)


def test_under_jit_the_finite_count_is_traced():
    f = jax.jit(stats.chi2r_finite)
    data = jnp.array([1.0, NAN, 2.0, 2.0])
    assert float(f(jnp.zeros(4), data, jnp.ones(4), 1)) == pytest.approx(9 / 2)
    assert jnp.isnan(f(jnp.zeros(4), data, jnp.ones(4), 3))


def test_bad_masks_and_params_are_rejected():
    with pytest.raises(TypeError, match=r"chi2_finite: mask must be a boolean array.*float"):
        stats.chi2_finite(jnp.ones(3), jnp.ones(3), 1.0, mask=jnp.ones(3))
    with pytest.raises(ValueError, match=r"mask has shape \(2,\).*\(3,\)"):
        stats.chi2_finite(jnp.ones(3), jnp.ones(3), 1.0, mask=jnp.ones(2, bool))
    with pytest.raises(
        ValueError, match="chi2r_finite: params must be a count >= 0, got params=-1"
    ):
        stats.chi2r_finite(jnp.ones(3), jnp.ones(3), 1.0, -1)
    with pytest.raises(TypeError, match="params must be an integer count or a pytree"):
        stats.chi2r_finite(jnp.ones(3), jnp.ones(3), 1.0, True)
