"""The part of a function that depends on one of its inputs, for sparsity detection.

Detection by abstract interpretation (asdex) walks every operation of a function, also
those that never see the input whose pattern is wanted: in an image model the optics
(Fourier transforms, convolutions) run before a pixel response is applied and cost
asdex seconds while contributing nothing to the response's pattern.
:func:`dependent_part` cuts the function's jaxpr down to the operations that depend on
input ``k``; the values the others compute enter it as inputs, which detection treats as
it treats any input it does not differentiate (by shape only, for every value). The
pattern with respect to input ``k`` is therefore the one found on the whole function.
Operations on constants alone are kept with their constants, so that what detection
reads from constant values (gather indices, say) is the same.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.extend.core as jex
import numpy as np


def dependent_part(function: Callable, inputs: Sequence[Any], k: int):
    """``function`` cut down to the operations that depend on ``inputs[k]``.

    Returns
    -------
    (part, part_inputs)
        ``part(inputs[k], *others)`` returns what ``function(*inputs)`` returns (as a flat
        list); ``part_inputs`` are placeholders for its arguments, ``inputs[k]`` first.
        ``None`` when nothing is gained (every operation depends on input ``k``) or
        ``function`` returns more than one array.
    """
    closed = jax.make_jaxpr(function)(*inputs)
    jaxpr = closed.jaxpr
    if len(jaxpr.outvars) != 1:
        return None
    leaf = jaxpr.invars[k]  # inputs before k are single arrays: one variable each
    dependent, constant = {leaf}, set(jaxpr.constvars)
    kept = []
    for eqn in jaxpr.eqns:
        variables = [v for v in eqn.invars if not isinstance(v, jex.Literal)]
        if any(v in dependent for v in variables):
            dependent.update(eqn.outvars)
            kept.append(eqn)
        elif all(v in constant for v in variables):
            constant.update(eqn.outvars)
    if len(kept) == len(jaxpr.eqns):
        return None
    # Constant-only operations feeding the kept ones are kept too, in their order.
    needed = {v for eqn in kept for v in eqn.invars if not isinstance(v, jex.Literal)}
    needed.update(v for v in jaxpr.outvars if not isinstance(v, jex.Literal))
    keep = set(map(id, kept))
    for eqn in reversed(jaxpr.eqns):
        if id(eqn) not in keep and any(v in needed for v in eqn.outvars):
            if all(v in constant for v in eqn.outvars):
                keep.add(id(eqn))
                needed.update(v for v in eqn.invars if not isinstance(v, jex.Literal))
    eqns = [eqn for eqn in jaxpr.eqns if id(eqn) in keep]
    produced = {v for eqn in eqns for v in eqn.outvars} | set(jaxpr.constvars) | {leaf}
    # Values computed from the other inputs become inputs of the part.
    boundary = _in_order(jaxpr, needed - produced)
    with warnings.catch_warnings():  # a jaxpr for detection only: no debugging names
        warnings.simplefilter("ignore", DeprecationWarning)
        part = jex.Jaxpr(jaxpr.constvars, [leaf, *boundary], jaxpr.outvars, eqns, jaxpr.effects)
    run = jex.jaxpr_as_fun(jex.ClosedJaxpr(part, closed.consts))
    placeholders = [inputs[k]] + [np.zeros(v.aval.shape, v.aval.dtype) for v in boundary]
    return (lambda *values: run(*values)[0]), placeholders


def _in_order(jaxpr: Any, variables: set) -> list:
    """``variables`` in the order they are made in ``jaxpr`` (inputs first)."""
    order = {v: i for i, v in enumerate(jaxpr.invars)}
    for eqn in jaxpr.eqns:
        for v in eqn.outvars:
            order.setdefault(v, len(order))
    return sorted(set(variables), key=order.__getitem__)
