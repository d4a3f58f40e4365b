"""Batched Jacobians, Hessians and Fisher matrices over pytrees.

Transforms first: ``hessian_fn(f)`` (and ``jacobian_fn``, ``fisher_fn``,
``hessian_diagonal_fn``, ``hvp_fn``) returns a function of ``(x, args)`` that computes the
matrix in blocks of columns inside one ``jax.jit`` program, composable with ``jax.jit``,
``jax.vmap`` and ``jax.grad``. The zodiax calls (``hessian(f, x, nbatches)``...) are a thin
layer over them that reuses a program for a new function of the same code and equal
captures (``capture``), bounds memory (``max_memory``), shows progress and warns about
float32 and non-finite results.

Matrix-free curvature for large models: ``hessian_operator`` and ``fisher_operator`` are
lineax linear operators (products, never the matrix), and ``marginal_variances`` (conjugate
gradients), ``low_rank_approximation`` (Lanczos) and ``log_determinant`` (stochastic Lanczos
quadrature) work on them, each reporting its own accuracy.

>>> import jax.numpy as jnp
>>> import zdx_batching as batching
>>> H, unflatten = batching.hessian(lambda p: jnp.sum(p["x"] ** 2), {"x": jnp.ones(3)})
>>> H.shape
(3, 3)
"""

import importlib.metadata

from . import compat as compat
from ._calls import cache_info as cache_info
from ._calls import clear_cache as clear_cache
from ._calls import fisher as fisher
from ._calls import hessian as hessian
from ._calls import hessian_diagonal as hessian_diagonal
from ._calls import hvp as hvp
from ._calls import jacobian as jacobian
from ._flat import hessian_to_pytree as hessian_to_pytree
from ._lanczos import LogDeterminant as LogDeterminant
from ._lanczos import LowRankApproximation as LowRankApproximation
from ._lanczos import log_determinant as log_determinant
from ._lanczos import low_rank_approximation as low_rank_approximation
from ._operators import CurvatureOperator as CurvatureOperator
from ._operators import fisher_operator as fisher_operator
from ._operators import hessian_operator as hessian_operator
from ._reuse import NEEDS_VALUES as NEEDS_VALUES
from ._reuse import Captured as Captured
from ._reuse import CapturedJit as CapturedJit
from ._reuse import capture as capture
from ._sparse import SparseTransform as SparseTransform
from ._sparse import sparse_fisher_fn as sparse_fisher_fn
from ._sparse import sparse_hessian_fn as sparse_hessian_fn
from ._sparse import sparse_jacobian_fn as sparse_jacobian_fn
from ._sparse_calls import find_sparsity as find_sparsity
from ._sparse_calls import sparse_fisher as sparse_fisher
from ._sparse_calls import sparse_hessian as sparse_hessian
from ._sparse_calls import sparse_jacobian as sparse_jacobian
from ._sparse_factor import SchurFactor as SchurFactor
from ._sparse_matrix import SparseMatrix as SparseMatrix
from ._sparsity import Sparsity as Sparsity
from ._sparsity import SparsityError as SparsityError
from ._transforms import Transform as Transform
from ._transforms import fisher_fn as fisher_fn
from ._transforms import hessian_diagonal_fn as hessian_diagonal_fn
from ._transforms import hessian_fn as hessian_fn
from ._transforms import hvp_fn as hvp_fn
from ._transforms import jacobian_fn as jacobian_fn
from ._variances import MarginalVariances as MarginalVariances
from ._variances import marginal_variances as marginal_variances

__version__ = importlib.metadata.version("zdx-batching")
