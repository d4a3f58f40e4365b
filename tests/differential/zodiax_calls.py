"""Run described calls of the zodiax 0.5 public surface and record what they return.

This file is run by BOTH zodiax 0.5.0 (in the ``zodiax05`` hatch environment, as a script)
and this project's zodiax (loaded by the differential test), so it imports nothing but
zodiax, JAX, equinox, optax and numpy, and describes every input with plain Python values
and numpy arrays (pickled by the caller). See test_against_zodiax05.py.

    python zodiax_calls.py CASES.pkl RESULTS.pkl
"""

from __future__ import annotations

import dataclasses
import pickle
import sys
from typing import Any

import jax

jax.config.update("jax_enable_x64", True)

import equinox as eqx  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import zodiax  # noqa: E402

NO_VALUE = "<no value>"
"""Marks a call made with paths but no value (``model.set("a")``)."""

# --------------------------------------------------------------------------------------
# Building inputs from their descriptions.

_CLASSES: dict[tuple[str, ...], type] = {}


def module_class(fields: tuple[str, ...]) -> type:
    """A ``zodiax.Base`` subclass with the given fields (one class per field tuple)."""
    if fields not in _CLASSES:
        name = "Model_" + "_".join(fields)
        _CLASSES[fields] = type(
            name, (zodiax.Base,), {"__annotations__": dict.fromkeys(fields, Any)}
        )
    return _CLASSES[fields]


LEAF_MAKERS = {
    "py": lambda v: v,
    "np": lambda v: np.asarray(v),
    "jnp": lambda v: jnp.asarray(v),
}


def build(description: Any) -> Any:
    """A pytree from its description: ``("leaf", maker, value)``, ``("dict", {...})``,
    ``("list", [...])``, ``("tuple", [...])`` or ``("module", {field: description})``."""
    kind = description[0]
    if kind == "leaf":
        return LEAF_MAKERS[description[1]](description[2])
    if kind == "dict":
        return {k: build(v) for k, v in description[1].items()}
    if kind == "list":
        return [build(v) for v in description[1]]
    if kind == "tuple":
        return tuple(build(v) for v in description[1])
    if kind == "module":
        fields = description[1]
        return module_class(tuple(fields))(**{k: build(v) for k, v in fields.items()})
    raise ValueError(f"unknown description {description!r}")


# --------------------------------------------------------------------------------------
# Recording outputs.


def record(x: Any) -> Any:
    """An output as plain values: arrays with dtype and weak type, containers, modules."""
    if isinstance(x, jax.Array):
        return ("jax", np.asarray(x), str(x.dtype), bool(getattr(x, "weak_type", False)))
    if isinstance(x, np.ndarray):
        return ("numpy", x, str(x.dtype), False)
    if isinstance(x, np.generic):
        return ("numpy-scalar", np.asarray(x), str(x.dtype), False)
    if x is None or isinstance(x, (bool, int, float, complex, str)):
        return ("py", type(x).__name__, x)
    if isinstance(x, dict):
        return ("dict", {str(k): record(v) for k, v in x.items()})
    if isinstance(x, (list, tuple)):
        return (type(x).__name__, [record(v) for v in x])
    if isinstance(x, eqx.Module):
        fields = {f.name: record(getattr(x, f.name)) for f in dataclasses.fields(x)}
        return ("module", type(x).__name__, fields)
    return ("object", type(x).__name__)


# --------------------------------------------------------------------------------------
# The calls.


def _flat(p: Any) -> jax.Array:
    leaves = [jnp.ravel(jnp.asarray(leaf, dtype=float)) for leaf in jax.tree_util.tree_leaves(p)]
    return jnp.concatenate(leaves)


SCALAR_FUNCTIONS = {
    "coupled": lambda p: jnp.sum(jnp.sin(_flat(p)) * _flat(p)) + 0.1 * jnp.sum(_flat(p)) ** 2,
    "product": lambda p: jnp.prod(jnp.cos(_flat(p))) + jnp.sum(_flat(p) ** 3) / 6,
}
VECTOR_FUNCTIONS = {
    "three": lambda p: jnp.stack(
        [jnp.sum(_flat(p) ** 2), jnp.sum(jnp.sin(_flat(p))), _flat(p)[0] * _flat(p)[-1]]
    ),
}
OPTIMISERS = {"sgd": optax.sgd, "adam": optax.adam}


def _path_call(case: dict) -> Any:
    model = build(case["tree"])
    method = getattr(model, case["op"])
    if case["op"] == "get":
        return method(case["paths"], **case.get("kwargs", {}))
    if "updates" in case:  # a mapping of paths to values, or keyword arguments
        updates = {key: build(value) for key, value in case["updates"]}
        return method(**updates) if case["style"] == "keywords" else method(updates)
    if case["values"] == NO_VALUE:
        return method(case["paths"])
    return method(case["paths"], build(case["values"]))


def _wrapper_call(case: dict) -> Any:
    values, structure = zodiax.build_wrapper(build(case["tree"]))
    holder = zodiax.WrapperHolder(values, structure)
    out = {"values": values, "rebuilt": structure.inject(values * 2)}
    out["attributes"] = {name: getattr(holder, name, "<missing>") for name in case["attributes"]}
    return out


def _batching_call(case: dict) -> Any:
    x = build(case["tree"])
    if case["op"] == "hessian":
        matrix, _ = zodiax.hessian(SCALAR_FUNCTIONS[case["function"]], x, case["nbatches"])
        return {"matrix": matrix, "pytree": zodiax.hessian_to_pytree(matrix, x)}
    matrix, _ = zodiax.jacobian(VECTOR_FUNCTIONS[case["function"]], x, case["nbatches"])
    return {"matrix": matrix}


def _optimiser_call(case: dict) -> Any:
    params = build(case["tree"])
    optimisers = {key: OPTIMISERS[name](rate) for key, (name, rate) in case["optimisers"].items()}
    optim, state = zodiax.map_optimisers(params, optimisers, strict=case["strict"])
    grads = build(case["grads"])
    updates, _ = optim.update(grads, state, params)
    return updates


def _schedule_call(case: dict) -> Any:
    schedule = zodiax.delay(*case["args"])
    return [schedule(step) for step in case["steps"]]


def _matrix_call(case: dict) -> Any:
    args = [build(a) for a in case["args"]]
    return getattr(zodiax, case["op"])(*args, **case.get("kwargs", {}))


def _nan_call(case: dict) -> Any:
    tree = build(case["tree"])  # the user's data, made before any NaN check is on
    with jax.debug_nans(case.get("debug_nans", False)):
        return getattr(zodiax, case["op"])(tree)


CALLS = {
    "path": _path_call,
    "wrapper": _wrapper_call,
    "batching": _batching_call,
    "optimiser": _optimiser_call,
    "schedule": _schedule_call,
    "function": _matrix_call,
    "nan": _nan_call,
    "nan_debug_nans": _nan_call,
}


def run(case: dict) -> Any:
    """``("value", record)`` or ``("error", exception type name, message)``."""
    try:
        return ("value", record(CALLS[case["kind"]](case)))
    except Exception as err:  # every exception is a result to compare
        return ("error", type(err).__name__, str(err)[:300])


def run_all(cases: list[dict]) -> dict:
    versions = {"zodiax": zodiax.__version__, "jax": jax.__version__}
    return {"versions": versions, "results": [run(case) for case in cases]}


if __name__ == "__main__":
    with open(sys.argv[1], "rb") as f:
        cases = pickle.load(f)
    with open(sys.argv[2], "wb") as f:
        pickle.dump(run_all(cases), f)
