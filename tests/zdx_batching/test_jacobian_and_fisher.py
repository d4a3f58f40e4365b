"""jacobian against jax.jacfwd and fisher against J^T J and closed forms, in float64."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import zdx_batching as batching


@pytest.mark.parametrize("nbatches", [1, 2, 3, 4, 6, 11])
def test_jacobian_of_a_matrix_output_equals_jacfwd(kit, nbatches):
    x, expected = kit.reference(jax.jacfwd, kit.mixed_residuals, kit.mixed_point)
    J, unflatten = batching.jacobian(kit.mixed_residuals, x, nbatches=nbatches)
    assert J.shape == (2, 3, 11)
    kit.assert_close(J, expected)
    assert unflatten(J[0, 0])["matrix"].shape == (2, 3)


@pytest.mark.parametrize("nbatches", [1, 4])
def test_jacobian_of_an_equinox_module_equals_jacfwd(kit, nbatches):
    x, expected = kit.reference(jax.jacfwd, kit.module_model, kit.module_point)
    J, _ = batching.jacobian(kit.module_model, x, nbatches=nbatches, checkpoint=nbatches > 1)
    assert J.shape == (7, 6)
    kit.assert_close(J, expected)


def test_jacobian_of_a_scalar_output_is_the_gradient(kit):
    x = kit.mixed_point()
    J, _unflatten = batching.jacobian(kit.mixed_loss, x, nbatches=3)
    f_flat, x_flat = kit.flat(kit.mixed_loss, x)
    assert J.shape == (11,)
    kit.assert_close(J, jax.grad(f_flat)(x_flat))


@pytest.mark.parametrize("nbatches", [1, 2, 4, 5])
def test_fisher_equals_jt_j(kit, nbatches):
    x, J = kit.reference(jax.jacfwd, kit.mixed_residuals, kit.mixed_point)
    F, _unflatten = batching.fisher(kit.mixed_residuals, x, nbatches=nbatches)
    J2 = J.reshape(-1, 11)
    kit.assert_close(F, J2.T @ J2)
    np.testing.assert_array_equal(np.asarray(F), np.asarray(F.T))


@pytest.mark.parametrize("nbatches", [1, 3])
def test_fisher_of_an_equinox_module_equals_jt_j(kit, nbatches):
    x, J = kit.reference(jax.jacfwd, kit.module_model, kit.module_point)
    sigma = 0.05
    F, _ = batching.fisher(lambda p: kit.module_model(p) / sigma, x, nbatches=nbatches)
    kit.assert_close(F, J.T @ J / sigma**2)


def test_fisher_of_a_linear_model_is_a_t_a_over_sigma_squared():
    # model(x) = A x, errors sigma: F = A^T diag(1/sigma^2) A, the inverse covariance.
    A = jnp.array([[1.0, 0.0], [1.0, 1.0], [1.0, 2.0], [1.0, 3.0]])
    sigma = jnp.array([0.1, 0.2, 0.1, 0.4])
    F, _ = batching.fisher(lambda p: (A @ p) / sigma, jnp.array([0.3, -1.0]), nbatches=2)
    expected = A.T @ (A / sigma[:, None] ** 2)
    np.testing.assert_allclose(np.asarray(F), np.asarray(expected), rtol=1e-14)


def test_fisher_equals_the_hessian_of_chi2_over_two_for_a_linear_model():
    A = jnp.array([[2.0, 0.5, 0.0], [0.0, 1.0, -1.0], [1.0, 1.0, 1.0], [0.5, -2.0, 3.0]])
    data = jnp.array([1.0, -0.5, 0.2, 2.0])
    sigma = 0.3
    x = {"slope": jnp.array([0.1, 0.2]), "offset": 0.4}

    def model(p):
        return A @ jnp.concatenate([p["slope"], jnp.atleast_1d(p["offset"])])

    F, _ = batching.fisher(lambda p: model(p) / sigma, x)
    H, _ = batching.hessian(lambda p: 0.5 * jnp.sum(((model(p) - data) / sigma) ** 2), x)
    np.testing.assert_allclose(np.asarray(F), np.asarray(H), rtol=1e-12, atol=1e-12)
