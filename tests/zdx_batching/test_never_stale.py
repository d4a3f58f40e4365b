"""Never stale: whatever the callable reads is changed between calls, and every result
still equals a fresh trace (jax.hessian, jax.jacfwd, J^T J) of the callable as it is now.

Each scenario builds a callable that reads a data vector, a scale (a Python float) and
an integer power through one kind of capture (a bound method of a plain object, a class
attribute, a closure over a dict, functools.partial, nested closures, an equinox module,
a dataclass method, a rebound closure variable). Hypothesis draws a scenario and a
sequence of changes to that state, and every call of every transform is compared with a
fresh computation. Under the reuse rule (``zdx_batching.capture``), a callable whose
captures are closures, containers, ``functools.partial`` and pytrees such as an equinox
module runs its program again when only array values change (in place or new arrays of
the same shape); one that reads a plain object or a class (whose state lives in a
``__dict__`` the rule does not walk) is traced again at every call.
"""

from __future__ import annotations

import dataclasses
import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.flatten_util import ravel_pytree

import zdx_batching as batching

X = {"a": jnp.array([0.3, -0.7]), "b": jnp.array(1.4)}  # n = 3
V = jnp.array([0.5, -1.0, 2.0])


def residuals(p, data, scale, power):
    """A vector function of the parameters reading the three pieces of state."""
    return scale * (p["a"] * p["b"] - data) ** power + jnp.sin(p["a"]) * p["b"] ** 2


def as_loss(r):
    return 0.5 * jnp.sum(r**2)


def identity(r):
    return r


# --- scenarios: each returns (callable, change(what, value)) ------------------------------


def change_attributes(target, index):
    """``change`` for state kept as attributes of ``target`` (an object or a class): new
    data, the data written in place at ``index``, or a new scale or power."""

    def change(what, value):
        if what == "data":
            target.data = np.array([value, -value])
        elif what == "data_in_place":
            target.data[index] = value
        else:
            setattr(target, what, value)

    return change


def bound_method(reduce):
    class Model:
        def __init__(self):
            self.data = np.array([0.1, 0.2])
            self.scale = 2.0
            self.power = 2

        def __call__(self, p):
            return reduce(residuals(p, self.data, self.scale, self.power))

    model = Model()
    return model.__call__, change_attributes(model, 0)


def class_attribute(reduce):
    class Model:
        scale = 2.0
        power = 2
        data = np.array([0.1, 0.2])

        def nll(self, p):
            return reduce(residuals(p, self.data, self.scale, self.power))

    return Model().nll, change_attributes(Model, 1)


def closure_over_dict(reduce):
    config = {"data": np.array([0.1, 0.2]), "scale": 2.0, "power": 2}

    def f(p):
        return reduce(residuals(p, config["data"], config["scale"], config["power"]))

    def change(what, value):
        if what == "data":
            config["data"] = np.array([value, -value])
        elif what == "data_in_place":
            config["data"][0] = value
        else:
            config[what] = value

    return f, change


def partial_arguments(reduce):
    data = np.array([0.1, 0.2])
    state = {"scale": 2.0, "power": 2}

    def loss(p, data, scale, power):
        return reduce(residuals(p, data, scale, power))

    holder = [functools.partial(loss, data=data, scale=2.0, power=2)]

    def change(what, value):
        nonlocal data
        if what == "data":
            data = np.array([value, -value])
        elif what == "data_in_place":
            data[0] = value
        else:
            state[what] = value
        holder[0] = functools.partial(loss, data=data, **state)

    return (lambda p: holder[0](p)), change


def nested_callables(reduce):
    class Settings:
        def __init__(self):
            self.scale = 2.0
            self.power = 2

    settings_ = Settings()
    data = [np.array([0.1, 0.2])]

    def inner(p):
        return residuals(p, data[0], settings_.scale, settings_.power)

    def outer(p):
        return reduce(inner(p))

    def change(what, value):
        if what == "data":
            data[0] = np.array([value, -value])
        elif what == "data_in_place":
            data[0][1] = value
        else:
            setattr(settings_, what, value)

    return outer, change


