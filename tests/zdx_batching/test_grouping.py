"""nbatches=None: the library groups the columns from the shapes of the traced program."""

import typing

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import zdx_batching as batching
import zdx_batching._program as program_module
from zdx_batching._grouping import CPU_BLOCK, MIN_BYTES, blocks_pay, largest_value

# Each column of ``wide`` makes values of n * K numbers (its Hessian-vector product runs
# over the whole grid): 10 columns at once hold 10 * 10 * 8192 float64, 6.6 MB, far more
# than the 10 * 10 numbers of the Hessian. Each column of ``narrow`` makes values of
# about its own size.
GRID = jnp.linspace(0.0, 1.0, 8192)
N = 10
X = jnp.linspace(-0.5, 0.5, N)


def wide(x):
    return jnp.sum(jnp.cos(jnp.outer(x, GRID)) * GRID)


def narrow(x):
    return jnp.sum(jnp.cosh(x) + 0.25 * x**4) + jnp.sum(x[:-1] * x[1:])


class Bar:
    """Stands in for the tqdm bar: its total is the number of blocks of the plan."""

    made: typing.ClassVar[list] = []

    def __init__(self, name, total):
        self.total = total
        Bar.made.append(self)

    def update(self, k):
        pass

    def close(self):
        pass


@pytest.fixture
def blocks(monkeypatch):
    """The number of blocks of each program run (from its progress bar)."""
    Bar.made = []
    monkeypatch.setattr(program_module, "progress_bar", Bar)
    return Bar.made


@pytest.fixture(autouse=True)
def fresh_cache():
    batching.clear_cache()
    yield
    batching.clear_cache()


def test_columns_that_make_large_values_are_grouped_in_blocks_of_four(blocks):
    H, _ = batching.hessian(wide, X, progress=True)
    assert blocks[-1].total == -(-N // CPU_BLOCK)
    expected = jax.jit(jax.hessian(wide))(X)
    np.testing.assert_allclose(H, expected, rtol=1e-12, atol=1e-12 * float(jnp.abs(expected).max()))


def test_columns_that_make_values_of_their_own_size_run_all_at_once(blocks):
    H, _ = batching.hessian(narrow, X, progress=True)
    assert blocks[-1].total == 1
    np.testing.assert_array_equal(H, jax.jit(jax.hessian(narrow))(X))


@pytest.mark.parametrize(
    ("compute", "function", "reference"),
    [
        (batching.jacobian, lambda x: jnp.cos(jnp.outer(x, GRID)).sum(0), jax.jacfwd),
        (batching.fisher, lambda x: jnp.cos(jnp.outer(x, GRID)).sum(0), None),
        (batching.hessian_diagonal, wide, None),
    ],
)
def test_every_kind_of_matrix_is_grouped_the_same_way(blocks, compute, function, reference):
    result, _ = compute(function, X, progress=True)
    assert blocks[-1].total == -(-N // CPU_BLOCK)
    if reference is jax.jacfwd:
        expected = jax.jacfwd(function)(X)
    elif compute is batching.fisher:
        J = jax.jacfwd(function)(X)
        expected = J.T @ J
    else:
        expected = jnp.diag(jax.hessian(function)(X))
    scale = float(jnp.abs(expected).max())
    np.testing.assert_allclose(result, expected, rtol=1e-12, atol=1e-12 * scale)


def test_an_explicit_nbatches_is_kept(blocks):
    batching.hessian(wide, X, nbatches=1, progress=True)
    batching.hessian(narrow, X, nbatches=5, progress=True)
    assert [bar.total for bar in blocks] == [1, 5]


def test_the_choice_gives_the_same_bits_on_every_run():
    first, _ = batching.hessian(wide, X)
    batching.clear_cache()
    again, _ = batching.hessian(wide, X)
    np.testing.assert_array_equal(first, again)


def test_the_rule_reads_the_largest_value_against_the_columns():
    wide_program = jax.make_jaxpr(jax.hessian(wide))(X)
    narrow_program = jax.make_jaxpr(jax.hessian(narrow))(X)
    assert largest_value(wide_program.jaxpr) >= N * N * GRID.size * 8
    assert blocks_pay(wide_program, N, 8)
    assert not blocks_pay(narrow_program, N, 8)
    # large against the columns, but too small to leave the caches: all at once
    small = jnp.linspace(0.0, 1.0, 64)
    tiny_program = jax.make_jaxpr(jax.hessian(lambda x: jnp.sum(jnp.cos(jnp.outer(x, small)))))
    assert largest_value(tiny_program(X).jaxpr) < MIN_BYTES
    assert not blocks_pay(tiny_program(X), N, 8)


def test_the_largest_value_is_found_inside_nested_programs():
    big = jnp.zeros((512, 512))

    def branches(x):
        return jax.lax.cond(x > 0, lambda y: (big + y).sum(), lambda y: y, x)

    def loop(x):
        return jax.lax.scan(lambda c, _: (c + (big * c).sum(), None), x, None, length=2)[0]

    for function in (branches, loop, jax.jit(lambda x: (big * x).sum())):
        assert largest_value(jax.make_jaxpr(function)(1.0).jaxpr) == big.size * big.dtype.itemsize


def test_nbatches_none_is_accepted_everywhere_and_other_types_are_named():
    x = {"a": jnp.ones(3)}
    for jit in (True, False):
        H, _ = batching.hessian(lambda p: jnp.sum(p["a"] ** 3), x, nbatches=None, jit=jit)
        np.testing.assert_allclose(H, 6.0 * jnp.eye(3))
    H, _ = batching.hessian(lambda p: jnp.sum(p["a"] ** 3), x, max_memory="1GB")
    np.testing.assert_allclose(H, 6.0 * jnp.eye(3))
    with pytest.raises(TypeError, match=r"hessian: nbatches must be a positive integer or None"):
        batching.hessian(lambda p: jnp.sum(p["a"] ** 3), x, nbatches="2")
