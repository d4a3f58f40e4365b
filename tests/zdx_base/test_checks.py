"""zdx_base.checks: one convention for argument errors across the family.

A wrong type raises TypeError, a wrong value ValueError, and every message starts with the
function and the argument and shows what was given.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zdx_base import checks


class TestIntegers:
    @pytest.mark.parametrize("value", [3, np.int64(3), np.array(3), jnp.array(3)])
    def test_integers_of_every_kind_are_returned_as_int(self, value):
        result = checks.check_int("fit", "steps", value, minimum=1)
        assert result == 3 and type(result) is int

    @pytest.mark.parametrize("value", [True, 3.0, "3", np.array([3]), jnp.array(3.0)])
    def test_a_non_integer_is_a_type_error(self, value):
        with pytest.raises(TypeError, match=r"^fit: steps must be an integer >= 1, got "):
            checks.check_int("fit", "steps", value, minimum=1)

    def test_out_of_range_is_a_value_error_showing_the_value(self):
        with pytest.raises(ValueError, match=r"^fit: steps must be an integer >= 1, got steps=0"):
            checks.check_int("fit", "steps", 0, minimum=1)
        with pytest.raises(ValueError, match=r"in \[1, 4\], got steps=5"):
            checks.check_int("fit", "steps", 5, minimum=1, maximum=4)

    def test_none_only_when_allowed(self):
        assert checks.check_int("fit", "steps", None, allow_none=True) is None
        with pytest.raises(TypeError, match="got NoneType None"):
            checks.check_int("fit", "steps", None)


class TestNumbers:
    @pytest.mark.parametrize("value", [0.5, 1, np.float32(0.5), jnp.array(0.5)])
    def test_real_numbers_are_returned_as_float(self, value):
        assert type(checks.check_number("fit", "lr", value, positive=True)) is float

    @pytest.mark.parametrize("value", [False, "0.1", [0.1], 1j])
    def test_a_non_number_is_a_type_error(self, value):
        with pytest.raises(TypeError, match=r"^fit: lr must be a finite number > 0, got "):
            checks.check_number("fit", "lr", value, positive=True)

    @pytest.mark.parametrize("value", [0.0, -1.0, float("nan"), float("inf")])
    def test_not_positive_or_not_finite_is_a_value_error(self, value):
        with pytest.raises(ValueError, match=r"^fit: lr must be a finite number > 0, got lr="):
            checks.check_number("fit", "lr", value, positive=True)

    def test_inclusive_bounds(self):
        assert checks.check_number("f", "p", 1.0, minimum=0, maximum=1) == 1.0
        with pytest.raises(ValueError, match=r"in \[0, 1\], got p=1.5"):
            checks.check_number("f", "p", 1.5, minimum=0, maximum=1)


class TestOtherScalars:
    def test_callable(self):
        assert checks.check_callable("fit", "loss_fn", len) is len
        with pytest.raises(TypeError, match=r"^fit: loss_fn must be a loss, got int 3\.$"):
            checks.check_callable("fit", "loss_fn", 3, "a loss")

    def test_bool(self):
        assert checks.check_bool("fit", "progress", np.bool_(True)) is True
        with pytest.raises(TypeError, match=r"^fit: progress must be True or False, got int 1"):
            checks.check_bool("fit", "progress", 1)

    def test_choice(self):
        assert checks.check_choice("nuts", "method", "mams", ("nuts", "mams")) == "mams"
        with pytest.raises(ValueError, match=r"^nuts: method must be one of 'nuts', 'mams'"):
            checks.check_choice("nuts", "method", "hmc", ("nuts", "mams"))
        with pytest.raises(ValueError, match="got list"):
            checks.check_choice("nuts", "method", ["nuts"], ("nuts", "mams"))

    def test_keys_from_seeds_raw_keys_and_none(self):
        typed = checks.as_key("f", "key", 3)
        assert jnp.array_equal(jax.random.key_data(typed), jax.random.key_data(jax.random.key(3)))
        raw = jax.random.PRNGKey(3)
        assert jnp.array_equal(jax.random.key_data(checks.as_key("f", "key", raw)), raw)
        assert jnp.array_equal(
            jax.random.key_data(checks.as_key("f", "key", None)),
            jax.random.key_data(jax.random.key(0)),
        )
        with pytest.raises(TypeError, match=r"^f: key must be a JAX PRNG key"):
            checks.as_key("f", "key", 1.5)

    def test_describe_shortens_long_values(self):
        text = checks.describe("x" * 200)
        assert text.startswith("str 'xxx") and text.endswith("...") and len(text) < 70


class TestMatrices:
    def test_square_matrix_casts_integers_and_checks_the_side(self):
        matrix = checks.as_square_matrix("f", "fisher", [[1, 0], [0, 1]], size=2)
        assert jnp.issubdtype(matrix.dtype, jnp.floating)
        with pytest.raises(ValueError, match=r"^f: fisher must have shape \(3, 3\)"):
            checks.as_square_matrix("f", "fisher", np.eye(2), size=3)
        with pytest.raises(ValueError, match="got shape \\(2, 3\\)"):
            checks.as_square_matrix("f", "fisher", np.ones((2, 3)))
        with pytest.raises(TypeError, match="must be a real matrix"):
            checks.as_square_matrix("f", "fisher", np.eye(2) * 1j)

    def test_finite(self):
        bad = jnp.array([[1.0, jnp.nan], [jnp.inf, 1.0]])
        with pytest.raises(ValueError, match=r"^f: m must have finite entries, got 2 NaN"):
            checks.check_finite_matrix("f", "m", bad)

    def test_symmetric_returns_the_symmetric_part_within_rounding(self):
        matrix = jnp.array([[2.0, 1.0], [1.0 + 1e-12, 2.0]])
        result = checks.check_symmetric_matrix("f", "m", matrix)
        assert jnp.array_equal(result, result.T)
        with pytest.raises(ValueError, match=r"^f: m must be symmetric"):
            checks.check_symmetric_matrix("f", "m", jnp.array([[2.0, 1.0], [0.0, 2.0]]))

    def test_symmetry_is_checked_inside_jit_when_the_program_runs(self):
        run = jax.jit(lambda m: checks.check_symmetric_matrix("f", "m", m))
        assert jnp.allclose(run(jnp.eye(2)), jnp.eye(2))
        with pytest.raises(Exception, match="must be symmetric"):
            run(jnp.array([[2.0, 1.0], [0.0, 2.0]])).block_until_ready()

    def test_positive_definite_returns_the_decomposition(self):
        matrix = np.array([[4.0, 1.0], [1.0, 3.0]])
        values, vectors = checks.decompose_positive_definite("f", "fisher", matrix)
        np.testing.assert_allclose((vectors * values) @ vectors.T, matrix, atol=1e-12)
        assert values[0] <= values[1]

    def test_not_positive_definite_names_the_worst_direction(self):
        matrix = np.diag([1.0, -1e-3, 2.0])
        message = r"^f: fisher must be positive definite, got 1 of 3"
        with pytest.raises(ValueError, match=message) as info:
            checks.decompose_positive_definite("f", "fisher", matrix, names=("a", "b", "c"))
        assert "mostly along ['b'" in str(info.value)
        with pytest.raises(ValueError, match="positive definite"):
            checks.decompose_positive_definite("f", "fisher", np.zeros((2, 2)))

    def test_fail_if_raises_now_or_when_the_program_runs(self):
        with pytest.raises(TypeError, match="boom"):
            checks.fail_if(1.0, True, "boom", TypeError)
        assert checks.fail_if(1.0, False, "boom") == 1.0
        run = jax.jit(lambda x: checks.fail_if(x, x < 0, "negative"))
        assert run(1.0) == 1.0
        with pytest.raises(Exception, match="negative"):
            run(-1.0).block_until_ready()
