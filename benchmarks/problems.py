"""The problems the benchmarks time, the same in every environment.

This module imports only NumPy, JAX, Equinox and the examples' optics model (the
telescope and the observation of ``zdx_examples``, on dLux and whichever ``zodiax`` is
installed: ours, or zodiax 0.5.0 in the ``bench-zodiax05`` environment), so that both
environments time exactly the same functions at exactly the same points.

Two families:

- ``optics``: the hierarchical optics model of the tutorial (section 4), built with dLux: a
  1.2 m telescope with a central obscuration and three spiders, a Zernike wavefront error
  (Noll 4 onwards) shared by every image, and one star seen through each of several
  filters, each image with its own position and flux. Parameters: ``n_zernike``
  coefficients in nm, plus ``(x, y)`` in arcsec and log10 flux per filter, so
  ``n = n_zernike + 3 * n_filters`` (59 for 50 terms and 3 filters). The function is the
  tutorial's section 7 negative log-likelihood ``-loglike_fn(params, (optics, observations))``.
- ``smooth``: a synthetic smooth least-squares problem with any number ``n`` of
  parameters: ``m`` data points ``d = A tanh(x) + noise``, Gaussian errors, dense ``A``.
  Its Hessian is dense and costs ``O(m n^2)``, so the growth of cost with ``n`` shows.

Each problem comes with the residual function ``(model - data) / error`` whose Jacobian
gives the Fisher matrix ``J^T J`` (the Gauss-Newton matrix of the same likelihood).
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import math
import pathlib
import re
import sys
import types
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import jax.scipy.stats as jss
import numpy as np

__all__ = [
    "Problem",
    "build_optics",
    "coupled_problem",
    "make_problem",
    "optics_problem",
    "parse_problem_id",
    "separable_problem",
    "smooth_problem",
]


@dataclasses.dataclass(frozen=True)
class Problem:
    """One function to differentiate, at one point.

    Attributes
    ----------
    id
        Stable name, e.g. ``"optics-z50-f3-npix256"`` or ``"smooth-n1000"``; the same in
        every environment, so that results can be matched.
    family
        ``"optics"`` or ``"smooth"``.
    n
        Number of scalar parameters.
    x
        The point (a pytree of float arrays).
    loss_fn
        ``loss_fn(x, args) -> scalar``, the negative log-likelihood.
    residual_fn
        ``residual_fn(x, args) -> array``, ``(model - data) / error``, for the Fisher matrix.
    args
        The data and model that both functions take.
    description
        One line for reports.
    """

    id: str
    family: str
    n: int
    x: Any
    loss_fn: Callable[[Any, Any], jax.Array]
    residual_fn: Callable[[Any, Any], jax.Array]
    args: Any
    description: str

    def loss(self) -> Callable[[Any], jax.Array]:
        """A new ``f = lambda x: loss_fn(x, args)``, as the tutorial writes before each call."""
        loss_fn, args = self.loss_fn, self.args
        return lambda x: loss_fn(x, args)

    def residuals(self) -> Callable[[Any], jax.Array]:
        """A new ``r = lambda x: residual_fn(x, args)``."""
        residual_fn, args = self.residual_fn, self.args
        return lambda x: residual_fn(x, args)


# --------------------------------------------------------------------------------------
# The optics model (tutorial, section 4), with dLux directly.


def filter_bands(n_filters: int, n_wavelengths: int = 5) -> dict[str, jax.Array]:
    """``n_filters`` adjacent 0.2 micron bands from 1.0 micron, ``n_wavelengths`` each.

    Three filters are the tutorial's ``blue`` (1.0-1.2), ``green`` (1.2-1.4) and ``red``
    (1.4-1.6); more filters are named ``f3``, ``f4``, ... and continue to redder bands.
    """
    names = ["blue", "green", "red"]
    bands = {}
    for k in range(n_filters):
        name = names[k] if k < len(names) else f"f{k}"
        start = 1.0 + 0.2 * k
        bands[name] = jnp.linspace(start, start + 0.2, n_wavelengths)
    return bands


def _example_optics_modules() -> tuple[Any, Any]:
    """The examples' telescope and observation modules: the one home of the optics model.

    In the ``bench`` environment they come from the installed ``zdx_examples``. The
    ``bench-zodiax05`` environment cannot install that package (it needs our ``zodiax``,
    which zodiax 0.5.0 replaces), so there the two modules are read from the examples'
    source folder on their own: they need only dLux, JAX and ``zdx_base``, which that
    environment installs; the package's ``__init__`` (the whole optics pipeline) is not run.
    """
    if importlib.util.find_spec("zdx_examples") is None:
        source = pathlib.Path(__file__).resolve().parents[1] / "examples/src/zdx_examples"
        package = types.ModuleType("zdx_examples")
        package.__path__ = [str(source)]
        sys.modules["zdx_examples"] = package
    telescope = importlib.import_module("zdx_examples._telescope")
    observation = importlib.import_module("zdx_examples._observation")
    return telescope, observation


_telescope, _observation = _example_optics_modules()
build_optics = _telescope.build_optics
Observation = _observation.Observation


def _images(params, args) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The model, data and error images of every observation, each stacked in one array."""
    optics, observations = args
    pred = jnp.array([obs(params, optics) for obs in observations])
    err = jnp.array([obs.error for obs in observations])
    dat = jnp.array([obs.data for obs in observations])
    return pred, dat, err


