"""max_memory picks the block size from the compiled program; progress ticks per block."""

import math
import typing

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import zdx_batching as batching
import zdx_batching._program as program_module
from zdx_batching._checks import parse_memory
from zdx_batching._memory import choose_block

GRID = jnp.linspace(0.0, 1.0, 400)
X = {"w": jnp.linspace(-0.5, 0.5, 9), "s": 0.8}  # n = 10


def loss(p):
    # intermediates of 400 points per tangent: memory grows with the block size
    basis = jnp.cos(jnp.outer(jnp.arange(9.0), GRID))
    return jnp.sum(jnp.tanh(p["w"] @ basis * p["s"]) ** 2)


class Bar:
    """Stands in for the tqdm bar and records what it was told."""

    made: typing.ClassVar[list] = []

    def __init__(self, name, total):
        self.name, self.total, self.n, self.closed = name, total, 0, False
        Bar.made.append(self)

    def update(self, k):
        self.n += k

    def close(self):
        self.closed = True


@pytest.fixture
def bars(monkeypatch):
    Bar.made = []
    monkeypatch.setattr(program_module, "progress_bar", Bar)
    return Bar.made


@pytest.fixture
def measurements(monkeypatch):
    """Record the block sizes tried by max_memory and their footprints in bytes."""
    seen: dict = {}

    def spy(name, limit, largest, measure, prefetch=None):
        def recorded(block):
            seen[block] = measure(block)
            return seen[block]

        return choose_block(name, limit, largest, recorded, prefetch)

    monkeypatch.setattr(program_module, "choose_block", spy)
    return seen


@pytest.fixture(scope="module")
def expected():
    x_flat, unravel = jax.flatten_util.ravel_pytree(X)
    return jax.jit(jax.hessian(lambda z: loss(unravel(z))))(x_flat)


@pytest.mark.parametrize(
    ("text", "nbytes"),
    [
        ("2GB", 2 * 10**9),
        ("512MiB", 512 * 2**20),
        ("1.5 kb", 1500),
        ("64", 64),
        ("3e3B", 3000),
    ],
)
def test_memory_sizes_are_read_with_their_units(text, nbytes):
    assert parse_memory("hessian", text) == nbytes
    assert parse_memory("hessian", 1024) == 1024


def test_the_search_finds_the_largest_block_that_fits():
    def linear(block):
        return 1000 + 100 * block

    assert choose_block("hessian", 10**6, 20, linear)[0] == 20
    assert choose_block("hessian", 1750, 20, linear)[0] == 7
    assert choose_block("hessian", 1100, 20, linear)[0] == 1

    def curved(block):  # grows faster than a line: the first guess is too big
        return 1000 + 10 * block**2

    block, seen = choose_block("hessian", 2000, 20, curved)
    assert curved(block) <= 2000 and block >= 9
    assert len(seen) <= 6
    with pytest.raises(ValueError, match="one column needs 1100 bytes"):
        choose_block("hessian", 1050, 20, linear)


def test_two_small_blocks_predict_the_block_and_its_own_program_verifies_it():
    def linear(block):
        return 1000 + 100 * block

    prefetched = []
    block, seen = choose_block("hessian", 1750, 20, linear, prefetched.append)
    assert prefetched == [(2, 3)]  # the two small programs, compiled side by side
    assert block == 7 and sorted(seen) == [2, 3, 7]  # three compiles, the last one kept

    # the line says that three columns are the most: no block of four is compiled
    block, seen = choose_block("hessian", 1350, 20, linear, prefetched.append)
    assert block == 3 and sorted(seen) == [2, 3]

    def steeper(block):  # a line from the small blocks predicts too much: step down
        return 1000 + 100 * block + (200 * (block - 6) if block > 6 else 0)

    block, seen = choose_block("hessian", 1750, 20, steeper)
    assert steeper(block) <= 1750 < steeper(block + 1)
    assert len(seen) <= 5


def test_a_large_bound_keeps_one_block_and_a_progress_bar_counts_it(expected, bars, measurements):
    H, _ = batching.hessian(loss, X, max_memory="10GB", progress=True)
    np.testing.assert_allclose(np.asarray(H), np.asarray(expected), rtol=1e-12)
    # two small blocks predict that the largest fits; its own analysis confirms it
    assert list(measurements) == [2, 3, 10]
    assert bars[0].total == len(jax.devices()) and bars[0].n == bars[0].total and bars[0].closed


