"""Argument checks for the packages of the family (and for libraries built on them).

Every check takes the public function's name and the argument's name first, so that its
message reads ``"fn: name must be ..., got ..."``; a wrong type raises ``TypeError``, a
wrong value ``ValueError``. Each returns the checked value in the form to go on with.
"""

from ._checks import as_array as as_array
from ._checks import as_key as as_key
from ._checks import check_bool as check_bool
from ._checks import check_callable as check_callable
from ._checks import check_choice as check_choice
from ._checks import check_int as check_int
from ._checks import check_number as check_number
from ._checks import describe as describe
from ._checks import fail_if as fail_if
from ._checks import is_traced as is_traced
from ._matrix_checks import as_square_matrix as as_square_matrix
from ._matrix_checks import check_finite_matrix as check_finite_matrix
from ._matrix_checks import check_symmetric_matrix as check_symmetric_matrix
from ._matrix_checks import decompose_positive_definite as decompose_positive_definite
from ._matrix_checks import positive_definite_floor as positive_definite_floor
from ._matrix_checks import symmetry_tolerance as symmetry_tolerance

__all__ = [
    "as_array",
    "as_key",
    "as_square_matrix",
    "check_bool",
    "check_callable",
    "check_choice",
    "check_finite_matrix",
    "check_int",
    "check_number",
    "check_symmetric_matrix",
    "decompose_positive_definite",
    "describe",
    "fail_if",
    "is_traced",
    "positive_definite_floor",
    "symmetry_tolerance",
]
