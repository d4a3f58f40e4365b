"""Structured curvature: sparse Jacobians, Hessians and Fisher matrices by colouring.

Each result equals the dense matrix (``jax.jacfwd``, ``jax.hessian``, ``J^T J``) in
float64, is computed from one product per colour, and a wrong pattern is an error.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse as sp
from jax.flatten_util import ravel_pytree

import zdx_batching as zb
from zdx_batching import _sparse, _sparse_calls

NPIX = 6
STACK = jax.random.uniform(jax.random.key(0), (3, NPIX, NPIX)) + 0.5


def images(p):
    """A stack of images scaled by a flux and two global shape terms, then multiplied
    pixel by pixel by a response map: the detector-calibration structure."""
    base = STACK + p["shape"][0] * jnp.roll(STACK, 1, -1) + p["shape"][1] * STACK**2
    return 10 ** p["flux"] * base * p["prf"] / 0.1


def chain(p):
    """A scalar with a banded Hessian in ``x`` (Rosenbrock's chain) and a global scale."""
    x = p["x"]
    return p["scale"] * jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


X_IMAGES = {
    "flux": jnp.array(0.3),
    "shape": jnp.array([0.1, 0.2]),
    "prf": 1.0 + 0.05 * jax.random.normal(jax.random.key(1), (NPIX, NPIX)),
}
X_CHAIN = {"scale": jnp.array(1.5), "x": jnp.linspace(-1.0, 1.2, 40)}


def dense_jacobian(f, x):
    flat, unravel = ravel_pytree(x)
    return np.asarray(jax.jacfwd(lambda v: jnp.ravel(f(unravel(v))))(flat))


def dense_hessian(f, x):
    flat, unravel = ravel_pytree(x)
    return np.asarray(jax.hessian(lambda v: f(unravel(v)))(flat))


def relative_error(sparse, dense):
    return float(np.max(np.abs(np.asarray(sparse.todense()) - dense)) / np.max(np.abs(dense)))


@pytest.fixture(scope="module")
def fisher_images():
    return zb.sparse_fisher(images, X_IMAGES)


# --- equal to the dense matrices ---------------------------------------------------------------


def test_sparse_fisher_equals_dense_jtj(fisher_images):
    J = dense_jacobian(images, X_IMAGES)
    assert relative_error(fisher_images, J.T @ J) < 1e-13
    assert fisher_images.shape == (3 + NPIX**2, 3 + NPIX**2)


def test_sparse_jacobian_equals_jacfwd():
    result = zb.sparse_jacobian(images, X_IMAGES)
    J = dense_jacobian(images, X_IMAGES)
    assert relative_error(result, J) < 1e-13
    # Each response pixel touches one pixel in each of the three images; globals all.
    assert result.nnz == 3 * NPIX**2 + 3 * (3 * NPIX**2)


def test_sparse_hessian_equals_jax_hessian():
    result = zb.sparse_hessian(chain, X_CHAIN)
    assert relative_error(result, dense_hessian(chain, X_CHAIN)) < 1e-13


def test_hessian_of_a_model_with_data_given_as_args():
    def loss(p, data):
        return 0.5 * jnp.sum((images(p) - data) ** 2) + jnp.sum(jnp.cos(p["prf"]))

    data = images(X_IMAGES) * 1.01
    result = zb.sparse_hessian(loss, X_IMAGES, args=data)
    assert relative_error(result, dense_hessian(lambda p: loss(p, data), X_IMAGES)) < 1e-12


# --- one product per colour --------------------------------------------------------------------


def test_colours_are_set_by_the_structure_not_by_n():
    # An arrowhead Fisher matrix: the response pixels share one colour, the three global
    # scalars one each.
    found = zb.find_sparsity("fisher", images, X_IMAGES)
    assert found.ncolours <= 3 + 1
    assert found.sources == {"flux": "dense", "shape": "dense", "prf": "detected"}
    banded = zb.find_sparsity("hessian", chain, X_CHAIN)
    assert banded.ncolours <= 1 + 4  # the global scale, and a few for a tridiagonal block
    assert banded.shape == (41, 41)


def test_pattern_names_every_parameter_in_ravel_order(fisher_images):
    # Leaves in ravel order (a dict's keys sorted), scalars in row-major order.
    assert fisher_images.names[:3] == ("flux", "prf[0,0]", "prf[0,1]")
    assert fisher_images.names[-2:] == ("shape[0]", "shape[1]")
    assert len(fisher_images.names) == fisher_images.shape[1]


def test_declared_pattern_gives_the_same_matrix(fisher_images):
    declared = zb.sparse_fisher(images, X_IMAGES, declare={"prf": "elementwise"})
    np.testing.assert_allclose(declared.todense(), fisher_images.todense(), rtol=1e-13, atol=0)
    found = zb.find_sparsity("fisher", images, X_IMAGES, declare={"prf": "elementwise"})
    assert found.sources["prf"] == "declared"


def test_declared_boolean_array_for_a_leaf():
    rows = np.arange(3 * NPIX**2)
    pattern = sp.coo_matrix(
        (np.ones(rows.size, bool), (rows, rows % NPIX**2)), shape=(3 * NPIX**2, NPIX**2)
    )
    result = zb.sparse_jacobian(images, X_IMAGES, declare={"prf": pattern.toarray()})
    assert relative_error(result, dense_jacobian(images, X_IMAGES)) < 1e-13


# --- a wrong pattern is an error, never a wrong matrix -----------------------------------------


def shifted(p):
    """Each response pixel also touches its neighbour: 'elementwise' is wrong here."""
    return images(p) + jnp.roll(p["prf"], 1, axis=-1)


def test_wrong_declaration_raises_naming_the_leaf():
    with pytest.raises(zb.SparsityError, match=r"'prf' \(declared"):
        zb.sparse_fisher(shifted, X_IMAGES, declare={"prf": "elementwise"})


def test_wrong_declared_hessian_pattern_raises():
    with pytest.raises(zb.SparsityError, match="'x'"):
        zb.sparse_hessian(chain, X_CHAIN, declare={"x": "elementwise"})


def test_the_transform_reports_its_mismatch_instead_of_raising():
    transform = zb.sparse_fisher_fn(shifted, declare={"prf": "elementwise"})
    assert float(transform(X_IMAGES).mismatch) > 1e-6
    right = zb.sparse_fisher_fn(shifted)
    assert float(right(X_IMAGES).mismatch) < 1e-13


def test_a_large_leaf_that_cannot_be_detected_asks_for_a_declaration():
    def blurred(p):  # a convolution whose kernel depends on the parameters
        kernel = jnp.stack([p["k"], 1.0 - p["k"]]).reshape(1, 1, 2)
        signal = p["signal"].reshape(1, 1, -1)
        return jax.lax.conv_general_dilated(signal, kernel, (1,), "SAME").ravel()

    x = {"k": jnp.array(0.3), "signal": jnp.linspace(0.0, 1.0, 40)}
    try:
        found = zb.find_sparsity("jacobian", blurred, x)
    except zb.SparsityError as error:
        assert "declare" in str(error) and "'signal'" in str(error)
    else:  # detection managed: then the matrix it gives must be right
        assert found.sources["signal"] == "detected"
        result = zb.sparse_jacobian(blurred, x)
        assert relative_error(result, dense_jacobian(blurred, x)) < 1e-13


# --- transforms compose; calls reuse -----------------------------------------------------------


def test_transform_composes_with_jit_and_grad():
    transform = zb.sparse_fisher_fn(images)

    def total(p):
        return jnp.sum(transform(p).data)

    flat, unravel = ravel_pytree(X_IMAGES)

    def dense_total(v):
        J = jax.jacfwd(lambda u: jnp.ravel(images(unravel(u))))(v)
        return jnp.sum(J.T @ J)

    assert np.isclose(float(jax.jit(total)(X_IMAGES)), float(dense_total(flat)), rtol=1e-13)
    g = ravel_pytree(jax.grad(total)(X_IMAGES))[0]
    np.testing.assert_allclose(g, jax.grad(dense_total)(flat), rtol=1e-10)


def test_new_lambda_of_same_code_reuses_the_pattern_and_sees_new_values(monkeypatch):
    found = []
    original = _sparse.build_sparsity
    monkeypatch.setattr(
        _sparse, "build_sparsity", lambda *a, **k: found.append(1) or original(*a, **k)
    )
    _sparse_calls._held.cache_clear()
    results = []
    for scale in (1.0, 2.0, 3.0):
        weight = jnp.full((3, NPIX, NPIX), scale)
        results.append(zb.sparse_fisher(lambda p, w=weight: images(p) * w, X_IMAGES))
    assert len(found) == 1
    for scale, result in zip((1.0, 2.0, 3.0), results):
        J = dense_jacobian(lambda p, s=scale: images(p) * s, X_IMAGES)
        assert relative_error(result, J.T @ J) < 1e-13


def test_sparse_matrix_views_agree(fisher_images):
    dense = np.asarray(fisher_images.todense())
    np.testing.assert_array_equal(fisher_images.to_scipy().toarray(), dense)
    np.testing.assert_allclose(fisher_images.diagonal(), np.diag(dense), rtol=0, atol=0)
    v = np.linspace(-1.0, 1.0, dense.shape[1])
    np.testing.assert_allclose(fisher_images @ v, dense @ v, rtol=1e-13)
    np.testing.assert_allclose(fisher_images.bcoo.todense(), dense)
    with pytest.raises(ValueError, match="columns"):
        fisher_images @ np.ones(3)


# --- clear errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"declare": {"nope": "dense"}}, r"'nope'.*leaves are \['flux', 'prf', 'shape'\]"),
        ({"declare": {"prf": "banded"}}, r"declare\['prf'\] = 'banded'.*'dense', 'elementwise'"),
        ({"declare": {"prf": np.ones((3, 3), bool)}}, r"shape \(3, 3\).*\(108, 36\)"),
        ({"declare": ["prf"]}, "declare must be a dict"),
        ({"dense_size": -1}, "dense_size must be at least 0"),
        ({"nbatches": 0}, "nbatches must be None or an int >= 1"),
        ({"checks": 0}, "checks must be an int >= 1"),
        ({"rtol": -1.0}, "rtol must be a positive number"),
    ],
)
def test_bad_arguments_are_named(options, match):
    with pytest.raises((TypeError, ValueError), match=match):
        zb.sparse_jacobian(images, X_IMAGES, **options)


