"""hessian, hessian_diagonal, hvp and hessian_to_pytree against jax.hessian in float64."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import zdx_batching as batching

NBATCHES = [1, 2, 3, 4, 5, 7, 11]  # n = 11: most do not divide it


@pytest.mark.parametrize("nbatches", NBATCHES)
def test_hessian_of_a_dict_of_mixed_shapes_equals_jax_hessian(kit, nbatches):
    x, expected = kit.reference(jax.hessian, kit.mixed_loss, kit.mixed_point)
    H, _ = batching.hessian(kit.mixed_loss, x, nbatches=nbatches)
    assert H.shape == (11, 11)
    kit.assert_close(H, expected)


@pytest.mark.parametrize("nbatches", [1, 4, 5])
def test_hessian_of_an_equinox_module_equals_jax_hessian(kit, nbatches):
    x, expected = kit.reference(jax.hessian, kit.module_loss, kit.module_point)
    H, unflatten = batching.hessian(kit.module_loss, x, nbatches=nbatches)
    kit.assert_close(H, expected)
    assert isinstance(unflatten(H[0]), kit.Params)


def test_hessian_of_a_single_array_and_a_list(kit):
    f = lambda p: jnp.sum(jnp.sin(p[0]) * p[1] ** 2)  # noqa: E731
    x = [jnp.array([0.3, 0.6]), jnp.array([1.5, -2.0])]
    f_flat, x_flat = kit.flat(f, x)
    H, _ = batching.hessian(f, x, nbatches=3)
    kit.assert_close(H, jax.jit(jax.hessian(f_flat))(x_flat))
    g = lambda z: jnp.prod(z) ** 2  # noqa: E731
    z = jnp.array([[1.0, 2.0], [0.5, -1.0]])
    H, unflatten = batching.hessian(g, z, nbatches=3)
    kit.assert_close(H, jax.jit(jax.hessian(g))(z).reshape(4, 4))
    assert unflatten(H[0]).shape == (2, 2)


def test_quadratic_form_gives_its_matrix_exactly():
    A = jnp.array([[4.0, 1.0, -2.0], [1.0, 3.0, 0.5], [-2.0, 0.5, 5.0]])
    f = lambda p: 0.5 * p @ A @ p + jnp.sum(p)  # noqa: E731
    H, _ = batching.hessian(f, jnp.array([0.1, -0.2, 0.3]), nbatches=2)
    np.testing.assert_array_equal(np.asarray(H), np.asarray(A))


@pytest.mark.parametrize("nbatches", [1, 3])
def test_checkpoint_on_and_off_agree(kit, nbatches):
    x, expected = kit.reference(jax.hessian, kit.mixed_loss, kit.mixed_point)
    H_plain, _ = batching.hessian(kit.mixed_loss, x, nbatches=nbatches, checkpoint=False)
    H_ckpt, _ = batching.hessian(kit.mixed_loss, x, nbatches=nbatches, checkpoint=True)
    kit.assert_close(H_ckpt, H_plain, tol=1e-13)
    kit.assert_close(H_ckpt, expected)


def test_without_jit_gives_the_same_hessian(kit):
    x, expected = kit.reference(jax.hessian, kit.mixed_loss, kit.mixed_point)
    H, _ = batching.hessian(kit.mixed_loss, x, nbatches=4, jit=False)
    kit.assert_close(H, expected)


def test_unflatten_round_trips_the_parameters(kit):
    x = kit.mixed_point()
    _, unflatten = batching.hessian(kit.mixed_loss, x, nbatches=2)
    x_flat, _ = jax.flatten_util.ravel_pytree(x)
    back = unflatten(x_flat)
    assert jax.tree_util.tree_structure(back) == jax.tree_util.tree_structure(x)
    for got, want in zip(jax.tree_util.tree_leaves(back), jax.tree_util.tree_leaves(x)):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
        assert np.shape(got) == np.shape(want)
    again, _ = jax.flatten_util.ravel_pytree(back)
    np.testing.assert_array_equal(np.asarray(again), np.asarray(x_flat))


def test_unflatten_rejects_a_vector_of_the_wrong_length(kit):
    _, unflatten = batching.hessian(kit.mixed_loss, kit.mixed_point(), nbatches=2)
    with pytest.raises(ValueError, match=r"shape \(11,\).*got shape \(10,\)"):
        unflatten(jnp.zeros(10))


def test_hessian_to_pytree_gives_blocks_of_leaf_shapes(kit):
    x, expected = kit.reference(jax.hessian, kit.mixed_loss, kit.mixed_point)
    tree = batching.hessian_to_pytree(expected, x)
    assert tree["vector"]["matrix"].shape == (3, 2, 3)
    assert tree["matrix"]["scalar"].shape == (2, 3)
    assert tree["scalar"]["float"].shape == ()
    # leaves in ravel_pytree order: float (1), matrix (6), scalar (1), vector (3)
    np.testing.assert_array_equal(
        np.asarray(tree["vector"]["matrix"]), np.asarray(expected[8:11, 1:7].reshape(3, 2, 3))
    )
    np.testing.assert_array_equal(np.asarray(tree["float"]["vector"]), expected[0, 8:11])


def test_hessian_to_pytree_rejects_a_matrix_of_another_size(kit):
    with pytest.raises(ValueError, match=r"H has shape \(3, 3\).*n=11"):
        batching.hessian_to_pytree(jnp.eye(3), kit.mixed_point())


@pytest.mark.parametrize("nbatches", [1, 4])
def test_hessian_diagonal_is_the_diagonal(kit, nbatches):
    x, expected = kit.reference(jax.hessian, kit.mixed_loss, kit.mixed_point)
    d, unflatten = batching.hessian_diagonal(kit.mixed_loss, x, nbatches=nbatches)
    assert d.shape == (11,)
    kit.assert_close(d, jnp.diag(expected))
    assert unflatten(d)["matrix"].shape == (2, 3)


def test_hvp_of_a_pytree_vector_and_of_a_flat_vector(kit):
    x, expected = kit.reference(jax.hessian, kit.mixed_loss, kit.mixed_point)
    v_flat = jnp.linspace(-1.0, 1.0, 11)
    _, unravel = jax.flatten_util.ravel_pytree(x)
    out_flat = batching.hvp(kit.mixed_loss, x, v_flat)
    kit.assert_close(out_flat, expected @ v_flat)
    out_tree = batching.hvp(kit.mixed_loss, x, unravel(v_flat))
    assert jax.tree_util.tree_structure(out_tree) == jax.tree_util.tree_structure(x)
    kit.assert_close(jax.flatten_util.ravel_pytree(out_tree)[0], expected @ v_flat)


def test_hessian_inside_jit_and_vmap(kit):
    f = lambda p: jnp.sum(jnp.sin(p) ** 2) * p[0]  # noqa: E731
    points = jnp.array([[0.1, 0.2, 0.3], [0.5, -0.4, 1.0]])
    batched = jax.jit(jax.vmap(lambda p: batching.hessian(f, p, nbatches=2)[0]))(points)
    for point, H in zip(points, batched):
        kit.assert_close(H, jax.jit(jax.hessian(f))(point))


def test_parameters_in_float32_give_float32_matrices(kit):
    f = lambda p: jnp.sum(p["a"] ** 3) * p["b"]  # noqa: E731
    x = {"a": jnp.array([1.0, 2.0], jnp.float32), "b": jnp.array(0.5, jnp.float32)}
    H, unflatten = batching.hessian(f, x, nbatches=2)
    assert H.dtype == jnp.float32
    expected = jax.hessian(lambda z: f({"a": z[:2], "b": z[2]}))(jnp.array([1.0, 2.0, 0.5]))
    np.testing.assert_allclose(np.asarray(H), np.asarray(expected), rtol=1e-6)
    assert unflatten(H[0])["a"].dtype == jnp.float32


def test_hessian_of_a_function_that_captures_an_outer_tracer():
    x = jnp.array([0.3, 0.7])

    def total_curvature(scale):
        H, _ = batching.hessian(lambda p: scale * jnp.sum(p**3), x, nbatches=2)
        return jnp.sum(H)

    # sum(H) = scale * sum(6 p), so its derivative in scale is 6 * (0.3 + 0.7)
    np.testing.assert_allclose(float(jax.grad(total_curvature)(2.0)), 6.0, rtol=1e-13)
