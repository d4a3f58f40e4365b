"""Property-based specifications: set then get round-trips, and the input styles agree."""

import jax.numpy as jnp
from hypothesis import given, settings
from hypothesis import strategies as st

import zdx_base

names = st.text(alphabet="abcdefgh", min_size=1, max_size=4)
values = st.floats(-1e6, 1e6, allow_nan=False)
trees = st.recursive(
    values,
    lambda children: st.one_of(
        st.dictionaries(names, children, min_size=1, max_size=4),
        st.lists(children, min_size=1, max_size=3),
    ),
    max_leaves=12,
)


def leaf_paths(tree, prefix=()):
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from leaf_paths(v, (*prefix, k))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            yield from leaf_paths(v, (*prefix, str(i)))
    else:
        yield ".".join(prefix)


@settings(max_examples=60, deadline=None)
@given(trees.filter(lambda t: isinstance(t, (dict, list))), st.data())
def test_set_then_get_round_trips_in_every_style(tree, data):
    paths = list(leaf_paths(tree))
    chosen = data.draw(st.lists(st.sampled_from(paths), min_size=1, max_size=4, unique=True))
    new_values = data.draw(st.lists(values, min_size=len(chosen), max_size=len(chosen)))

    positional = zdx_base.set(tree, chosen, new_values)
    mapping = zdx_base.set(tree, dict(zip(chosen, new_values)))
    keywords = zdx_base.set(tree, **dict(zip(chosen, new_values)))
    one_by_one = tree
    for p, v in zip(chosen, new_values):
        one_by_one = zdx_base.set(one_by_one, p, v)
    assert positional == mapping == keywords == one_by_one

    got = zdx_base.get(positional, chosen, as_dict=True)
    for p, v in zip(chosen, new_values):
        assert float(got[p]) == float(jnp.asarray(v, dtype=got[p].dtype))
    # untouched leaves are unchanged
    for p in set(paths) - set(chosen):
        assert zdx_base.get(positional, p, to_array=False) == zdx_base.get(tree, p, to_array=False)


@settings(max_examples=40, deadline=None)
@given(trees.filter(lambda t: isinstance(t, dict)), values)
def test_broadcast_equals_per_path_values(tree, value):
    paths = list(leaf_paths(tree))
    assert zdx_base.set(tree, paths, value) == zdx_base.set(tree, paths, [value] * len(paths))
    assert zdx_base.set(tree, {tuple(paths): value}) == zdx_base.set(tree, paths, value)