def test_a_tight_bound_gives_smaller_blocks_within_it(expected, bars, measurements):
    batching.hessian(loss, X, max_memory=10**12, nbatches=10)  # blocks of one column
    one_column = measurements.pop(1)
    batching.hessian(loss, X, max_memory=10**12)  # one block of ten columns
    all_columns = measurements.pop(10)
    assert all_columns > one_column
    limit = (one_column + all_columns) // 2
    H, _ = batching.hessian(loss, X, max_memory=limit, progress=True)
    np.testing.assert_allclose(np.asarray(H), np.asarray(expected), rtol=1e-12)
    chosen = max(block for block, size in measurements.items() if size <= limit)
    assert 1 <= chosen < 10
    ndev = len(jax.devices())
    blocks = math.ceil(10 / chosen)
    assert bars[-1].total == math.ceil(blocks / ndev) * ndev
    assert bars[-1].n == bars[-1].total


def test_the_search_traces_f_once_for_every_block_it_measures(expected, measurements):
    traces = []

    def counted(p):
        traces.append(1)
        return loss(p)

    H, _ = batching.hessian(counted, X, max_memory=10**12, nbatches=2)
    np.testing.assert_allclose(np.asarray(H), np.asarray(expected), rtol=1e-12)
    assert len(measurements) >= 2  # several programs lowered ...
    assert len(traces) == 1  # ... from one trace of f


@pytest.mark.parametrize("nbatches", [1, 3, 4])
def test_progress_counts_every_block(expected, bars, nbatches):
    H, _ = batching.hessian(loss, X, nbatches=nbatches, progress=True)
    np.testing.assert_allclose(np.asarray(H), np.asarray(expected), rtol=1e-12)
    ndev = len(jax.devices())
    assert bars[-1].total % ndev == 0 and bars[-1].total >= nbatches
    assert bars[-1].n == bars[-1].total and bars[-1].closed


def test_progress_without_jit(expected, bars):
    _F, _ = batching.fisher(
        lambda p: jnp.tanh(p["w"] * p["s"]), X, nbatches=5, jit=False, progress=True
    )
    assert bars[-1].n == bars[-1].total == 5


def test_a_program_compiled_only_to_be_measured_has_the_footprint_of_the_full_compile():
    from zdx_batching._memory import footprint
    from zdx_batching._program import measure_only_options

    def blocks_of_products(w):
        gradient = jax.grad(lambda z: loss({"w": z, "s": 0.8}))
        products = jax.vmap(lambda v: jax.jvp(gradient, (w,), (v,))[1])
        return jax.lax.map(products, jnp.eye(9).reshape(3, 3, 9))

    lowered = jax.jit(blocks_of_products).lower(X["w"])
    options = measure_only_options(jax.devices()[0].platform)
    # the options are accepted (no fallback), and the buffers are those of the full compile
    assert footprint(lowered.compile(options), "hessian") == footprint(
        jax.jit(blocks_of_products).lower(X["w"]).compile(), "hessian"
    )


@pytest.mark.parametrize(
    ("columns", "function"),
    [
        ("HessianColumns", loss),
        ("DiagonalColumns", loss),
        ("JacobianColumns", lambda p: jnp.tanh(jnp.outer(p["w"], GRID) * p["s"])),
        ("FisherColumns", lambda p: jnp.tanh(jnp.outer(p["w"], GRID) * p["s"])),
    ],
)
@pytest.mark.parametrize("block", [1, 2, 3, 4])
def test_every_kind_of_program_measures_as_it_compiles_in_full(columns, function, block):
    from zdx_batching import _columns
    from zdx_batching._memory import footprint
    from zdx_batching._program import compile_to_measure

    kind = getattr(_columns, columns)()
    transform = batching.Transform(kind, function, nbatches=1, max_memory="1GB")
    jitted = jax.jit(transform.program(block))
    platform = jax.devices()[0].platform
    probe = compile_to_measure(jitted.lower(X, None, None), platform)
    full = jitted.lower(X, None, None).compile()
    assert footprint(probe, columns) == footprint(full, columns)


def test_compile_options_this_compiler_does_not_know_are_left_out_of_the_measurement():
    from zdx_batching._program import MEASURE_ONLY_CPU, measure_only_options
    from zdx_batching.compat import supported_compile_options

    wanted = {**MEASURE_ONLY_CPU, "xla_no_such_option_in_any_version": True}
    kept = supported_compile_options(wanted, "cpu")
    assert "xla_no_such_option_in_any_version" not in kept
    assert kept.items() <= wanted.items()
    assert measure_only_options("cpu") == supported_compile_options(MEASURE_ONLY_CPU, "cpu")
    assert "xla_backend_optimization_level" in kept  # known to every supported jaxlib
