"""Behaviours that zodiax 0.5.0 users rely on, each checked against 0.5.0 itself.

The differential suite (tests/differential) compares many generated cases with 0.5.0; these
are the named cases, written out as a specification.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import zdx_base
from zdx_base import Base, Path


class Model(Base):
    a: object
    b: object
    n: object
    label: str = "psf"
    extra: dict = eqx.field(default_factory=lambda: {"x": 1, "y": [1.0, np.float32(2.0)]})


@pytest.fixture
def model():
    return Model(1.0, 2.0, 3)


def test_a_one_element_value_list_is_given_to_every_path(model):
    new = model.set(["a", "b"], [5.0])
    assert (new.a, new.b, new.n) == (5.0, 5.0, 3)


def test_one_value_per_nested_group_of_paths(model):
    new = model.set([["a", "b"], "n"], [1.5, 7])
    assert (new.a, new.b, new.n) == (1.5, 1.5, 7)
    new = model.set((("a", "b"), "n"), ([1.5], 7))  # a one-element list inside a group too
    assert (new.a, new.b, new.n) == (1.5, 1.5, 7)
    new = model.set([["a", "b"], "n"], [[1.5, 2.5], 7])  # or one value per path of the group
    assert (new.a, new.b, new.n) == (1.5, 2.5, 7)


def test_values_that_match_no_grouping_are_refused(model):
    with pytest.raises(ValueError, match=r"set\(\) got 2 paths \['a', 'b'\] but 3 values"):
        model.set([["a", "b"], "n"], [[1.5, 2.5, 3.5], 7])
    with pytest.raises(ValueError, match="1 paths"):
        model.set(["a"], [1.0, 2.0])


def test_a_path_named_twice_is_updated_once_with_its_last_value(model):
    assert Model(10.0, 2.0, 3).add(["a", "a"], 1.0).a == 11.0
    assert model.multiply(["a", "b", "a"], [2.0, 3.0, 4.0]).a == 4.0
    assert model.add([["a", "b"], "a"], [1.0, 5.0]).a == 6.0
    assert model.add({"a": 1.0, ("a", "b"): 2.0}).a == 3.0
    assert model.add(["a", Path("a")], 1.0).a == 2.0  # the same path written two ways


def test_every_path_must_exist_before_any_value_is_combined(model):
    # "extra" + 1.0 would raise TypeError, but the missing path is reported first
    with pytest.raises(KeyError, match="missing"):
        model.add(["extra", "missing"], 1.0)
    with pytest.raises(TypeError):
        model.add(["extra", "a"], 1.0)


def test_a_value_later_replaced_for_the_same_path_is_still_combined(model):
    # zodiax 0.5 combines every pair before keeping the last one for a path
    with pytest.raises(TypeError):
        model.min(["a", "a"], ["text", 2.0])
    assert float(model.min(["a", "a"], [0.5, 2.0]).a) == 1.0


def test_paths_that_overlap_are_refused(model):
    with pytest.raises(ValueError, match=r"set\(\): the paths 'extra' and 'extra.x' overlap"):
        model.set(["extra.x", "extra"], [2, {"x": 3}])
    with pytest.raises(ValueError, match="overlap"):
        model.set({"extra": {}, "extra.y.0": 1.0})
    with pytest.raises(ValueError, match="overlap"):
        model.set(extra={"x": 0}, **{"extra.y": [0.0]})
    # sibling paths that share a prefix do not overlap
    new = model.set(["extra.x", "extra.y.1"], [5, 6.0])
    assert new.extra == {"x": 5, "y": [1.0, 6.0]}


def test_get_returns_strongly_typed_default_float_arrays(model):
    for path in ("a", "n"):
        value = model.get(path)
        assert value.dtype == jnp.float64 and not value.aval.weak_type
    single = Model(np.float32(1.0), jnp.float32(2.0), jnp.arange(3))
    for path in ("a", "b", "n"):
        assert single.get(path).dtype == jnp.float64  # float32 and integer leaves cast up
    assert model.get("a", to_array=False) == 1.0  # unchanged when asked


def test_get_of_a_sub_tree_converts_its_leaves(model):
    extra = model.get("extra")
    assert set(extra) == {"x", "y"}
    for leaf in (extra["x"], *extra["y"]):
        assert isinstance(leaf, jax.Array) and leaf.dtype == jnp.float64
    assert model.get("extra", to_array=False) is model.extra


def test_get_of_a_string_raises_value_error_naming_the_path(model):
    with pytest.raises(ValueError, match="'label' is a str"):
        model.get("label")
    assert model.get("label", to_array=False) == "psf"


def test_get_keeps_complex_leaves_complex():
    # zodiax 0.5 drops the imaginary part of complex arrays (and refuses Python complex
    # numbers); we keep them, in the default complex dtype
    value = Model(jnp.ones(2, jnp.complex64) * 1j, 1j, 0).get(["a", "b"])
    assert [v.dtype for v in value] == [jnp.complex128, jnp.complex128]
    assert float(value[0][0].imag) == 1.0


def test_wrapper_holder_forwards_attributes_to_its_structure():
    net = eqx.nn.Linear(2, 1, key=jr.key(0))
    holder = zdx_base.WrapperHolder(*zdx_base.build_wrapper(net))
    assert holder.static is holder.structure.static
    assert holder.tree_def == holder.structure.tree_def
    assert (holder.sizes, holder.starts) == ([2, 1], [0, 2, 3])
    assert float(holder.get("static.in_features")) == 2.0  # paths go through it too
    with pytest.raises(AttributeError, match="neither has its structure"):
        _ = holder.nope
    assert isinstance(holder.structure, Base)