class ModuleModel(eqx.Module):
    data: np.ndarray
    scale: float
    power: int = eqx.field(static=True)
    reduce: object = eqx.field(static=True)

    def __call__(self, p):
        return self.reduce(residuals(p, self.data, self.scale, self.power))


def equinox_module(reduce):
    holder = [ModuleModel(np.array([0.1, 0.2]), 2.0, 2, reduce)]

    def change(what, value):
        model = holder[0]
        if what == "data":
            holder[0] = eqx.tree_at(lambda m: m.data, model, np.array([value, -value]))
        elif what == "data_in_place":
            model.data[0] = value
        elif what == "scale":
            holder[0] = eqx.tree_at(lambda m: m.scale, model, value)
        else:
            holder[0] = ModuleModel(model.data, model.scale, value, reduce)

    return (lambda p: holder[0](p)), change


@dataclasses.dataclass
class DataclassModel:
    data: np.ndarray
    scale: float
    power: int
    reduce: object

    def nll(self, p):
        return self.reduce(residuals(p, self.data, self.scale, self.power))


def dataclass_method(reduce):
    model = DataclassModel(np.array([0.1, 0.2]), 2.0, 2, reduce)
    return model.nll, change_attributes(model, 1)


def rebound_variables(reduce):
    data, scale, power = jnp.array([0.1, 0.2]), 2.0, 2

    def f(p):
        return reduce(residuals(p, data, scale, power))

    def change(what, value):
        nonlocal data, scale, power
        if what in ("data", "data_in_place"):  # JAX arrays are immutable: a new one
            data = jnp.array([value, -value])
        elif what == "scale":
            scale = value
        else:
            power = value

    return f, change


SCENARIOS = {
    fn.__name__: fn
    for fn in (
        bound_method,
        class_attribute,
        closure_over_dict,
        partial_arguments,
        nested_callables,
        equinox_module,
        dataclass_method,
        rebound_variables,
    )
}

# The scenarios whose captures the rule describes (closures, containers, partial, an
# equinox module); the others read a plain object or a class.
REUSABLE = {"closure_over_dict", "partial_arguments", "equinox_module", "rebound_variables"}


def test_the_rule_describes_exactly_the_reusable_scenarios():
    for name, scenario in SCENARIOS.items():
        f, _ = scenario(as_loss)
        assert batching.capture(f).reusable == (name in REUSABLE), name


# --- fresh references ---------------------------------------------------------------------


def fresh(transform, f):
    x_flat, unravel = ravel_pytree(X)
    flat = lambda z: f(unravel(z))  # noqa: E731
    if transform == "hessian":
        return jax.hessian(flat)(x_flat)
    if transform == "hessian_diagonal":
        return jnp.diag(jax.hessian(flat)(x_flat))
    if transform == "hvp":
        return jax.hessian(flat)(x_flat) @ V
    J = jax.jacfwd(flat)(x_flat)
    return J if transform == "jacobian" else J.T @ J


def ours(transform, f):
    if transform == "hvp":
        return batching.hvp(f, X, V)
    return getattr(batching, transform)(f, X)[0]


TRANSFORMS = ("hessian", "jacobian", "fisher", "hessian_diagonal", "hvp")

CHANGES = st.one_of(
    st.tuples(st.just("data"), st.floats(-2.0, 2.0)),
    st.tuples(st.just("data_in_place"), st.floats(-2.0, 2.0)),
    st.tuples(st.just("scale"), st.sampled_from([0.5, 3.0])),
    st.tuples(st.just("power"), st.sampled_from([1, 3])),
)


