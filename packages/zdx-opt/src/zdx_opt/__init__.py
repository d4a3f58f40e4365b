"""zdx-opt: optimisation helpers for fitting JAX models.

- ``map_optimisers``: one optax optimiser per parameter (or group, or dotted path);
  parameters without one stay fixed.
- ``delay``: a learning rate that is zero until a given step, then ramps up.
- ``natural_gradient``: an optax transformation that preconditions gradients by the
  inverse Fisher matrix (``optax.chain(natural_gradient(F), optax.sgd(lr))``), dense,
  structured (a sparse matrix, solved exactly) or matrix-free (an operator, by CG).
- ``decompose``, ``eigen_projection``: eigen-decomposition and the whitening projection of
  a Fisher or covariance matrix, refusing (or, on request, repairing) singular and
  indefinite ones.
- ``reparametrise``, ``LatentMap``, ``minimise``: fit in the whitened latent space
  ``params = x0 + P @ u`` with optimistix, in one call.
- ``gauss_newton``: least-squares fits of thousands of parameters with nothing to tune:
  damped Gauss-Newton steps solved exactly on a sparse Fisher matrix, with every error bar.
- ``debug_nan_check``, ``zero_nan_check``: guards against NaN gradients.
- ``fit_many``, ``ManyFits``, ``hessian_many``: natural-gradient fits of many data sets,
  and their Hessians, vmapped into one compiled program, in blocks, over all devices.
"""

import importlib.metadata

from ._eigen import decompose as decompose
from ._eigen import eigen_projection as eigen_projection
from ._fit_many import ManyFits as ManyFits
from ._fit_many import fit_many as fit_many
from ._gauss_newton import GaussNewtonResult as GaussNewtonResult
from ._gauss_newton import gauss_newton as gauss_newton
from ._hessian_many import hessian_many as hessian_many
from ._mapping import map_optimisers as map_optimisers
from ._minimise import MinimiseResult as MinimiseResult
from ._minimise import minimise as minimise
from ._nan import debug_nan_check as debug_nan_check
from ._nan import zero_nan_check as zero_nan_check
from ._natural import MatrixFreeNaturalGradientState as MatrixFreeNaturalGradientState
from ._natural import NaturalGradientState as NaturalGradientState
from ._natural import SparseNaturalGradientState as SparseNaturalGradientState
from ._natural import natural_gradient as natural_gradient
from ._reparam import LatentMap as LatentMap
from ._reparam import reparametrise as reparametrise
from ._schedules import delay as delay

__version__ = importlib.metadata.version("zdx-opt")
