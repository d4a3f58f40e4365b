"""Matrix-free curvature against dense answers in float64: the operators' products against
jax.hessian and J^T J, CG marginal variances against the dense inverse's diagonal,
Lanczos eigenpairs against numpy's, and the stochastic log-determinant against the exact
one over seeds."""

import importlib.util
import warnings

import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import zdx_base
import zdx_batching as batching

N = 80  # 20 + 6 * 10
# matfree (Lanczos) needs Python 3.11 or newer; zdx-batching installs without it on 3.10.
needs_matfree = pytest.mark.skipif(
    importlib.util.find_spec("matfree") is None, reason="matfree needs Python 3.11+"
)


def _point():
    return {"a": jnp.linspace(-0.5, 0.5, 20), "b": 0.3 * jnp.ones((6, 10))}


def _precision():
    """A fixed SPD matrix with a spread of eigenvalues (condition number about 100)."""
    rotation, _ = jnp.linalg.qr(jax.random.normal(jax.random.key(7), (N, N)))
    return (rotation * jnp.geomspace(0.1, 10.0, N)) @ rotation.T


def _negative_log_posterior(p, precision):
    z = jnp.concatenate([p["a"], p["b"].ravel()])
    # convex: a Gaussian, a quartic and a softplus of a projection, so the Hessian is SPD
    return 0.5 * z @ precision @ z + 0.05 * jnp.sum(z**4) + jnp.logaddexp(0.0, jnp.sin(z) @ z)


def _residuals(p, data):
    design, sigma = data
    z = jnp.concatenate([p["a"], p["b"].ravel()])
    model = design @ z
    return (model + 0.2 * jnp.tanh(model) ** 2) / sigma


@pytest.fixture(scope="module")
def problem():
    """The point, the data, the flat Hessian and Fisher matrices (dense, for reference)
    and the two operators, built once for the module."""
    x, precision = _point(), _precision()
    flat, unravel = ravel_pytree(x)
    hessian = jax.hessian(lambda z: _negative_log_posterior(unravel(z), precision))(flat)
    data = (jax.random.normal(jax.random.key(3), (160, N)) / jnp.sqrt(160.0), 0.5)
    jacobian = jax.jacfwd(lambda z: _residuals(unravel(z), data))(flat)
    return {
        "x": x,
        "precision": precision,
        "hessian": hessian,
        "fisher": jacobian.T @ jacobian,
        "H": batching.hessian_operator(_negative_log_posterior, x, precision),
        "F": batching.fisher_operator(_residuals, x, data),
    }


# --- the operators ------------------------------------------------------------------------


def test_hessian_operator_products_equal_the_dense_hessian(problem):
    vectors = jax.random.normal(jax.random.key(1), (3, N))
    for v in vectors:
        np.testing.assert_allclose(problem["H"].mv(v), problem["hessian"] @ v, rtol=0, atol=1e-11)
    np.testing.assert_allclose(problem["H"].as_matrix(), problem["hessian"], atol=1e-11)
    assert lx.is_symmetric(problem["H"]) and not lx.is_positive_semidefinite(problem["H"])


def test_fisher_operator_products_equal_jt_j(problem):
    vectors = jax.random.normal(jax.random.key(2), (3, N))
    scale = float(jnp.max(jnp.abs(problem["fisher"])))
    for v in vectors:
        np.testing.assert_allclose(
            problem["F"].mv(v), problem["fisher"] @ v, rtol=0, atol=1e-12 * scale * N
        )
    assert lx.is_symmetric(problem["F"]) and lx.is_positive_semidefinite(problem["F"])


def test_operator_names_and_unflatten_follow_zdx_base_ravel(problem):
    op = problem["H"]
    assert op.names == zdx_base.ravel(problem["x"]).names
    assert op.n == N
    tree = op.unflatten(jnp.arange(N, dtype=float))
    assert tree["b"].shape == (6, 10) and float(tree["b"][1, 0]) == 30.0
    assert list(op.indices("b")[:2]) == [20, 21]
    assert list(op.indices(["a", 5])) == [*range(20), 5]
    assert list(op.indices(np.array([3, 1]))) == [3, 1]


