"""zdx-sample: posterior sampling and Bayesian evidence for JAX models.

A model is ``log_likelihood(params) -> scalar`` over a parameter pytree, and a prior is a
pytree of numpyro distributions with the same structure (``{"wfe":
dist.Normal(0, 100).expand([7]), ...}``). Every estimator returns an ``equinox.Module``
that knows the name of each scalar parameter (``zdx_base.ravel``):

- ``laplace``: the Gaussian approximation at the posterior mode, its Laplace evidence,
  and an importance-sampling correction (Student-t proposal) with its Pareto k-hat.
- ``sparse_laplace``: the same at the scale of thousands of parameters, from sparse
  curvature (every error bar and the evidence, exactly, with no dense matrix) or
  matrix-free curvature (by conjugate gradients and stochastic Lanczos quadrature, each
  estimate with its error).
- ``nuts``: NUTS in the whitened latent space ``params = x0 + P u``, warm-up and
  sampling of every chain in one compiled program (blackjax transitions); draws in
  physical units with R-hat, bulk ESS, divergences and gradient counts.
  ``method="mams"`` runs the Metropolis-adjusted microcanonical sampler instead.
- ``nested_sampling``: the evidence and posterior by blackjax's nested slice sampler.
- ``variational``: numpyro SVI with a full-rank Gaussian in the whitened space, started
  from the Laplace solution; the ELBO and the importance-corrected evidence.
- ``compare``: a table of evidence estimates for several models and estimators, with
  Bayes factors and a warning when estimators of the same model disagree.
- ``to_inference_data``: any result as an ArviZ ``InferenceData`` with the parameter names
  as coordinates.
- ``save_result`` / ``load_result``: any result to one file and back, every field kept;
  ``save_netcdf``: the draws as an ArviZ netCDF file.
- ``targets``: posteriors with known answers (moments, evidence) for checking a sampler.
"""

import importlib.metadata

from . import targets as targets
from ._compare import Comparison as Comparison
from ._compare import ComparisonRow as ComparisonRow
from ._compare import EvidenceEstimate as EvidenceEstimate
from ._compare import compare as compare
from ._importance import ImportanceEvidence as ImportanceEvidence
from ._inference_data import to_inference_data as to_inference_data
from ._io import load_result as load_result
from ._io import save_netcdf as save_netcdf
from ._io import save_result as save_result
from ._laplace import LaplaceResult as LaplaceResult
from ._laplace import laplace as laplace
from ._nested import NestedSamplingResult as NestedSamplingResult
from ._nested import nested_sampling as nested_sampling
from ._nuts import NUTSResult as NUTSResult
from ._nuts import nuts as nuts
from ._pareto import pareto_khat as pareto_khat
from ._sparse_laplace import SparseLaplaceResult as SparseLaplaceResult
from ._sparse_laplace import sparse_laplace as sparse_laplace
from ._variational import VariationalResult as VariationalResult
from ._variational import variational as variational

__version__ = importlib.metadata.version("zdx-sample")
