"""Specifications of the path API: input styles, resolution order and errors."""

import equinox as eqx
import jax.numpy as jnp
import pytest

import zdx_base
from zdx_base import Base, Path


class Layer(Base):
    coefficients: jnp.ndarray
    name: str


class Aperture(Base):
    transmission: jnp.ndarray
    name: str


class System(Base):
    """Delegates unknown attributes to its layers, as dLux's optical systems do."""

    layers: dict
    stack: list
    scale: jnp.ndarray

    def __getattr__(self, key):
        layers = self.__dict__.get("layers", {})
        if key in layers:
            return layers[key]
        for layer in layers.values():
            if hasattr(layer, key):
                return getattr(layer, key)
        raise AttributeError(f"{type(self).__name__} has no attribute {key!r}")


@pytest.fixture
def system():
    return System(
        layers={"wfe": Layer(jnp.zeros(3), "zernike"), "aperture": Aperture(jnp.ones(2), "disc")},
        stack=[jnp.array(1.0), (jnp.array(2.0), jnp.array(3.0))],
        scale=jnp.array(0.5),
    )


def test_paths_resolve_through_fields_getattr_dicts_and_lists(system):
    assert float(system.get("scale")) == 0.5
    assert system.get("layers.wfe.name", to_array=False) == "zernike"
    assert system.get("wfe.name", to_array=False) == "zernike"  # through System.__getattr__
    assert float(system.get("stack.1.0")) == 2.0
    assert float(system.get("stack.-1.1")) == 3.0


def test_set_through_getattr_changes_the_stored_layer(system):
    new = system.set("wfe.coefficients", jnp.arange(3.0))
    assert jnp.array_equal(new.layers["wfe"].coefficients, jnp.arange(3.0))
    assert jnp.array_equal(system.layers["wfe"].coefficients, jnp.zeros(3))  # unchanged
    # the shortcut straight to a layer's attribute works too, as in dLux
    new = system.set("coefficients", jnp.ones(3))
    assert jnp.array_equal(new.layers["wfe"].coefficients, jnp.ones(3))


def test_set_replaces_list_entries_and_subtrees(system):
    new = system.set("stack.1.0", 9.0)
    assert new.stack[1][0] == 9.0 and isinstance(new.stack[1], tuple)
    new = system.set("layers.aperture", Aperture(jnp.zeros(4), "square"))
    assert new.aperture.name == "square"


def test_missing_path_names_path_step_and_what_is_available(system):
    with pytest.raises(KeyError) as info:
        system.get("layers.mirror.coefficients")
    message = str(info.value)
    assert "layers.mirror.coefficients" in message
    assert "'mirror'" in message
    assert "'wfe'" in message and "'aperture'" in message
    with pytest.raises(KeyError, match=r"indices 0\.\.1"):
        system.get("stack.2")
    with pytest.raises(KeyError, match="'coefficients', 'name'"):
        zdx_base.get(system.layers, "wfe.coeffs")


def test_methods_are_not_parameters(system):
    with pytest.raises(KeyError):
        system.get("set")


def test_get_styles():
    tree = {"a": jnp.ones(2), "b": {"c": 2, "d": "text"}, "e": [1.5]}
    assert jnp.array_equal(zdx_base.get(tree, "a"), jnp.ones(2))
    values = zdx_base.get(tree, ["a", ["b.c", "e.0"]])
    assert [v.tolist() for v in values] == [[1.0, 1.0], 2.0, 1.5]
    assert zdx_base.get(tree, ["b.c"]).dtype == jnp.zeros(()).dtype  # one path: the value
    as_dict = zdx_base.get(tree, ("b.c", "e.0"), as_dict=True)
    assert list(as_dict) == ["b.c", "e.0"]
    # as zodiax 0.5: integers become float arrays, strings cannot, to_array=False keeps both
    assert jnp.issubdtype(zdx_base.get(tree, "b.c").dtype, jnp.floating)
    with pytest.raises(ValueError, match=r"get\(\): the value at 'b\.d' is a str"):
        zdx_base.get(tree, "b.d")
    assert zdx_base.get(tree, "b.d", to_array=False) == "text"
    assert zdx_base.get(tree, "b.c", to_array=False) == 2