def test_an_operator_built_inside_jit_gives_the_same_products(problem):
    v = jnp.linspace(-1.0, 1.0, N)

    @jax.jit
    def product(x, precision, v):
        return batching.hessian_operator(_negative_log_posterior, x, precision).mv(v)

    np.testing.assert_allclose(
        product(problem["x"], problem["precision"], v), problem["hessian"] @ v, atol=1e-11
    )


TRACES = [0]  # traces of _counted (a list: the rule reads globals by identity)


def _counted(p, weights):
    TRACES[0] += 1
    return 0.5 * jnp.sum(weights * p["x"] ** 2) + jnp.sum(p["x"] ** 4)


def test_a_new_function_of_the_same_code_at_a_new_point_is_not_traced_again():
    weights = jnp.arange(1.0, 31.0)
    before = TRACES[0]
    for step in range(3):
        x = {"x": jnp.full(30, 0.1 * step)}
        op = batching.hessian_operator(lambda p: _counted(p, weights), x)  # a new lambda
        found = batching.marginal_variances(op, [0, 29], rtol=1e-10)
        expected = 1.0 / (weights[jnp.array([0, 29])] + 12.0 * (0.1 * step) ** 2)
        np.testing.assert_allclose(found.variances, expected, rtol=1e-10)
    assert TRACES[0] - before == 1


def test_new_values_of_captured_arrays_are_never_stale():
    x = {"x": jnp.zeros(4)}
    for scale in (1.0, 2.0, 5.0):
        weights = scale * jnp.arange(1.0, 5.0)
        op = batching.hessian_operator(lambda p, w: _counted(p, w), x, weights)
        np.testing.assert_allclose(op.mv(jnp.ones(4)), weights, rtol=1e-14)
        op = batching.fisher_operator(lambda p, w=weights: jnp.sqrt(w) * p["x"], x)
        np.testing.assert_allclose(op.mv(jnp.ones(4)), weights, rtol=1e-14)


def test_hessian_operator_of_a_vector_output_is_an_error():
    with pytest.raises(ValueError, match="hessian_operator: f must return a scalar"):
        batching.hessian_operator(lambda p: p * 2.0, jnp.ones(3))


def test_operators_name_a_non_float_leaf_by_path():
    with pytest.raises(TypeError, match=r"fisher_operator: x has an integer leaf at \['n'\]"):
        batching.fisher_operator(lambda p: p["a"], {"a": jnp.ones(2), "n": 3})


# --- marginal variances by conjugate gradients --------------------------------------------


@pytest.fixture(scope="module")
def variances(problem):
    """Variances of 63 parameters (a path and indices) at rtol=1e-6."""
    return batching.marginal_variances(problem["H"], ["b", 0, 7, 19], rtol=1e-6)


def test_cg_marginal_variances_equal_the_dense_inverse_diagonal(problem, variances):
    expected = jnp.diag(jnp.linalg.inv(problem["hessian"]))[variances.indices]
    relative = jnp.abs(variances.variances - expected) / expected
    assert variances.variances.shape == (63,)  # 60 + 3
    assert bool(jnp.all(variances.converged))
    assert float(jnp.max(relative)) <= 1e-6  # the requested tolerance
    assert bool(jnp.all(relative <= variances.relative_error_bounds))
    np.testing.assert_allclose(variances.sigmas, jnp.sqrt(expected), rtol=1e-6)


def test_cg_residual_norms_are_those_of_the_solutions(problem, variances):
    hessian = problem["hessian"]
    inverse = jnp.linalg.inv(hessian)
    for k in (0, 40, 62):
        i = int(variances.indices[k])
        assert 0 < float(variances.residual_norms[k]) <= 2e-6 * np.sqrt(N)
        # the bound is ||x|| ||r|| / variance, to first order in r
        x = inverse[:, i]
        bound = float(jnp.linalg.norm(x) * variances.residual_norms[k] / inverse[i, i])
        np.testing.assert_allclose(variances.relative_error_bounds[k], bound, rtol=1e-3)


