"""The zodiax 0.4 names that zodiax 0.5 removed, as thin shims over the current API.

Each works as its zodiax 0.4.1 namesake, on any pytree (not only ``zodiax.Base``), with
parameter paths (``"a.b.c"``, a ``zdx_base.Path`` or a nested list of those), and emits a
``DeprecationWarning`` naming its replacement. :data:`REPLACEMENTS` is the one source of
that text: the warnings, the docstrings' deprecation notes and the README's migration table
are made from it. The work is done by zdx_base (paths), zdx_opt (``map_optimisers``,
``delay``), zdx_batching (``hessian``), equinox and optax.

The names live by job: ``_deprecated_trees`` (filters and filtered derivatives),
``_deprecated_optimisers`` (schedules and optimisers), ``_deprecated_fisher``
(``fisher_matrix``, the observed information, and its inverse ``covariance_matrix``),
``_legacy_inputs`` (reading zodiax 0.4's arguments) and ``_replacements`` (the table and
the warning).
"""

from ._deprecated_fisher import covariance_matrix as covariance_matrix
from ._deprecated_fisher import fisher_matrix as fisher_matrix
from ._deprecated_optimisers import adam as adam
from ._deprecated_optimisers import get_optimiser as get_optimiser
from ._deprecated_optimisers import scheduler as scheduler
from ._deprecated_optimisers import sgd as sgd
from ._deprecated_trees import apply_updates as apply_updates
from ._deprecated_trees import boolean_filter as boolean_filter
from ._deprecated_trees import filter_grad as filter_grad
from ._deprecated_trees import filter_jit as filter_jit
from ._deprecated_trees import filter_value_and_grad as filter_value_and_grad
from ._deprecated_trees import set_array as set_array
from ._replacements import REPLACEMENTS as REPLACEMENTS
from ._replacements import migration_table as migration_table

__all__ = [
    "adam",
    "apply_updates",
    "boolean_filter",
    "covariance_matrix",
    "filter_grad",
    "filter_jit",
    "filter_value_and_grad",
    "fisher_matrix",
    "get_optimiser",
    "scheduler",
    "set_array",
    "sgd",
]
