"""The problems the benchmarks time, the same in every environment.

This module imports only NumPy, JAX, Equinox, dLux and whichever ``zodiax`` is installed
(ours, or zodiax 0.5.0 in the ``bench-zodiax05`` environment), so that both environments
time exactly the same functions at exactly the same points.

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
import math
import re
from collections.abc import Callable
from typing import Any

import dLux as dl
import dLux.utils as dlu
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import jax.scipy.stats as jss
import numpy as np

import zodiax as zdx

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


def noll_indices(j: int) -> tuple[int, int]:
    """Radial order ``n`` and signed azimuthal order ``m`` of Noll index ``j`` (``j >= 1``).

    Even ``j`` with ``m != 0`` is a cosine term (``m > 0``), odd ``j`` a sine term.
    """
    n = int((math.sqrt(8 * j - 7) - 1) // 2)
    while n * (n + 1) // 2 >= j:
        n -= 1
    while (n + 1) * (n + 2) // 2 < j:
        n += 1
    # The |m| of order n, in Noll's order: n % 2 first (once if 0), then pairs upwards.
    ms = [abs_m for abs_m in range(n % 2, n + 1, 2) for _ in range(1 if abs_m == 0 else 2)]
    abs_m = ms[j - n * (n + 1) // 2 - 1]
    return n, (abs_m if j % 2 == 0 else -abs_m) if abs_m else 0


def zernike_basis(js, npix: int, diameter: float) -> jax.Array:
    """Zernike polynomials of Noll indices ``js`` on dLux's ``npix`` pupil grid.

    Unit RMS over the circle of ``diameter`` metres, zero outside; computed with NumPy
    (dLux's own ``zernike_basis`` runs op by op and takes seconds for hundreds of terms).
    """
    x = (np.arange(npix) - (npix - 1) / 2) * (diameter / npix)
    xx, yy = np.meshgrid(x, x)
    rho = np.hypot(xx, yy) / (diameter / 2)
    theta = np.arctan2(yy, xx)
    basis = []
    for j in js:
        n, m = noll_indices(j)
        radial = np.zeros_like(rho)
        for k in range((n - abs(m)) // 2 + 1):
            radial += (
                (-1) ** k
                * math.factorial(n - k)
                / (
                    math.factorial(k)
                    * math.factorial((n + abs(m)) // 2 - k)
                    * math.factorial((n - abs(m)) // 2 - k)
                )
                * rho ** (n - 2 * k)
            )
        if m == 0:
            angular = np.sqrt(n + 1.0)
        elif m > 0:
            angular = np.sqrt(2.0 * (n + 1)) * np.cos(m * theta)
        else:
            angular = np.sqrt(2.0 * (n + 1)) * np.sin(-m * theta)
        basis.append(np.where(rho <= 1.0, radial * angular, 0.0))
    return jnp.asarray(np.stack(basis))


class FilteredOptics(dl.AngularOpticalSystem):
    """A dLux ``AngularOpticalSystem`` that also carries ``filters`` (name to microns)."""

    filters: dict

    def __init__(self, wf_npixels, diameter, layers, psf_npixels, psf_pixel_scale, filters):
        super().__init__(
            wf_npixels=wf_npixels,
            diameter=diameter,
            layers=layers,
            psf_npixels=psf_npixels,
            psf_pixel_scale=psf_pixel_scale,
        )
        self.filters = {name: jnp.asarray(w, dtype=float) for name, w in filters.items()}


def build_optics(
    filters: dict | None = None,
    npix: int = 256,
    diameter: float = 1.2,
    psf_npixels: int = 32,
    psf_pixel_scale: float = 0.075,
    n_zernike: int = 7,
) -> FilteredOptics:
    """The tutorial's optical system: an obscured, three-spider aperture and a Zernike WFE.

    Layers ``"aperture"`` (a normalising ``TransmissiveLayer``) and ``"wfe"`` (a
    ``BasisLayer`` of ``n_zernike`` Zernike polynomials from Noll index 4, applied as optical
    path difference in metres). Same signature and the same model as
    ``zdx_examples.optics.build_optics`` (same pupil, basis and PSFs), which cannot be imported
    beside zodiax 0.5.0.
    """
    filters = filter_bands(3) if filters is None else filters
    coords = dlu.pixel_coords(npix, diameter)
    soft = diameter / npix / 2
    transmission = dlu.soft_circle(coords, diameter / 2, clip_dist=soft)
    transmission = transmission * dlu.soft_circle(
        coords, 0.2 * diameter / 2, clip_dist=soft, invert=True
    )
    spiders = jnp.array([90.0, 210.0, 330.0])
    transmission = transmission * dlu.soft_spider(
        coords, 0.03, spiders, clip_dist=soft, invert=True
    )
    basis = zernike_basis(range(4, 4 + n_zernike), npix, diameter)
    layers = [
        ("aperture", dl.TransmissiveLayer(transmission, normalise=True)),
        ("wfe", dl.BasisLayer(basis, jnp.zeros(n_zernike), as_phase=False)),
    ]
    return FilteredOptics(npix, diameter, layers, psf_npixels, psf_pixel_scale, filters)


class Observation(zdx.Base):
    """The tutorial's observation: an image through one filter, and how to model it."""

    data: jax.Array
    error: jax.Array
    filter: str

    def __init__(self, data, error, filter):
        self.data = jnp.array(data, float)
        self.error = jnp.array(error, float)
        self.filter = str(filter)

    def __call__(self, params, optics):
        wavels = 1e-6 * optics.filters[self.filter]
        position = dlu.arcsec2rad(params["position"][self.filter])
        flux = 10 ** params["flux"][self.filter]
        optics = optics.set("wfe.coefficients", 1e-9 * params["wfe"])
        return flux * optics.propagate(wavels, position)


def optics_loglike(params, args):
    """The tutorial's section 7 ``loglike_fn``: Gaussian log-likelihood of every image."""
    optics, observations = args
    pred = jnp.array([obs(params, optics) for obs in observations])
    err = jnp.array([obs.error for obs in observations])
    dat = jnp.array([obs.data for obs in observations])
    return jss.norm.logpdf(pred, dat, err).sum()


def optics_loss(params, args):
    """``-loglike_fn(params, (optics, observations))``."""
    return -optics_loglike(params, args)


def optics_residuals(params, args):
    """``(model - data) / error`` of every pixel of every image."""
    optics, observations = args
    pred = jnp.array([obs(params, optics) for obs in observations])
    err = jnp.array([obs.error for obs in observations])
    dat = jnp.array([obs.data for obs in observations])
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
    return Problem(
        id=f"smooth-n{n}",
        family="smooth",
        n=n,
        x={"x": truth},
        loss_fn=smooth_loss,
        residual_fn=smooth_residuals,
        args=(A, data, error),
        description=f"synthetic smooth least squares, {n} parameters, {m} data",
    )


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
    return Problem(
        id=f"separable-n{n}",
        family="separable",
        n=n,
        x={"x": 0.3 * jr.normal(k1, (n,))},
        loss_fn=separable_loss,
        residual_fn=separable_residuals,
        args=jr.normal(k2, (n,)),
        description=f"separable cheap function, {n} parameters (diagonal Hessian)",
    )


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
    return Problem(
        id=f"coupled-n{n}",
        family="coupled",
        n=n,
        x={"x": 1.0 + 0.1 * jr.normal(k1, (n,))},
        loss_fn=coupled_loss,
        residual_fn=coupled_residuals,
        args=jr.normal(k2, (n,)) / math.sqrt(n),
        description=f"Rosenbrock chain plus a global coupling, {n} parameters (dense Hessian)",
    )


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