def test_cg_variances_of_a_path_name_every_scalar_of_the_leaf(variances):
    assert variances.names[:2] == ("b[0,0]", "b[0,1]")
    assert variances.names[-3:] == ("a[0]", "a[7]", "a[19]")
    assert list(variances.indices[-3:]) == [0, 7, 19]


def test_a_loose_tolerance_still_bounds_the_error(problem):
    result = batching.marginal_variances(problem["F"], [3, 50], rtol=1e-2)
    expected = jnp.diag(jnp.linalg.inv(problem["fisher"]))[jnp.array([3, 50])]
    relative = jnp.abs(result.variances - expected) / expected
    assert bool(jnp.all(relative <= result.relative_error_bounds))


def test_cg_that_stops_at_max_steps_warns_and_flags_it(problem):
    with pytest.warns(RuntimeWarning, match=r"did not converge within max_steps=3 .* b\[0,0\]"):
        result = batching.marginal_variances(problem["H"], [20, 21], max_steps=3)
    assert not bool(jnp.any(result.converged))
    assert bool(jnp.all(result.steps == 3))


def test_marginal_variances_compose_with_jit(problem, variances):
    @jax.jit
    def run(x, precision):
        op = batching.hessian_operator(_negative_log_posterior, x, precision)
        return batching.marginal_variances(op, [0, 7], rtol=1e-6).variances

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = run(problem["x"], problem["precision"])
    np.testing.assert_allclose(got, variances.variances[-3:-1], rtol=1e-9)


def test_an_indefinite_hessian_is_detected():
    def saddle(p):
        return 0.5 * jnp.sum(jnp.array([1.0, -2.0, 3.0]) * p**2)

    with pytest.raises(ValueError, match=r"the variance of \[1\] = -0.5 came out non-positive"):
        batching.marginal_variances(batching.hessian_operator(saddle, jnp.zeros(3)), [0, 1, 2])

    @jax.jit
    def traced(x):
        op = batching.hessian_operator(saddle, x)
        return batching.marginal_variances(op, [1]).variances

    with pytest.raises(Exception, match="a variance came out non-positive"):
        traced(jnp.zeros(3))


def test_a_jacobi_preconditioner_gives_the_same_variances_in_fewer_steps(problem):
    scales = jnp.geomspace(0.2, 5.0, N)  # badly scaled parameters
    scaled = problem["hessian"] * scales[:, None] * scales[None, :]
    op = lx.MatrixLinearOperator(scaled, lx.symmetric_tag)
    jacobi = lx.TaggedLinearOperator(
        lx.DiagonalLinearOperator(1.0 / jnp.diag(scaled)), lx.positive_semidefinite_tag
    )
    which = [0, 40, 79]
    expected = jnp.diag(jnp.linalg.inv(scaled))[jnp.array(which)]
    plain = batching.marginal_variances(op, which, rtol=1e-9)
    preconditioned = batching.marginal_variances(op, which, rtol=1e-9, preconditioner=jacobi)
    for found in (plain, preconditioned):
        np.testing.assert_allclose(found.variances, expected, rtol=1e-7)
    assert int(jnp.max(preconditioned.steps)) < int(jnp.max(plain.steps))


def test_a_plain_lineax_operator_takes_flat_indices(problem):
    plain = lx.MatrixLinearOperator(problem["fisher"], lx.symmetric_tag)
    result = batching.marginal_variances(plain, [1, 2], rtol=1e-8)
    assert result.names == ("[1]", "[2]")
    expected = jnp.diag(jnp.linalg.inv(problem["fisher"]))[1:3]
    np.testing.assert_allclose(result.variances, expected, rtol=1e-8)
    with pytest.raises(TypeError, match="the path 'a' needs an operator that knows"):
        batching.marginal_variances(plain, "a")