def test_elementwise_needs_matching_trailing_axes():
    with pytest.raises(ValueError, match=r"trailing axes.*\(6, 6\).*\(2,\)"):
        zb.sparse_jacobian(
            lambda p: jnp.stack([p["flux"], jnp.sum(p["prf"])]),
            X_IMAGES,
            declare={"prf": "elementwise"},
        )


def test_tracers_are_refused_by_the_call():
    with pytest.raises(TypeError, match="sparse_fisher_fn"):
        jax.jit(lambda p: zb.sparse_fisher(images, p).data)(X_IMAGES)


def test_the_readme_example_of_structured_curvature_runs():
    import pathlib
    import re

    readme = pathlib.Path(__file__).parents[2] / "packages" / "zdx-batching" / "README.md"
    blocks = re.findall(r"```python\n(.*?)```", readme.read_text(), re.S)
    (block,) = [b for b in blocks if "sparse_fisher(scaled_model" in b]
    namespace: dict = {}
    exec(compile(block, str(readme), "exec"), namespace)
    F, sigma = namespace["F"], namespace["sigma"]
    assert F.shape == (4098, 4098) and F.names[:2] == ("blur", "log_flux")
    assert F.nnz == 4096 + 4 * 4096 + 4  # the diagonal, two dense rows and columns
    assert sigma.shape == (4098,) and np.all(sigma[2:] <= 0.05)


