"""``zdx_batching.compat``: what differs between the JAX lines the family supports, checked
on the JAX of this environment (the test matrix runs it on JAX 0.10 and on JAX 0.12)."""

import jax
import jax.numpy as jnp
import pytest

from zdx_batching import compat

RETIRED_IN_012 = "xla_cpu_use_fusion_emitters"  # JAX 0.10's XLA knows it, 0.12's does not


def test_the_installed_jax_is_of_a_supported_line():
    oldest, newest = compat.SUPPORTED_JAX
    assert oldest <= newest
    assert compat.jax_is_supported(), (
        f"JAX {jax.__version__} is outside the supported lines {compat.SUPPORTED_JAX}: "
        "run the suite on it, then widen SUPPORTED_JAX (and the README's table)"
    )


@pytest.mark.parametrize(
    "text, expected",
    [("0.10.2", (0, 10, 2)), ("0.12.1", (0, 12, 1)), ("0.13.0.dev20270101", (0, 13, 0))],
)
def test_versions_are_read_as_numbers(text, expected):
    assert compat._parse_version(text) == expected


def test_a_version_without_three_numbers_is_refused_naming_it():
    with pytest.raises(RuntimeError, match=r"three numbers, got '0\.12'"):
        compat._parse_version("0.12")


def test_jax_at_least_compares_with_the_installed_jax():
    major, minor, patch = compat.jax_version()
    assert compat.jax_version() == compat._parse_version(jax.__version__)
    assert compat.jax_at_least(major, minor, patch)
    assert compat.jax_at_least(major, minor)
    assert not compat.jax_at_least(major, minor, patch + 1)
    assert not compat.jax_at_least(major, minor + 1)


def test_the_compile_options_kept_are_those_of_this_jax_line():
    wanted = {RETIRED_IN_012: False, "xla_backend_optimization_level": 0}
    kept = compat.supported_compile_options(wanted, "cpu")
    assert kept.get("xla_backend_optimization_level") == 0  # every supported line knows it
    if compat.jax_version()[:2] == (0, 10):
        assert kept == wanted
    elif compat.jax_at_least(0, 12):
        assert RETIRED_IN_012 not in kept


def test_a_retired_option_makes_the_compile_fail_as_the_helper_expects():
    # What the helper probes: an unknown option is an error at compile time, whose message
    # the helper reads as "unknown option" (JAX 0.12: "No such compile option: '...'").
    lowered = jax.jit(lambda v: v + 1).lower(jnp.float32(1))
    name = "xla_no_such_option_in_any_version"
    with pytest.raises(Exception) as raised:
        lowered.compile({name: True})
    assert compat._is_unknown_option(str(raised.value), name)


@pytest.mark.parametrize(
    "message, unknown",
    [
        ("INVALID_ARGUMENT: No such compile option: 'xla_cpu_use_fusion_emitters'", True),
        ("Unknown flag in XLA_FLAGS: --xla_cpu_use_fusion_emitters", True),
        ("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 8 bytes.", False),
    ],
)
def test_only_errors_about_the_option_are_taken_for_an_unknown_option(message, unknown):
    assert compat._is_unknown_option(message, RETIRED_IN_012) == unknown


def test_the_complex_abs_flag_says_what_this_jax_does():
    # d²/da² |a (1 + 0j)|² at a = 0: 2 in exact arithmetic; JAX before 0.12.1 gives 0 (its
    # convention for the derivative of abs at 0), 0.12.1 NaN. A JAX that fixes it fails
    # here: then update compat.COMPLEX_ABS_HESSIAN_NAN_AT_ZERO.
    second = jax.hessian(lambda a: jnp.abs(a * (1 + 0j)) ** 2)(0.0)
    assert bool(jnp.isnan(second)) == compat.COMPLEX_ABS_HESSIAN_NAN_AT_ZERO


def test_asdex_imports_and_detects_on_this_jax():
    asdex = compat.import_asdex()
    pattern = asdex.jacobian_sparsity(lambda x: x[1:] * x[:-1], jnp.ones(4))
    assert sorted(zip(pattern.rows.tolist(), pattern.cols.tolist())) == [
        (0, 0),
        (0, 1),
        (1, 1),
        (1, 2),
        (2, 2),
        (2, 3),
    ]


def test_the_asdex_shim_is_still_needed_where_it_applies():
    # When this fails, asdex no longer reads ClosedJaxpr from jax._src.core on JAX 0.12:
    # drop compat.import_asdex's shim.
    import importlib.util
    import pathlib

    spec = importlib.util.find_spec("asdex")
    api = pathlib.Path(spec.origin).parent / "detection" / "_api.py"
    reads_private_name = "from jax._src.core import ClosedJaxpr" in api.read_text()
    assert reads_private_name, "asdex no longer imports ClosedJaxpr from jax._src.core"