def test_path_objects_address_keys_containing_dots():
    tree = {"m1.coefficients": {"x": 1.0}, "m1": {"coefficients": {"x": 2.0}}}
    assert float(zdx_base.get(tree, Path("m1.coefficients", "x"))) == 1.0
    assert float(zdx_base.get(tree, "m1.coefficients.x")) == 2.0
    new = zdx_base.set(tree, {Path("m1.coefficients", "x"): 5.0})
    assert new["m1.coefficients"]["x"] == 5.0 and new["m1"]["coefficients"]["x"] == 2.0
    assert zdx_base.get(tree, [Path("m1.coefficients", "x"), "m1.coefficients.x"]) == [1.0, 2.0]


def test_set_styles_agree():
    tree = {"a": 0.0, "b": {"c": 0.0, "d": 0.0}}
    expected = {"a": 1.0, "b": {"c": 2.0, "d": 0.0}}
    assert zdx_base.set(tree, ["a", "b.c"], [1.0, 2.0]) == expected
    assert zdx_base.set(tree, ["a", ["b.c"]], [1.0, [2.0]]) == expected
    assert zdx_base.set(tree, {"a": 1.0, "b.c": 2.0}) == expected
    assert zdx_base.set(tree, a=1.0, **{"b.c": 2.0}) == expected
    assert zdx_base.set(tree, "a", 1.0) == {"a": 1.0, "b": {"c": 0.0, "d": 0.0}}
    # one value broadcast to every path, and a tuple key for several paths
    assert zdx_base.set(tree, ["a", "b.c", "b.d"], 3.0) == {"a": 3.0, "b": {"c": 3.0, "d": 3.0}}
    assert zdx_base.set(tree, {("a", "b.d"): 4.0}) == {"a": 4.0, "b": {"c": 0.0, "d": 4.0}}


def test_set_accepts_none_and_back():
    tree = {"a": 1.0, "b": 2.0}
    cleared = zdx_base.set(tree, "a", None)
    assert cleared["a"] is None
    assert zdx_base.set(cleared, "a", 3.0)["a"] == 3.0


def test_input_errors():
    tree = {"a": 0.0, "b": 0.0}
    with pytest.raises(TypeError, match="one style"):
        zdx_base.set(tree, "a", 1.0, b=2.0)
    with pytest.raises(TypeError, match="mapping"):
        zdx_base.set(tree, {"a": 1.0}, [2.0])
    with pytest.raises(TypeError, match="no value"):
        zdx_base.set(tree, "a")
    with pytest.raises(ValueError, match=r"2 paths .* 3 values"):
        zdx_base.set(tree, ["a", "b"], [1.0, 2.0, 3.0])
    with pytest.raises(TypeError, match="got 3 of type int"):
        zdx_base.get(tree, 3)
    with pytest.raises(ValueError, match="empty step"):
        zdx_base.get(tree, "a..b")


@pytest.mark.parametrize(
    "operation, value, expected",
    [
        ("add", 2.0, [3.0, 6.0]),
        ("multiply", 2.0, [2.0, 8.0]),
        ("divide", 2.0, [0.5, 2.0]),
        ("power", 2.0, [1.0, 16.0]),
        ("min", 2.0, [1.0, 2.0]),
        ("max", 2.0, [2.0, 4.0]),
    ],
)
def test_arithmetic(operation, value, expected):
    tree = Layer(jnp.array([1.0, 4.0]), "x")
    method_result = getattr(tree, operation)("coefficients", value)
    function_result = getattr(zdx_base, operation)(tree, coefficients=value)
    assert method_result.coefficients.tolist() == expected
    assert eqx.tree_equal(method_result, function_result)


def test_functions_work_on_objects_of_other_libraries():
    """Named tuples (as optax states are) and plain classes that are not equinox modules."""
    from typing import NamedTuple

    class TraceState(NamedTuple):
        trace: dict

    class Holder:
        def __init__(self, state):
            self.state = state

    state = (TraceState({"w": jnp.zeros(2)}), ())
    assert jnp.array_equal(zdx_base.get(state, "0.trace.w"), jnp.zeros(2))
    new = zdx_base.set(state, "0.trace.w", jnp.ones(2))
    assert isinstance(new[0], TraceState)
    assert jnp.array_equal(new[0].trace["w"], jnp.ones(2))
    assert jnp.array_equal(zdx_base.get(Holder(new), "state.0.trace.w"), jnp.ones(2))