# --- detection on the operations that see the leaf -------------------------------------------


def optics_then_response(p):
    """Expensive operations on the other leaves (a matrix product, a convolution), then a
    response gathered at constant indices and applied pixel by pixel."""
    psf = jnp.outer(jnp.sin(p["shape"][0] * jnp.arange(NPIX)), jnp.cos(jnp.arange(NPIX)))
    psf = jax.scipy.signal.convolve(psf, jnp.ones((3, 3)) * p["shape"][1], mode="same")
    order = np.array([1, 0, 2, 3, 5, 4])  # a constant permutation of the rows
    return psf * p["prf"][order] + psf.sum() * p["flux"]


def test_detection_keeps_only_what_depends_on_the_leaf_and_finds_the_exact_pattern():
    from zdx_batching._dependence import dependent_part

    x = {"flux": 0.3, "prf": X_IMAGES["prf"], "shape": jnp.array([0.4, 0.2])}
    leaves = [np.zeros(np.shape(x[name])) for name in ("flux", "prf", "shape")]

    def by_leaves(flux, prf, shape):
        return optics_then_response({"flux": flux, "prf": prf, "shape": shape})

    whole = jax.make_jaxpr(by_leaves)(*leaves).jaxpr
    part, inputs = dependent_part(by_leaves, leaves, 1)
    cut = jax.make_jaxpr(part)(*inputs).jaxpr
    assert len(cut.eqns) < len(whole.eqns) // 2  # the optics are left out
    assert not any(eqn.primitive.name == "conv_general_dilated" for eqn in cut.eqns)

    found = zb.find_sparsity("jacobian", optics_then_response, x, dense_size=2)
    dense = dense_jacobian(optics_then_response, x)
    pattern = np.zeros(dense.shape, bool)
    pattern[found.rows, found.cols] = True
    assert not np.any((dense != 0) & ~pattern)  # no entry missed
    response = found.leaf_slices["prf"]
    assert np.array_equal(pattern[:, response], dense[:, response] != 0)  # one per pixel
    J = zb.sparse_jacobian(optics_then_response, x, dense_size=2)
    assert relative_error(J, dense) < 1e-12