def optics_loglike(params, args):
    """The tutorial's section 7 ``loglike_fn``: Gaussian log-likelihood of every image."""
    pred, dat, err = _images(params, args)
    return jss.norm.logpdf(pred, dat, err).sum()


def optics_loss(params, args):
    """``-loglike_fn(params, (optics, observations))``."""
    return -optics_loglike(params, args)


def optics_residuals(params, args):
    """``(model - data) / error`` of every pixel of every image."""
    pred, dat, err = _images(params, args)
    return (pred - dat) / err


def optics_problem(
    n_zernike: int = 50, n_filters: int = 3, npix: int = 256, n_images: int = 1000
) -> Problem:
    """The hierarchical optics problem, simulated as in the tutorial (seed 0).

    The data are the mean of ``n_images`` noisy exposures (photon noise plus a read noise of
    10) of the true model, drawn from its Gaussian limit; the errors are its standard
    deviation. The point is the true parameters, where a Hessian would be taken for
    uncertainties.
    """
    optics = build_optics(filter_bands(n_filters), npix=npix, n_zernike=n_zernike)
    names = list(optics.filters)
    keys = jr.split(jr.key(0), 3)
    positions = 0.1 * jr.normal(keys[0], (n_filters, 2))
    fluxes = 6 * jr.uniform(keys[1], (n_filters,), minval=0.8, maxval=1.2)
    wfe = 50 * jr.normal(keys[2], (n_zernike,)) / np.sqrt(max(n_zernike / 7, 1.0))
    params = {
        "wfe": wfe,
        "position": {name: positions[i] for i, name in enumerate(names)},
        "flux": {name: fluxes[i] for i, name in enumerate(names)},
    }
    blank = [Observation(0.0, 0.0, name) for name in names]
    psfs = eqx.filter_jit(lambda p, o: jnp.array([obs(p, o) for obs in blank]))(params, optics)

    # The mean of n_images exposures with photon and read noise (10 e-), drawn at once
    # from its Gaussian limit; the errors are its standard deviation, as in the tutorial.
    error = jnp.sqrt((psfs + 10.0**2) / n_images)
    data = psfs + error * jr.normal(jr.key(1), psfs.shape)
    observations = [Observation(d, e, name) for d, e, name in zip(data, error, names)]
    n = n_zernike + 3 * n_filters
    return Problem(
        id=f"optics-z{n_zernike}-f{n_filters}-npix{npix}",
        family="optics",
        n=n,
        x=params,
        loss_fn=optics_loss,
        residual_fn=optics_residuals,
        args=(optics, observations),
        description=(
            f"optics, {n_zernike} Zernike terms, {n_filters} filters x 5 wavelengths, "
            f"{npix}^2 pupil, 32^2 PSF"
        ),
    )


# --------------------------------------------------------------------------------------
# A synthetic smooth problem of any size.


def _vector_problem(
    family: str, x: jax.Array, functions: tuple[Callable, Callable], args: Any, description: str
) -> Problem:
    """A problem over one parameter vector ``x`` (the pytree ``{"x": x}``), named
    ``"<family>-n<len(x)>"``; ``functions`` are its ``(loss_fn, residual_fn)``."""
    loss_fn, residual_fn = functions
    n = x.shape[0]
    return Problem(f"{family}-n{n}", family, n, {"x": x}, loss_fn, residual_fn, args, description)


def smooth_model(params, args):
    """``A tanh(x)``: every datum depends on every parameter, nonlinearly."""
    A, _, _ = args
    return A @ jnp.tanh(params["x"])