@pytest.mark.parametrize(
    ("which", "options", "error", "match"),
    [
        (80, {}, ValueError, r"holds the index 80, but the operator has n=80"),
        (-1, {}, ValueError, r"expected indices in \[0, 79\]"),
        ("c", {}, KeyError, r"which names a path that x does not have"),
        (1.5, {}, TypeError, "which must be a flat index, a path"),
        ([], {}, ValueError, "which selects no parameter"),
        (0, {"rtol": 0.0}, ValueError, "rtol must be a finite number > 0"),
        (0, {"rtol": 1.0}, ValueError, r"rtol must be a finite number in \(0, 1\)"),
        (0, {"max_steps": 0}, ValueError, "max_steps must be an integer >= 1"),
        (0, {"batch_size": 2.0}, TypeError, "batch_size must be an integer"),
        (0, {"preconditioner": np.eye(80)}, TypeError, "preconditioner must be a lineax"),
    ],
)
def test_marginal_variances_errors_name_the_argument(problem, which, options, error, match):
    with pytest.raises(error, match=match):
        batching.marginal_variances(problem["H"], which, **options)


def test_an_operator_that_is_not_symmetric_or_not_lineax_is_refused(problem):
    with pytest.raises(ValueError, match="must be tagged symmetric"):
        batching.marginal_variances(lx.MatrixLinearOperator(problem["fisher"]), 0)
    with pytest.raises(TypeError, match="operator must be a lineax linear operator"):
        batching.marginal_variances(problem["fisher"], 0)


# --- Lanczos: the low-rank-plus-diagonal approximation -------------------------------------


@pytest.fixture(scope="module")
def low_rank(problem):
    return batching.low_rank_approximation(problem["H"], 4, order=40, key=1, probes=200)


@needs_matfree
def test_lanczos_eigenpairs_equal_the_dense_leading_eigenpairs(problem, low_rank):
    values, vectors = np.linalg.eigh(np.asarray(problem["hessian"]))
    values, vectors = values[::-1], vectors[:, ::-1]
    np.testing.assert_allclose(low_rank.eigenvalues, values[:4], rtol=1e-9)
    overlaps = np.abs(np.sum(np.asarray(low_rank.eigenvectors) * vectors[:, :4], axis=0))
    np.testing.assert_allclose(overlaps, 1.0, atol=1e-8)
    # every Ritz value lies within its residual norm of an eigenvalue
    assert np.all(np.abs(low_rank.eigenvalues - values[:4]) <= low_rank.residual_norms + 1e-12)
    # the next Ritz value estimates the largest missed eigenvalue from below
    assert values[5] - 1e-9 <= float(low_rank.next_eigenvalue) <= values[4] + 1e-9


@needs_matfree
def test_ritz_residual_norms_equal_the_products(problem, low_rank):
    V, values = low_rank.eigenvectors, low_rank.eigenvalues
    direct = jnp.linalg.norm(problem["hessian"] @ V - V * values, axis=0)
    np.testing.assert_allclose(low_rank.residual_norms, direct, rtol=1e-3, atol=1e-12)


@needs_matfree
def test_the_estimated_diagonal_of_the_remainder_is_within_its_standard_errors(problem, low_rank):
    V, values = low_rank.eigenvectors, low_rank.eigenvalues
    remainder = jnp.diag(problem["hessian"]) - jnp.sum(V**2 * values, axis=1)
    pulls = (low_rank.diagonal - remainder) / low_rank.diagonal_standard_errors
    assert 0.6 <= float(jnp.sqrt(jnp.mean(pulls**2))) <= 1.5
    assert float(jnp.max(jnp.abs(pulls))) < 5.0


