"""The one table of what replaces each zodiax 0.4 name, and the decorator that warns with it.

:data:`REPLACEMENTS` is the one source of that text: the warnings, the docstrings'
deprecation notes and the README's migration table are made from it.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any

REPLACEMENTS: dict[str, tuple[str, str]] = {
    # name: (the zodiax 0.4 call, what to write instead). The one source of the replacement
    # text: the warnings, the docstrings and the README's migration table come from here
    # (tests/zodiax/test_deprecated.py checks the README against migration_table()).
    "filter_jit": ("zdx.filter_jit(fn)", "`equinox.filter_jit(fn)`"),
    "filter_grad": (
        "zdx.filter_grad(paths)(fn)",
        "`equinox.filter_grad`, or `jax.grad` of `lambda params: fn(model.set(params), ...)` "
        "where `params = model.get(paths, as_dict=True)`",
    ),
    "filter_value_and_grad": (
        "zdx.filter_value_and_grad(paths)(fn)",
        "`equinox.filter_value_and_grad`, or `jax.value_and_grad` over the same `params` dict",
    ),
    "apply_updates": (
        "zdx.apply_updates(model, updates)",
        "`equinox.apply_updates(model, updates)`, or `optax.apply_updates(params, updates)` "
        "on the `params` dict followed by `model.set(params)`",
    ),
    "get_optimiser": (
        "zdx.get_optimiser(model, paths, optimisers)",
        "`optim, state = zodiax.optimisation.map_optimisers(params, {path: optimiser, ...})`",
    ),
    "sgd": (
        "zdx.sgd(lr, start)",
        "`optax.sgd(zodiax.optimisation.delay(lr, start - 1), momentum=0.6, nesterov=True)`",
    ),
    "adam": ("zdx.adam(lr, start)", "`optax.adam(zodiax.optimisation.delay(lr, start - 1))`"),
    "scheduler": (
        "zdx.scheduler(lr, start, *(step, multiplier))",
        "`zodiax.optimisation.delay(lr, start - 1)`. For the multipliers, use "
        "`optax.piecewise_constant_schedule` or `optax.join_schedules`",
    ),
    "set_array": (
        "zdx.set_array(model, paths)",
        "`model.set(paths, model.get(paths))`, because `get` returns float arrays "
        "(`zdx_base.set` / `zdx_base.get` on any pytree)",
    ),
    "boolean_filter": (
        "zdx.boolean_filter(model, paths)",
        "`zdx_base.set(jax.tree.map(lambda _: False, model), paths, True)`, or `equinox.tree_at`",
    ),
    "fisher_matrix": (
        "zdx.fisher_matrix(model, paths, loglike, *args)",
        "`-H`, with `H, _ = zodiax.batching.hessian(lambda p: loglike(model.set(p), *args), "
        "model.get(paths, as_dict=True))`",
    ),
    "covariance_matrix": (
        "zdx.covariance_matrix(model, paths, loglike, *args)",
        "`jax.numpy.linalg.inv(-H)` with the same `H`",
    ),
}


def migration_table() -> str:
    """The README's table of the zodiax 0.4 names and their replacements, in markdown."""
    rows = [f"| `{old}` | {new} |" for old, new in REPLACEMENTS.values()]
    return "\n".join(["| zodiax 0.4 name | replacement |", "|---|---|", *rows])


def deprecated(function: Callable) -> Callable:
    """``function`` warning, on every call, what :data:`REPLACEMENTS` says replaces it.

    The warning points at the caller's line; the docstring gains a ``.. deprecated::`` note.
    """
    name = function.__name__
    replacement = REPLACEMENTS[name][1]

    @functools.wraps(function)
    def shim(*args: Any, **kwargs: Any) -> Any:
        warnings.warn(
            f"zodiax.{name} is deprecated since zodiax 0.5 and will be removed in a future "
            f"release; use {replacement.replace('`', '')} instead.",
            DeprecationWarning,
            stacklevel=2,
        )
        return function(*args, **kwargs)

    shim.__doc__ = (function.__doc__ or "").rstrip() + (
        f"\n\n    .. deprecated:: 0.5\n        Use {replacement.replace('`', '``')}.\n"
    )
    return shim