def smooth_loss(params, args):
    """Gaussian negative log-likelihood of ``smooth_model``."""
    _, data, error = args
    return -jss.norm.logpdf(smooth_model(params, args), data, error).sum()


def smooth_residuals(params, args):
    """``(A tanh(x) - d) / error``."""
    _, data, error = args
    return (smooth_model(params, args) - data) / error


def smooth_problem(n: int = 1000, m: int = 256) -> Problem:
    """The synthetic problem with ``n`` parameters and ``m`` data points (seed 0)."""
    k1, k2, k3 = jr.split(jr.key(0), 3)
    A = jr.normal(k1, (m, n)) / math.sqrt(n)
    truth = 0.5 * jr.normal(k2, (n,))
    error = 0.01 * jnp.ones(m)
    data = A @ jnp.tanh(truth) + error * jr.normal(k3, (m,))
    functions = (smooth_loss, smooth_residuals)
    description = f"synthetic smooth least squares, {n} parameters, {m} data"
    return _vector_problem("smooth", truth, functions, (A, data, error), description)


# --------------------------------------------------------------------------------------
# Cheap functions: where a few columns at a time lose to all columns at once.


def separable_loss(params, args):
    """``sum(cosh(x) + x^4 / 4 - d x)``: a diagonal Hessian, each term cheap."""
    x = params["x"]
    return jnp.sum(jnp.cosh(x) + 0.25 * x**4 - args * x)


def separable_residuals(params, args):
    """``(sinh(x) - d) / 0.1``: a diagonal Jacobian."""
    return (jnp.sinh(params["x"]) - args) / 0.1


def separable_problem(n: int = 1000) -> Problem:
    """The separable function of ``n`` parameters (seed 1)."""
    k1, k2 = jr.split(jr.key(1), 2)
    functions = (separable_loss, separable_residuals)
    description = f"separable cheap function, {n} parameters (diagonal Hessian)"
    x = 0.3 * jr.normal(k1, (n,))
    return _vector_problem("separable", x, functions, jr.normal(k2, (n,)), description)


def coupled_residuals(params, args):
    """A Rosenbrock chain plus one term coupling every parameter."""
    x = params["x"]
    chain = 10.0 * (x[1:] - x[:-1] ** 2)
    return jnp.concatenate([chain, 1.0 - x[:-1], jnp.sum(args * jnp.sin(x))[None]])


def coupled_loss(params, args):
    """Half the sum of squares of :func:`coupled_residuals`: a dense Hessian."""
    return 0.5 * jnp.sum(coupled_residuals(params, args) ** 2)


def coupled_problem(n: int = 300) -> Problem:
    """The coupled cheap function of ``n`` parameters (seed 2)."""
    k1, k2 = jr.split(jr.key(2), 2)
    functions = (coupled_loss, coupled_residuals)
    description = f"Rosenbrock chain plus a global coupling, {n} parameters (dense Hessian)"
    x = 1.0 + 0.1 * jr.normal(k1, (n,))
    return _vector_problem("coupled", x, functions, jr.normal(k2, (n,)) / math.sqrt(n), description)


# --------------------------------------------------------------------------------------
# Problems by name.

_OPTICS_ID = re.compile(r"^optics-z(\d+)-f(\d+)-npix(\d+)$")
_SIZED_ID = re.compile(r"^(smooth|separable|coupled)-n(\d+)$")
_SIZED = {"smooth": smooth_problem, "separable": separable_problem, "coupled": coupled_problem}


def parse_problem_id(problem_id: str) -> tuple[str, dict]:
    """``"optics-z50-f3-npix256"`` -> ``("optics", {...})``; raises on an unknown name."""
    match = _OPTICS_ID.match(problem_id)
    if match:
        z, f, npix = (int(g) for g in match.groups())
        return "optics", {"n_zernike": z, "n_filters": f, "npix": npix}
    match = _SIZED_ID.match(problem_id)
    if match:
        return match.group(1), {"n": int(match.group(2))}
    raise ValueError(
        f"Unknown problem {problem_id!r}: expected 'optics-z<terms>-f<filters>-npix<pixels>' "
        "or '<smooth|separable|coupled>-n<parameters>'."
    )


_BUILT: dict[str, Problem] = {}


def make_problem(problem_id: str) -> Problem:
    """Build (once per process) the problem named ``problem_id``."""
    if problem_id not in _BUILT:
        family, kwargs = parse_problem_id(problem_id)
        build = optics_problem if family == "optics" else _SIZED[family]
        _BUILT[problem_id] = build(**kwargs)
    return _BUILT[problem_id]
