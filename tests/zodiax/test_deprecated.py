"""The zodiax 0.4 names that 0.5 removed: they work as in 0.4.1 and warn what replaces them."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import zdx_base
from zodiax._deprecated import (
    adam,
    apply_updates,
    boolean_filter,
    covariance_matrix,
    filter_grad,
    filter_jit,
    filter_value_and_grad,
    fisher_matrix,
    get_optimiser,
    scheduler,
    set_array,
    sgd,
)

# Behaviour tests call the deprecated names on purpose; the warnings have their own test.
pytestmark = pytest.mark.filterwarnings(r"ignore:zodiax\.\w+ is deprecated:DeprecationWarning")


class Line(zdx_base.Base):
    a: jax.Array
    b: float


class Model(zdx_base.Base):
    mu: jax.Array
    line: Line
    frozen: jax.Array
    count: int
    label: str = eqx.field(static=True, default="star")


def make_model() -> Model:
    return Model(
        mu=jnp.array([0.3, -0.2, 0.1]),
        line=Line(a=jnp.asarray(1.5), b=0.5),
        frozen=jnp.array([7.0, 8.0]),
        count=3,
    )


# --------------------------------------------------------------------------- warnings


def _fisher_call():
    return fisher_matrix({"x": 1.0}, "x", lambda t: -0.5 * t["x"] ** 2)


def _covariance_call():
    return covariance_matrix({"x": 1.0}, "x", lambda t: -0.5 * t["x"] ** 2)


WARNING_CASES = [
    ("filter_jit", lambda: filter_jit(lambda x: x), r"equinox\.filter_jit"),
    (
        "filter_grad",
        lambda: filter_grad("x"),
        r"equinox\.filter_grad, or jax\.grad of .*model\.set",
    ),
    (
        "filter_value_and_grad",
        lambda: filter_value_and_grad("x"),
        r"equinox\.filter_value_and_grad, or jax\.value_and_grad",
    ),
    ("apply_updates", lambda: apply_updates({"x": 1.0}, {"x": 1.0}), r"equinox\.apply_updates"),
    (
        "get_optimiser",
        lambda: get_optimiser({"x": 1.0}, "x", optax.sgd(0.1)),
        r"optim, state = zodiax\.optimisation\.map_optimisers",
    ),
    (
        "sgd",
        lambda: sgd(0.1, 0),
        r"optax\.sgd\(zodiax\.optimisation\.delay\(lr, start - 1\), momentum=0\.6, nesterov",
    ),
    ("adam", lambda: adam(0.1, 0), r"optax\.adam\(zodiax\.optimisation\.delay\(lr, start - 1\)\)"),
    ("scheduler", lambda: scheduler(0.1, 0), r"zodiax\.optimisation\.delay"),
    ("set_array", lambda: set_array({"x": 1}, "x"), r"model\.set\(paths, model\.get\(paths\)\)"),
    ("boolean_filter", lambda: boolean_filter({"x": 1.0}, "x"), r"zdx_base\.set\("),
    ("fisher_matrix", _fisher_call, r"-H, with H, _ = zodiax\.batching\.hessian"),
    ("covariance_matrix", _covariance_call, r"jax\.numpy\.linalg\.inv\(-H\)"),
]


@pytest.mark.parametrize(
    ("name", "call", "replacement"), WARNING_CASES, ids=[c[0] for c in WARNING_CASES]
)
def test_each_name_warns_once_naming_its_replacement_at_the_callers_line(name, call, replacement):
    pattern = (
        rf"^zodiax\.{name} is deprecated since zodiax 0\.5 and will be removed in a future "
        rf"release; use {replacement}.* instead\.$"
    )
    with pytest.warns(DeprecationWarning, match=pattern) as record:
        call()
    ours = [w for w in record if str(w.message).startswith("zodiax.")]
    assert len(ours) == 1  # sgd and adam do not also warn about scheduler
    assert ours[0].filename == __file__


def test_every_deprecated_name_has_a_warning_test():
    import zodiax._deprecated as deprecated

    assert sorted(deprecated.__all__) == sorted(c[0] for c in WARNING_CASES)


def test_one_table_gives_the_readme_table_and_the_docstring_notes():
    import pathlib

    import zodiax._deprecated as deprecated

    readme = (pathlib.Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert deprecated.migration_table() in readme  # regenerate the README table if not
    assert sorted(deprecated.REPLACEMENTS) == sorted(deprecated.__all__)
    for name in deprecated.__all__:
        doc = getattr(deprecated, name).__doc__
        assert doc.count(".. deprecated:: 0.5") == 1, name
        assert deprecated.REPLACEMENTS[name][1].replace("`", "``") in doc, name


# ------------------------------------------------------------ boolean_filter, set_array


def test_boolean_filter_is_true_exactly_at_the_paths():
    model = make_model()
    flags = boolean_filter(model, ["mu", ["line.b"]])
    assert flags.mu is True and flags.line.b is True
    assert flags.line.a is False and flags.frozen is False and flags.count is False
    assert jax.tree.structure(flags) == jax.tree.structure(model)


def test_boolean_filter_inverse_and_sub_tree_paths():
    model = make_model()
    inverse = boolean_filter(model, "line", inverse=True)
    assert inverse.line is False  # one flag for the whole sub-tree
    assert inverse.mu is True and inverse.frozen is True
    selected, rest = eqx.partition(model, boolean_filter(model, "line"))
    assert selected.mu is None and rest.line.a is None
    assert float(selected.line.a) == 1.5 and selected.line.b == 0.5


def test_boolean_filter_names_a_missing_path():
    with pytest.raises(KeyError, match=r"line\.c"):
        boolean_filter(make_model(), "line.c")


def test_set_array_turns_numbers_at_the_paths_into_float_arrays():
    model = set_array(make_model(), ["count", "line"])
    assert model.count.dtype == jnp.float64 and float(model.count) == 3.0
    assert model.line.b.dtype == jnp.float64 and float(model.line.b) == 0.5
    assert model.label == "star"
    untouched = set_array({"n": 2, "m": 4}, "n")
    assert untouched["m"] == 4 and isinstance(untouched["m"], int)


def test_set_array_keeps_float_dtypes_and_leaves_non_numbers_in_sub_trees():
    tree = {"f32": jnp.ones(2, jnp.float32), "flags": np.array([True, False]), "s": {"k": "x"}}
    out = set_array(tree, ["f32", "flags", "s"])
    assert out["f32"].dtype == jnp.float32
    np.testing.assert_array_equal(out["flags"], [1.0, 0.0])
    assert out["flags"].dtype == jnp.float64 and out["s"] == {"k": "x"}
    everything = set_array({"a": 1, "b": [2, "text"]})
    assert everything["a"].dtype == jnp.float64 and everything["b"][1] == "text"


def test_set_array_refuses_a_path_naming_a_string():
    with pytest.raises(TypeError, match=r"'name'.*str"):
        set_array({"name": "star"}, "name")


# -------------------------------------------------------------- gradients and jit


def _loss(model, scale):
    return scale * (jnp.sum(model.mu**2) + model.line.a * model.line.b + jnp.sum(model.frozen))


def test_filter_grad_differentiates_only_the_named_leaves():
    model = make_model()
    grads = filter_grad(["mu", "line.b"])(_loss)(model, 2.0)
    np.testing.assert_allclose(grads.mu, 4.0 * model.mu, rtol=1e-15)
    np.testing.assert_allclose(grads.line.b, 2.0 * 1.5, rtol=1e-15)
    assert grads.line.a is None and grads.frozen is None and grads.count is None


def test_filter_grad_takes_the_function_directly_and_differentiates_integer_leaves():
    grads = filter_grad("count", lambda m: m.count**2 * m.line.a)(make_model())
    np.testing.assert_allclose(grads.count, 2 * 3 * 1.5, rtol=1e-15)
    assert grads.mu is None


def test_filter_value_and_grad_returns_the_value_and_aux():
    model = make_model()

    @filter_value_and_grad("line.a", has_aux=True)
    def loss(m, scale):
        return _loss(m, scale), "aux"

    (value, aux), grads = loss(model, 3.0)
    np.testing.assert_allclose(value, _loss(model, 3.0), rtol=1e-15)
    assert aux == "aux"
    np.testing.assert_allclose(grads.line.a, 3.0 * 0.5, rtol=1e-15)
    assert grads.mu is None


def test_filter_jit_compiles_once_and_keeps_non_arrays_static():
    traces = []

    @filter_jit
    def scaled(model, how):
        traces.append(how)
        return model.mu * (2.0 if how == "double" else 1.0)

    model = make_model()
    np.testing.assert_allclose(scaled(model, "double"), 2 * model.mu)
    np.testing.assert_allclose(scaled(model.set("mu", model.mu + 1), "double"), 2 * model.mu + 2)
    assert traces == ["double"]
    donating = filter_jit(donate="none")(lambda x: x + 1)
    assert float(donating(jnp.asarray(1.0))) == 2.0


def test_apply_updates_adds_and_skips_none():
    out = apply_updates({"a": jnp.asarray(1.0), "b": 2.0}, {"a": jnp.asarray(0.5), "b": None})
    assert float(out["a"]) == 1.5 and out["b"] == 2.0


# ------------------------------------------------------------------ optimisers


def test_scheduler_is_zero_before_start_and_applies_multipliers():
    schedule = scheduler(0.1, 5, (10, 0.5), (20, 0.1))
    values = [float(schedule(step)) for step in (0, 4, 5, 9, 10, 19, 20, 100)]
    np.testing.assert_allclose(values, [0, 0, 0.1, 0.1, 0.05, 0.05, 0.005, 0.005], rtol=1e-15)
    assert float(scheduler(0.2, 0)(0)) == 0.2


def test_scheduler_equals_the_delay_of_one_step_earlier_that_replaces_it():
    # zodiax.optimisation.delay(lr, start, 1) is optax.linear_schedule(0, lr, 1, start).
    old, new = scheduler(0.1, 5), optax.linear_schedule(0.0, 0.1, 1, 4)
    steps = range(12)
    np.testing.assert_allclose([old(k) for k in steps], [new(k) for k in steps], rtol=1e-15)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((float("nan"), 0), "`lr`"),
        ((0.1, -1), "`start`"),
        ((0.1, 2.5), "`start`"),
        ((0.1, 0, (5,)), r"\(step, multiplier\)"),
        ((0.1, 0, (5, -1.0)), "multiplier"),
    ],
)
def test_scheduler_rejects_bad_arguments(args, match):
    with pytest.raises(ValueError, match=match):
        scheduler(*args)


G_MU = np.array([0.5, -1.0, 2.0])
G_A = -3.0


def _linear_loss(model):
    return jnp.sum(G_MU * model.mu) + G_A * model.line.a + jnp.sum(model.frozen)


@pytest.fixture(scope="module")
def optimised_history():
    """Four steps of the zodiax 0.4 loop with a constant gradient."""
    model = make_model()
    paths = ["mu", "line.a"]
    optim, state = get_optimiser(model, paths, [sgd(0.1, 2), adam(0.01, 0)])
    step_fn = filter_jit(filter_value_and_grad(paths)(_linear_loss))
    history = [model]
    for _ in range(4):
        _, grads = step_fn(model)
        updates, state = optim.update(grads, state)
        model = apply_updates(model, updates)
        history.append(model)
    return history


def test_get_optimiser_leaves_every_other_leaf_unchanged(optimised_history):
    start, end = optimised_history[0], optimised_history[-1]
    np.testing.assert_array_equal(end.frozen, start.frozen)
    assert end.line.b == start.line.b and end.count == start.count and end.label == "star"


def test_get_optimiser_sgd_waits_for_its_start_then_uses_nesterov_momentum(optimised_history):
    mus = [np.asarray(m.mu) for m in optimised_history]
    np.testing.assert_array_equal(mus[1], mus[0])  # steps 0 and 1: zero learning rate
    np.testing.assert_array_equal(mus[2], mus[0])
    # trace_k = g (1 + 0.6 + ... + 0.6^k); the Nesterov update is g + 0.6 trace_k.
    for step in (2, 3):
        trace = G_MU * sum(0.6**j for j in range(step + 1))
        np.testing.assert_allclose(mus[step + 1] - mus[step], -0.1 * (G_MU + 0.6 * trace), 1e-12)


def test_get_optimiser_adam_moves_from_step_zero(optimised_history):
    a = [float(m.line.a) for m in optimised_history]
    # A constant gradient g gives Adam steps of lr * g / (|g| + eps).
    expected = -0.01 * G_A / (abs(G_A) + 1e-8)
    np.testing.assert_allclose(np.diff(a), [expected] * 4, rtol=1e-12)


def test_get_optimiser_shares_one_optimiser_over_nested_paths():
    model = {"a": jnp.asarray(1.0), "b": jnp.asarray(2.0), "c": jnp.asarray(3.0)}
    optim, state = get_optimiser(model, [["a", "b"]], [optax.sgd(1.0)])
    grads = {"a": jnp.asarray(1.0), "b": jnp.asarray(1.0), "c": jnp.asarray(1.0)}
    updates, _ = optim.update(grads, state)
    assert float(updates["a"]) == -1.0 and float(updates["b"]) == -1.0
    assert float(updates["c"]) == 0.0
    single, state = get_optimiser(model, ["a", "c"], optax.sgd(1.0))
    updates, _ = single.update(grads, state)
    assert [float(updates[k]) for k in "abc"] == [-1.0, 0.0, -1.0]


def test_get_optimiser_rejects_bad_input():
    model = {"a": jnp.asarray(1.0), "b": jnp.asarray(2.0)}
    with pytest.raises(ValueError, match=r"2 entries.*1 optimisers"):
        get_optimiser(model, ["a", "b"], [optax.sgd(1.0)])
    with pytest.raises(TypeError, match="optimiser 0"):
        get_optimiser(model, ["a"], ["sgd"])
    with pytest.raises(ValueError, match="'a' is given more than once"):
        get_optimiser(model, ["a", "a"], [optax.sgd(1.0), optax.sgd(1.0)])
    with pytest.raises(KeyError, match="'z'"):
        get_optimiser(model, ["z"], [optax.sgd(1.0)])


# ------------------------------------------------------------------ Fisher matrices

X = np.array([-1.0, 0.0, 0.5, 2.0, 3.0])
SIGMA = 0.7
COV = np.array([[1.0, 0.3, 0.1], [0.3, 2.0, -0.4], [0.1, -0.4, 0.5]])
DRAWS = np.array([[0.2, -0.1, 0.0], [0.5, 0.3, -0.2], [0.1, 0.0, 0.4], [-0.3, 0.2, 0.1]])


def gaussian_loglike(model, x, y, draws):
    """A straight line through (x, y) with noise SIGMA, and draws of a Gaussian mean mu."""
    line = model.line.a * x + model.line.b
    resid = draws - model.mu[None, :]
    return -0.5 * jnp.sum(((y - line) / SIGMA) ** 2) - 0.5 * jnp.sum(
        resid * jnp.linalg.solve(COV, resid.T).T
    )


def analytic_fisher():
    """Rows mu[0..2], line.a, line.b: the precision of the Gaussian likelihood."""
    design = np.stack([X, np.ones_like(X)], axis=1)
    fisher = np.zeros((5, 5))
    fisher[:3, :3] = len(DRAWS) * np.linalg.inv(COV)
    fisher[3:, 3:] = design.T @ design / SIGMA**2
    return fisher


DATA = (X, 1.5 * X + 0.5, DRAWS)


def test_fisher_matrix_of_a_gaussian_is_its_precision():
    fisher = fisher_matrix(make_model(), ["mu", "line.a", "line.b"], gaussian_loglike, *DATA)
    np.testing.assert_allclose(fisher, analytic_fisher(), rtol=1e-12, atol=1e-12)


def test_fisher_matrix_follows_the_order_of_the_paths_and_passes_keywords():
    def loglike(model, *, data):
        return gaussian_loglike(model, *data)

    fisher = fisher_matrix(make_model(), ["line.b", ["mu"], "line.a"], loglike, data=DATA)
    order = [4, 0, 1, 2, 3]
    expected = analytic_fisher()[np.ix_(order, order)]
    np.testing.assert_allclose(fisher, expected, rtol=1e-12, atol=1e-12)


def test_fisher_matrix_save_memory_gives_the_same_matrix():
    paths = ["mu", "line.a", "line.b"]
    fast = fisher_matrix(make_model(), paths, gaussian_loglike, *DATA)
    small = fisher_matrix(make_model(), paths, gaussian_loglike, *DATA, save_memory=True)
    np.testing.assert_allclose(small, fast, rtol=1e-12, atol=1e-12)


def test_fisher_matrix_shape_dict_differentiates_a_common_shift():
    paths = ["mu", "line.a"]
    fisher = fisher_matrix(make_model(), paths, gaussian_loglike, *DATA, shape_dict={"mu": (1,)})
    full = analytic_fisher()
    ones = np.ones(3)
    expected = np.array([[ones @ full[:3, :3] @ ones, 0.0], [0.0, full[3, 3]]])
    np.testing.assert_allclose(fisher, expected, rtol=1e-12, atol=1e-12)
    unused = fisher_matrix(make_model(), "line.a", gaussian_loglike, *DATA, shape_dict={"mu": 1})
    np.testing.assert_allclose(unused, [[full[3, 3]]], rtol=1e-12)


def test_fisher_matrix_shape_dict_broadcasts_onto_matrices():
    data = np.arange(6.0).reshape(2, 3)

    def loglike(tree):
        return -0.5 * jnp.sum((tree["w"] - data) ** 2)

    tree = {"w": jnp.zeros((2, 3))}
    for shape, expected in [((), [[6.0]]), ((1, 3), 2.0 * np.eye(3)), ((2, 1), 3.0 * np.eye(2))]:
        fisher = fisher_matrix(tree, "w", loglike, shape_dict={"w": shape})
        np.testing.assert_allclose(fisher, expected, rtol=1e-12, atol=1e-12)


_TRACES: list = []  # module level: read by identity, so appending does not change loglike


def test_fisher_matrix_compiles_once_for_one_loglike_and_shapes():
    traces = _TRACES

    def loglike(model, *data):
        _TRACES.append(None)
        return gaussian_loglike(model, *data)

    paths = ["mu", "line.a"]
    first = fisher_matrix(make_model(), paths, loglike, *DATA)
    count = len(traces)
    second = fisher_matrix(make_model().set("mu", jnp.ones(3)), paths, loglike, *DATA)
    assert len(traces) == count  # no new trace: the compiled Hessian was reused
    np.testing.assert_allclose(second, first, rtol=1e-12)  # a quadratic log-likelihood


def test_fisher_matrix_of_a_poisson_log_link_matches_its_closed_form():
    rate_x = np.array([0.0, 0.5, 1.0, 1.5])
    counts = np.array([1.0, 3.0, 2.0, 6.0])

    def poisson_loglike(model):
        log_rate = model["a"] * rate_x + model["b"]
        return jnp.sum(counts * log_rate - jnp.exp(log_rate))

    params = {"a": 0.8, "b": -0.1}
    rate = np.exp(0.8 * rate_x - 0.1)
    design = np.stack([rate_x, np.ones_like(rate_x)], axis=1)
    expected = design.T @ (rate[:, None] * design)
    fisher = fisher_matrix(params, ["a", "b"], poisson_loglike)
    np.testing.assert_allclose(fisher, expected, rtol=1e-12)
    np.testing.assert_allclose(
        covariance_matrix(params, ["a", "b"], poisson_loglike), np.linalg.inv(expected), 1e-12
    )


def test_covariance_matrix_is_the_inverse_of_the_precision():
    paths = ["mu", "line.a", "line.b"]
    cov = covariance_matrix(make_model(), paths, gaussian_loglike, *DATA, save_memory=True)
    np.testing.assert_allclose(cov, np.linalg.inv(analytic_fisher()), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(cov[:3, :3], COV / len(DRAWS), rtol=1e-12, atol=1e-14)


def test_fisher_matrix_works_under_jit():
    @jax.jit
    def fisher_of(mu):
        model = make_model().set("mu", mu)
        return fisher_matrix(model, ["mu", "line.a", "line.b"], gaussian_loglike, *DATA)

    np.testing.assert_allclose(fisher_of(jnp.zeros(3)), analytic_fisher(), rtol=1e-12, atol=1e-12)


def test_covariance_matrix_refuses_an_unconstrained_parameter():
    with pytest.raises(ValueError, match="singular"):
        covariance_matrix(make_model(), ["mu", "frozen"], gaussian_loglike, *DATA)


@pytest.mark.parametrize(
    ("parameters", "loglike", "kwargs", "error", "match"),
    [
        ("mu", lambda m: m.mu, {}, TypeError, "scalar"),
        ("mu", lambda m: jnp.sum(jnp.sqrt(m.mu)), {}, ValueError, "non-finite"),
        ("mu", lambda m: jnp.sum(m.mu), {"shape_dict": {"mu": (2,)}}, ValueError, r"\(2,\)"),
        ("line", lambda m: m.line.a, {}, TypeError, "'line'.*not an array"),
        (["mu", "mu"], lambda m: jnp.sum(m.mu), {}, ValueError, "more than once"),
        ([], lambda m: jnp.sum(m.mu), {}, ValueError, "empty"),
        ("sigma", lambda m: jnp.sum(m.mu), {}, KeyError, "sigma"),
    ],
)
def test_fisher_matrix_rejects_bad_input(parameters, loglike, kwargs, error, match):
    with pytest.raises(error, match=match):
        fisher_matrix(make_model(), parameters, loglike, **kwargs)


# ------------------------------------------------------------ the shims themselves


def test_the_shims_keep_the_signatures_of_the_zodiax_04_functions():
    import inspect

    assert list(inspect.signature(fisher_matrix).parameters) == [
        "pytree",
        "parameters",
        "loglike_fn",
        "loglike_args",
        "shape_dict",
        "save_memory",
        "loglike_kwargs",
    ]
    assert list(inspect.signature(filter_grad).parameters) == ["parameters", "fun", "grad_kwargs"]
    assert fisher_matrix.__name__ == "fisher_matrix" and "shape_dict" in fisher_matrix.__doc__


@pytest.mark.parametrize("function", [scheduler, sgd, adam], ids=lambda f: f.__name__)
def test_schedule_errors_name_the_function_and_the_argument(function):
    with pytest.raises(ValueError, match=rf"^{function.__name__}\(\): `start`.* got -1\."):
        function(0.1, -1)
    with pytest.raises(ValueError, match=rf"^{function.__name__}\(\): `lr`"):
        function(float("inf"), 0)


def test_get_optimiser_takes_path_objects_whose_keys_hold_dots():
    model = {"m1.coefficients": {"x": jnp.asarray(1.0)}, "y": jnp.asarray(2.0)}
    path = zdx_base.Path("m1.coefficients", "x")
    optim, state = get_optimiser(model, [path], [optax.sgd(1.0)])
    grads = {"m1.coefficients": {"x": jnp.asarray(1.0)}, "y": jnp.asarray(1.0)}
    updates, _ = optim.update(grads, state)
    assert float(updates["m1.coefficients"]["x"]) == -1.0 and float(updates["y"]) == 0.0


def test_fisher_matrix_differentiates_integer_and_python_number_leaves():
    tree = {"n": 3, "x": 0.5, "name": "star"}

    def loglike(t):
        return -0.5 * (t["n"] - 2.0) ** 2 / 0.25 - 0.5 * (t["x"] * 2.0) ** 2

    fisher = fisher_matrix(tree, ["n", "x"], loglike)
    np.testing.assert_allclose(fisher, np.diag([4.0, 4.0]), rtol=1e-12, atol=1e-12)
    with pytest.raises(TypeError, match=r"'name' is a str"):
        fisher_matrix(tree, "name", loglike)


def test_a_path_given_twice_in_two_forms_is_refused():
    tree = {"a": {"b": jnp.asarray(1.0)}}
    with pytest.raises(ValueError, match="more than once"):
        fisher_matrix(tree, ["a.b", zdx_base.Path("a", "b")], lambda t: -(t["a"]["b"] ** 2))
    with pytest.raises(ValueError, match="more than once"):
        get_optimiser(tree, ["a.b", zdx_base.Path("a", "b")], [optax.sgd(1.0), optax.sgd(1.0)])


def test_get_optimiser_ignores_leaves_that_are_not_numbers():
    model = {"a": 1.0, "name": "star", "fn": len, "w": jnp.ones(2)}
    optim, state = get_optimiser(model, ["a"], [optax.sgd(0.5)])
    grads = filter_grad("a", lambda m: m["a"] ** 2 * m["fn"](m["name"]))(model)
    updates, _ = optim.update(grads, state)
    out = apply_updates(set_array(model, "a"), updates)
    assert float(out["a"]) == 1.0 - 0.5 * 2 * 1.0 * 4
    assert out["name"] == "star" and out["fn"] is len
    np.testing.assert_array_equal(out["w"], jnp.ones(2))