def check(transform, f):
    expected = fresh(transform, f)
    got = ours(transform, f)
    np.testing.assert_allclose(np.asarray(got), np.asarray(expected), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("transform", TRANSFORMS)
@settings(max_examples=12, deadline=None)
@given(
    scenario=st.sampled_from(sorted(SCENARIOS)),
    changes=st.lists(CHANGES, min_size=1, max_size=3),
)
def test_every_result_equals_a_fresh_trace_after_any_change(transform, scenario, changes):
    reduce = identity if transform in ("jacobian", "fisher") else as_loss
    f, change = SCENARIOS[scenario](reduce)
    check(transform, f)
    for what, value in changes:
        change(what, value)
        misses = batching.cache_info()["misses"]
        check(transform, f)
        if scenario not in REUSABLE:  # cannot be proven unchanged: traced again
            assert batching.cache_info()["misses"] > misses, (scenario, what)
        elif what == "data_in_place":  # only array values changed: the same program
            assert batching.cache_info()["misses"] == misses, (scenario, what)


@pytest.mark.parametrize("scenario", sorted(REUSABLE))
def test_an_unchanged_callable_runs_its_program_again(scenario):
    f, _ = SCENARIOS[scenario](as_loss)
    first = batching.hessian(f, X)[0]
    misses = batching.cache_info()["misses"]
    again = batching.hessian(f, X)[0]
    assert batching.cache_info()["misses"] == misses
    np.testing.assert_array_equal(np.asarray(again), np.asarray(first))


def test_the_example_of_the_issue():
    class Model:
        def __init__(self, data):
            self.data = data

        def nll(self, p):
            return 0.5 * jnp.sum((p["a"] - self.data) ** 2 * p["b"] ** 2)

    m = Model(np.array([1.0, 2.0]))
    x = {"a": jnp.zeros(2), "b": jnp.array(2.0)}
    assert float(batching.hessian(m.nll, x)[0][2, 2]) == pytest.approx(5.0)
    m.data = np.array([10.0, 20.0])
    assert float(batching.hessian(m.nll, x)[0][2, 2]) == pytest.approx(500.0)
    m.data[0] = 0.0
    assert float(batching.hessian(m.nll, x)[0][2, 2]) == pytest.approx(400.0)


class _Opaque:
    """State kept outside ``__dict__`` (slots): cannot be compared, so never cached."""

    __slots__ = ("data",)

    def __init__(self, data):
        self.data = data


def test_state_that_cannot_be_described_is_traced_again_every_time():
    holder = _Opaque(np.array([1.0, 2.0]))
    traces = [0]

    def f(p):
        traces[0] += 1
        return jnp.sum((p["a"] - holder.data) ** 2) * p["b"] ** 2

    H1 = batching.hessian(f, X)[0]
    holder.data = np.array([5.0, -5.0])
    H2 = batching.hessian(f, X)[0]
    np.testing.assert_allclose(np.asarray(H2), np.asarray(fresh("hessian", f)), rtol=1e-12)
    assert not np.allclose(np.asarray(H1), np.asarray(H2))
    assert traces[0] >= 2


def test_a_counter_the_function_keeps_on_self_does_not_hide_a_data_change():
    class Model:
        def __init__(self):
            self.calls = 0
            self.offset = 1.0

        def nll(self, p):
            self.calls += 1
            return jnp.sum((p["a"] - self.offset) ** 2) * p["b"] ** 2

    m = Model()
    batching.hessian(m.nll, X)
    batching.hessian(m.nll, X)
    m.offset = 4.0
    np.testing.assert_allclose(
        np.asarray(batching.hessian(m.nll, X)[0]), np.asarray(fresh("hessian", m.nll)), rtol=1e-12
    )


def test_an_object_that_refers_to_itself_is_traced_again_rather_than_followed_forever():
    class Node:
        def __init__(self):
            self.me = self
            self.offset = 1.0

        def nll(self, p):
            return jnp.sum((p["a"] - self.offset) ** 2) * p["b"] ** 2

    node = Node()
    batching.hessian(node.nll, X)
    node.offset = -2.0
    np.testing.assert_allclose(
        np.asarray(batching.hessian(node.nll, X)[0]),
        np.asarray(fresh("hessian", node.nll)),
        rtol=1e-12,
    )