@needs_matfree
def test_a_given_diagonal_makes_the_remainder_exact(problem):
    diagonal = jnp.diag(problem["hessian"])
    approx = batching.low_rank_approximation(problem["H"], 4, order=40, key=1, diagonal=diagonal)
    dense = jnp.stack([approx.mv(e) for e in jnp.eye(N)], axis=1)
    np.testing.assert_allclose(jnp.diag(dense), diagonal, atol=1e-10)
    assert bool(jnp.all(approx.diagonal_standard_errors == 0))


@needs_matfree
@pytest.mark.parametrize(
    ("rank", "options", "error", "match"),
    [
        (0, {}, ValueError, r"rank must be an integer in \[1, 79\]"),
        (4, {"order": 4}, ValueError, r"order must be an integer in \[5, 80\]"),
        (4, {"order": 81}, ValueError, r"order must be an integer in \[5, 80\]"),
        (4, {"probes": 1}, ValueError, "probes must be an integer >= 2"),
        (4, {"diagonal": jnp.ones(3)}, ValueError, r"of shape \(80,\), got shape \(3,\)"),
        (4, {"key": "seed"}, TypeError, "key must be a JAX PRNG key"),
    ],
)
def test_low_rank_errors_name_the_argument(problem, rank, options, error, match):
    with pytest.raises(error, match=match):
        batching.low_rank_approximation(problem["H"], rank, **options)


# --- the log-determinant by stochastic Lanczos quadrature ---------------------------------


@needs_matfree
def test_slq_log_determinant_is_within_its_standard_errors_over_seeds(problem):
    exact = float(jnp.linalg.slogdet(problem["hessian"])[1])
    pulls = []
    for seed in range(24):
        estimate = batching.log_determinant(problem["H"], probes=24, order=24, key=seed)
        assert float(estimate.order_change) < 0.05 * float(estimate.standard_error)
        pulls.append((float(estimate.value) - exact) / float(estimate.standard_error))
    pulls = np.array(pulls)
    assert np.max(np.abs(pulls)) < 4.0
    assert 0.6 <= np.sqrt(np.mean(pulls**2)) <= 1.5  # the reported error is calibrated
    assert estimate.probes == 24 and estimate.order == 24


@needs_matfree
def test_the_log_determinant_of_an_indefinite_operator_is_refused():
    def saddle(p):
        return 0.5 * jnp.sum(jnp.linspace(-1.0, 2.0, 10) * p**2)

    with pytest.raises(ValueError, match="log_determinant: the operator is not positive definite"):
        batching.log_determinant(batching.hessian_operator(saddle, jnp.zeros(10)), order=10)


@needs_matfree
@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"probes": 1}, ValueError, "probes must be an integer >= 2"),
        ({"order": 1}, ValueError, r"order must be an integer in \[2, 80\]"),
        ({"order": 81}, ValueError, r"order must be an integer in \[2, 80\]"),
        ({"order": 10.0}, TypeError, "order must be an integer"),
        ({"key": 1.5}, TypeError, "key must be a JAX PRNG key"),
        ({"batch_size": 0}, ValueError, "batch_size must be an integer >= 1"),
    ],
)
def test_log_determinant_errors_name_the_argument(problem, options, error, match):
    with pytest.raises(error, match=match):
        batching.log_determinant(problem["H"], **options)


@needs_matfree
def test_the_readme_example_of_matrix_free_curvature_runs():
    import pathlib
    import re

    readme = pathlib.Path(__file__).parents[2] / "packages" / "zdx-batching" / "README.md"
    blocks = re.findall(r"```python\n(.*?)```", readme.read_text(), re.S)
    (block,) = [b for b in blocks if "hessian_operator" in b]
    namespace: dict = {}
    exec(compile(block, str(readme), "exec"), namespace)
    variances = namespace["var"]
    assert variances.names[:2] == ("flux", "image[0,0]")
    assert bool(jnp.all(variances.converged))
    assert float(namespace["logdet"].order_change) < float(namespace["logdet"].standard_error)
