"""Batched Jacobians, Hessians and Fisher matrices over pytrees.

Every function takes a function ``f`` and a point ``x`` (any pytree of floating-point
arrays), computes the matrix in blocks of columns inside one compiled program that is
cached (a repeated call neither traces nor compiles), can bound its memory
(``max_memory``), shows progress (``progress=True``) and spreads the blocks over all of
``jax.devices()``.

>>> import jax.numpy as jnp
>>> import zdx_batching as batching
>>> H, unflatten = batching.hessian(lambda p: jnp.sum(p["x"] ** 2), {"x": jnp.ones(3)})
>>> H.shape
(3, 3)
"""

import importlib.metadata

from ._cache import cache_info as cache_info
from ._cache import clear_cache as clear_cache
from ._fisher import fisher as fisher
from ._flat import hessian_to_pytree as hessian_to_pytree
from ._hessian import hessian as hessian
from ._hessian import hessian_diagonal as hessian_diagonal
from ._hessian import hvp as hvp
from ._jacobian import jacobian as jacobian

__version__ = importlib.metadata.version("zdx-batching")
