"""Zodiax: scientific model fitting in JAX, as one install of the zdx-* packages.

``import zodiax as zdx`` gives the names that the zodiax tutorial and zodiax 0.5 users write:

- ``zdx.Base``, ``zdx.build_wrapper``, ``zdx.EquinoxWrapper``, ``zdx.WrapperHolder``;
- the modules ``zodiax.base`` (zdx_base), ``zodiax.stats`` (zdx_stats),
  ``zodiax.batching`` and its zodiax 0.5 name ``zodiax.diffops`` (zdx_batching),
  ``zodiax.optimisation`` (zdx_opt) and ``zodiax.sample`` (zdx_sample): each is the package
  itself, so ``zodiax.stats.z_score is zdx_stats.z_score``. ``zodiax.sample`` (numpyro,
  blackjax, ArviZ) is imported the first time it is used, so that ``import zodiax`` stays
  as light as zodiax 0.5's;
- every top-level function of zodiax 0.5 (``zdx.hessian``, ``zdx.map_optimisers``,
  ``zdx.z_score``, ...);
- the names that zodiax 0.5 removed from 0.4 (``zdx.filter_grad``, ``zdx.get_optimiser``, ...),
  working as in zodiax 0.4.1 and warning which name replaces them.
"""

import importlib
import importlib.metadata
import sys
from typing import Any

import zdx_base as base
import zdx_batching as batching
import zdx_opt as optimisation
import zdx_stats as stats
from zdx_base import Base as Base
from zdx_base import EquinoxWrapper as EquinoxWrapper
from zdx_base import WrapperHolder as WrapperHolder
from zdx_base import build_wrapper as build_wrapper
from zdx_batching import hessian as hessian
from zdx_batching import hessian_to_pytree as hessian_to_pytree
from zdx_batching import jacobian as jacobian
from zdx_opt import debug_nan_check as debug_nan_check
from zdx_opt import decompose as decompose
from zdx_opt import delay as delay
from zdx_opt import eigen_projection as eigen_projection
from zdx_opt import map_optimisers as map_optimisers
from zdx_opt import zero_nan_check as zero_nan_check
from zdx_stats import calc_entropy as calc_entropy
from zdx_stats import check_positive_semi_definite as check_positive_semi_definite
from zdx_stats import check_symmetric as check_symmetric
from zdx_stats import chi2 as chi2
from zdx_stats import chi2r as chi2r
from zdx_stats import chi2r_from_z as chi2r_from_z
from zdx_stats import ddof as ddof
from zdx_stats import gauss_hessian as gauss_hessian
from zdx_stats import loglike as loglike
from zdx_stats import mv_loglike as mv_loglike
from zdx_stats import mv_z_score as mv_z_score
from zdx_stats import z_score as z_score

from ._deprecated import adam as adam
from ._deprecated import apply_updates as apply_updates
from ._deprecated import boolean_filter as boolean_filter
from ._deprecated import covariance_matrix as covariance_matrix
from ._deprecated import filter_grad as filter_grad
from ._deprecated import filter_jit as filter_jit
from ._deprecated import filter_value_and_grad as filter_value_and_grad
from ._deprecated import fisher_matrix as fisher_matrix
from ._deprecated import get_optimiser as get_optimiser
from ._deprecated import scheduler as scheduler
from ._deprecated import set_array as set_array
from ._deprecated import sgd as sgd

diffops = batching
"""zodiax 0.5's name for :mod:`zodiax.batching`."""

# `import zodiax.stats` and `from zodiax.optimisation import delay` find the packages too
# (`zodiax.sample` is a small module file that puts zdx_sample in its place when imported).
for _name, _module in {
    "base": base,
    "stats": stats,
    "batching": batching,
    "diffops": batching,
    "optimisation": optimisation,
}.items():
    sys.modules[f"{__name__}.{_name}"] = _module
del _name, _module


def __getattr__(name: str) -> Any:
    """``zodiax.sample``: zdx_sample, imported on first use (it loads the sampling stack)."""
    if name == "sample":
        return importlib.import_module(f"{__name__}.sample")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), "sample"])


__version__ = importlib.metadata.version("zodiax")
