"""Save the results of this package to a file and load them back, field by field.

A result (``LaplaceResult``, ``NUTSResult``, ...) is an ``equinox.Module`` whose fields are
arrays, numbers, strings, ``None``, nested modules (``ImportanceEvidence``,
``zdx_opt.LatentMap``), pytrees in the structure of the parameters (``mean``, ``samples``)
and the function that unflattens a parameter vector. Every field is walked, whatever the
result type holds: arrays go to the leaves of a ``zdx_base.save`` file, everything else
into a description kept with it. A function cannot be written to a file, so the unflatten
function is rebuilt on loading from a parameter skeleton, checked against the names and
shapes that were saved.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import pathlib
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as onp

import zdx_base

from ._inference_data import draws_to_inference_data, to_inference_data

FORMAT = 1
"""The newest description format this version writes and reads."""

_KEY = "zdx_sample"
_TRUSTED = ("zdx_sample", "zdx_opt", "zdx_base", "zdx_batching", "zdx_stats")


class _Writer:
    """Turns a result into a JSON description and a list of array leaves."""

    def __init__(self, unravel: Any, n: int):
        self.unravel = unravel
        self.n = n
        self.params_treedef = None
        if unravel is not None:
            self.probe = jnp.arange(1.0, n + 1.0)
            self.params_treedef = jax.tree.structure(unravel(self.probe))
        self.leaves: list[Any] = []

    def add(self, value: Any) -> dict[str, Any]:
        self.leaves.append(value)
        return {"leaf": len(self.leaves) - 1}

    def encode(self, value: Any, where: str) -> dict[str, Any]:
        if value is None:
            return {"kind": "none"}
        if isinstance(value, jax.Array):
            if jnp.issubdtype(value.dtype, jax.dtypes.prng_key):
                impl = str(jax.random.key_impl(value))
                return {"kind": "key", "impl": impl, **self.add(jax.random.key_data(value))}
            return {"kind": "array", **self.add(value)}
        if isinstance(value, (onp.ndarray, onp.generic)):
            kind = "numpy" if isinstance(value, onp.ndarray) else "numpy_scalar"
            return {"kind": kind, **self.add(onp.asarray(value))}
        if isinstance(value, (bool, int, float, str)):
            return {"kind": "value", "value": value}
        if (
            self.params_treedef is not None
            and jax.tree.structure(value) == self.params_treedef
            and all(isinstance(x, jax.Array) for x in jax.tree.leaves(value))
        ):
            first = len(self.leaves)
            self.leaves.extend(jax.tree.leaves(value))
            return {"kind": "params", "first": first}
        if isinstance(value, eqx.Module):
            cls = type(value)
            fields = {
                f.name: self.encode(getattr(value, f.name), f"{where}.{f.name}")
                for f in dataclasses.fields(value)
            }
            return {
                "kind": "module",
                "class": f"{cls.__module__}:{cls.__qualname__}",
                "fields": fields,
            }
        if isinstance(value, (tuple, list)):
            items = [self.encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
            return {"kind": type(value).__name__, "items": items}
        if isinstance(value, dict) and all(isinstance(k, str) for k in value):
            items = {k: self.encode(v, f"{where}[{k!r}]") for k, v in value.items()}
            return {"kind": "dict", "items": items}
        if callable(value) and self._is_unravel(value):
            # a function cannot be saved: this one is rebuilt from the parameter skeleton
            return {"kind": "unravel"}
        raise TypeError(
            f"zdx_sample.save_result: cannot save {where} of type {type(value).__name__}: "
            "only arrays, numbers, strings, None, tuples, lists, dicts, equinox modules, "
            "parameter pytrees and the parameters' unflatten function can be saved."
        )

    def _is_unravel(self, value: Any) -> bool:
        """Whether ``value`` is (or does what does) the function unflattening parameters."""
        if self.unravel is None:
            return False
        if value is self.unravel:
            return True
        try:
            out = value(self.probe)
        except Exception:  # not a function of a parameter vector
            return False
        return bool(eqx.tree_equal(out, self.unravel(self.probe)))


class _Reader:
    """Rebuilds a result from its description, the leaves and the parameter skeleton."""

    def __init__(self, leaves: list[Any], params_treedef, unravel, path: pathlib.Path):
        self.leaves = leaves
        self.params_treedef = params_treedef
        self.unravel = unravel
        self.path = path

    def decode(self, desc: dict[str, Any]) -> Any:
        kind = desc["kind"]
        if kind == "none":
            return None
        if kind in ("array", "numpy"):
            return self.leaves[desc["leaf"]]
        if kind == "numpy_scalar":
            return self.leaves[desc["leaf"]][()]
        if kind == "key":
            return jax.random.wrap_key_data(self.leaves[desc["leaf"]], impl=desc["impl"])
        if kind == "value":
            return desc["value"]
        if kind == "params":
            first = desc["first"]
            count = self.params_treedef.num_leaves
            return jax.tree.unflatten(self.params_treedef, self.leaves[first : first + count])
        if kind == "module":
            cls = self._class(desc["class"])
            module = object.__new__(cls)
            for name, field in desc["fields"].items():
                object.__setattr__(module, name, self.decode(field))
            return module
        if kind in ("tuple", "list"):
            items = [self.decode(item) for item in desc["items"]]
            return tuple(items) if kind == "tuple" else items
        if kind == "dict":
            return {k: self.decode(v) for k, v in desc["items"].items()}
        if kind == "unravel":
            return self.unravel
        raise ValueError(
            f"zdx_sample.load_result: {str(self.path)!r} describes a field of unknown kind "
            f"{kind!r}; it was written by a newer zdx-sample. Upgrade zdx-sample to load it."
        )

    def _class(self, name: str) -> type:
        module_name, _, qualname = name.partition(":")
        if module_name.split(".")[0] not in _TRUSTED:
            raise ValueError(
                f"zdx_sample.load_result: {str(self.path)!r} names the class {name!r}, which "
                f"is not part of {', '.join(_TRUSTED)}; only their results are loaded."
            )
        obj: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part, None)
        if not (isinstance(obj, type) and issubclass(obj, eqx.Module)):
            raise ValueError(
                f"zdx_sample.load_result: {str(self.path)!r} holds a {name}, which this "
                "version of the packages does not have."
            )
        return obj


def _params_layout(params: Any) -> dict[str, Any]:
    leaves = jax.tree.leaves(params)
    return {
        "names": list(zdx_base.scalar_names(params)),
        "shapes": [list(onp.shape(x)) for x in leaves],
        "dtypes": [str(jnp.result_type(x)) for x in leaves],
    }


def save_result(path: str | os.PathLike, result: Any, *, overwrite: bool = False) -> pathlib.Path:
    """Save a result of :func:`laplace`, :func:`nuts`, :func:`nested_sampling` or
    :func:`variational` (every field it holds) to one file.

    The arrays are written with ``zdx_base.save`` (equinox's leaf format), the other fields
    (names, strings, numbers, the result's class) in the description beside them.

    Parameters
    ----------
    path : str or os.PathLike
        Where to write; a path without a suffix gets ``.eqx``.
    result : equinox.Module
        The result to save.
    overwrite : bool
        Replace an existing file. Without it an existing file is never touched.

    Returns
    -------
    pathlib.Path
        The file written: ``path``, with ``.eqx`` added when it had no suffix.

    Raises
    ------
    TypeError
        If ``result`` is not an ``equinox.Module`` with a ``names`` field, or holds a field
        that cannot be saved (the message names it).
    FileExistsError
        If the file exists and ``overwrite`` is False.

    Examples
    --------
    >>> import tempfile, pathlib, jax.numpy as jnp, zdx_sample as zs
    >>> fit = zs.laplace(lambda p: -0.5 * jnp.sum(p["x"] ** 2), {"x": jnp.zeros(2)})
    >>> path = zs.save_result(pathlib.Path(tempfile.mkdtemp()) / "laplace", fit)
    >>> loaded = zs.load_result(path, params={"x": jnp.zeros(2)})
    >>> loaded.names, bool((loaded.covariance == fit.covariance).all())
    (('x[0]', 'x[1]'), True)
    """
    fn_name = "zdx_sample.save_result"
    names = getattr(result, "names", None)
    if not isinstance(result, eqx.Module) or not isinstance(names, tuple):
        raise TypeError(
            f"{fn_name}: `result` must be a result of laplace, nuts, nested_sampling or "
            f"variational (an equinox.Module with parameter `names`), got "
            f"{type(result).__name__}."
        )
    unravel = _find_unravel(result)
    params = None if unravel is None else unravel(jnp.zeros(len(names)))
    writer = _Writer(unravel, len(names))
    description = writer.encode(result, type(result).__name__)
    metadata = {
        _KEY: {
            "format": FORMAT,
            "result": description,
            "params": None if params is None else _params_layout(params),
        }
    }
    return zdx_base.save(path, writer.leaves, overwrite=overwrite, metadata=metadata)


def _find_unravel(result: Any) -> Any:
    for value in (getattr(result, "unravel", None), getattr(result, "latent_map", None)):
        if callable(getattr(value, "unravel", None)):
            return value.unravel
        if callable(value) and not isinstance(value, eqx.Module):
            return value
    return None


def load_result(path: str | os.PathLike, params: Any) -> Any:
    """Load a result written by :func:`save_result`.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    params : PyTree
        A skeleton of the parameters the result was computed for (the ``params`` given to
        the estimator, or any pytree of the same structure, shapes and dtypes; its values
        are not used). It rebuilds the function that unflattens a parameter vector, which a
        file cannot hold.

    Returns
    -------
    equinox.Module
        The result, of the class that was saved, with every field it held.

    Raises
    ------
    ValueError
        If the file is not a saved result (or is truncated, corrupted, or of a newer format
        than this version reads), or ``params`` does not match the saved parameters (the
        message names the first scalar that differs).
    FileNotFoundError
        If there is no file at ``path``.
    """
    fn_name = "zdx_sample.load_result"
    info = zdx_base.saved_info(path)
    stored = info.metadata.get(_KEY)
    if not isinstance(stored, dict) or "result" not in stored:
        raise ValueError(
            f"{fn_name}: {str(info.path)!r} is a zdx-base save file of a {info.type}, not a "
            "saved result; load it with zdx_base.load(path, like=...)."
        )
    if stored.get("format", FORMAT + 1) > FORMAT:
        raise ValueError(
            f"{fn_name}: {str(info.path)!r} has result format {stored.get('format')}, "
            f"written by zdx-sample {info.versions.get('zdx-sample', 'unknown')}; this "
            f"zdx-sample reads formats up to {FORMAT}. Upgrade zdx-sample to load it."
        )
    treedef = unravel = None
    if stored["params"] is not None:
        _check_params(fn_name, info.path, stored["params"], params)
        treedef = jax.tree.structure(params)
        zeros = jax.tree.map(lambda x: jnp.zeros(onp.shape(x), jnp.result_type(x)), params)
        unravel = zdx_base.ravel(zeros).unravel
    like = [
        jax.ShapeDtypeStruct(leaf.shape, leaf.dtype)
        if leaf.kind == "array"
        else onp.empty(leaf.shape, leaf.dtype)
        for leaf in info.leaves
    ]
    leaves = zdx_base.load(info.path, like=like)
    return _Reader(leaves, treedef, unravel, info.path).decode(stored["result"])


def _check_params(fn_name: str, path: pathlib.Path, saved: dict[str, Any], params: Any) -> None:
    try:
        given = _params_layout(params)
    except TypeError as err:
        raise TypeError(f"{fn_name}: `params` must be a pytree of arrays: {err}") from err
    for i, (was, now) in enumerate(zip(saved["names"], given["names"])):
        if was != now:
            raise ValueError(
                f"{fn_name}: `params` does not match the parameters of {str(path)!r}: "
                f"scalar {i} is {now!r} in `params` and {was!r} in the file."
            )
    if len(saved["names"]) != len(given["names"]):
        raise ValueError(
            f"{fn_name}: `params` does not match the parameters of {str(path)!r}: it has "
            f"{len(given['names'])} scalars, the file {len(saved['names'])} "
            f"({', '.join(saved['names'][:6])}{', ...' if len(saved['names']) > 6 else ''})."
        )
    if given["shapes"] != saved["shapes"] or given["dtypes"] != saved["dtypes"]:
        raise ValueError(
            f"{fn_name}: `params` does not match the parameters of {str(path)!r}: leaf "
            f"shapes {given['shapes']} and dtypes {given['dtypes']} in `params`, "
            f"{saved['shapes']} and {saved['dtypes']} in the file."
        )


def save_netcdf(
    path: str | os.PathLike, result: Any, *, overwrite: bool = False, **kwargs: Any
) -> pathlib.Path:
    """Write the posterior draws of a result to an ArviZ netCDF file.

    The file holds :func:`to_inference_data` of ``result`` (``posterior.params`` with
    dimensions ``(chain, draw, parameter)`` and the parameter names as coordinates);
    ``arviz.from_netcdf(path)`` reads it. Keyword arguments go to ``to_inference_data``
    (``key`` and ``num_samples`` for the Laplace and variational approximations). Any other
    object with ``draws`` of shape ``(chains, draws, n)`` and ``names`` is written the same
    way, its keyword arguments becoming attributes of the file.

    Returns
    -------
    pathlib.Path
        ``path``, now holding the netCDF file.

    Raises
    ------
    FileExistsError
        If the file exists and ``overwrite`` is False.
    TypeError
        If ``path`` is not a path or ``result`` not a result of this package.
    """
    fn_name = "zdx_sample.save_netcdf"
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"{fn_name}: `path` must be a str or os.PathLike, got {type(path).__name__}."
        )
    path = pathlib.Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(
            f"{fn_name}: {str(path)!r} already exists; pass overwrite=True to replace it."
        )
    draws, names = getattr(result, "draws", None), getattr(result, "names", None)
    if not hasattr(result, "to_inference_data") and jnp.ndim(draws) == 3 and names is not None:
        data = draws_to_inference_data(draws, tuple(names), attrs=kwargs)
    else:
        data = to_inference_data(result, **kwargs)
    path.parent.mkdir(parents=True, exist_ok=True)
    data.to_netcdf(str(path))
    return path
