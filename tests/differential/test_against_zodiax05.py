"""Differential suite: the same generated calls through zodiax 0.5.0 and through ours.

Hypothesis generates pytrees, paths, values and calls over zodiax 0.5's public surface
(``Base`` methods, wrappers, stats, ``hessian`` / ``jacobian`` / ``hessian_to_pytree``,
``map_optimisers``, ``delay``, ``decompose``, ``eigen_projection``, the NaN checks). The
cases are pickled, run by zodiax_calls.py in zodiax 0.5.0's own hatch environment
(``zodiax05``, a subprocess) and here, and the results must agree: the same values, dtypes
and weak types, or the same exception types.

The differences we keep on purpose are listed in DELIBERATE below, each with the README's
reason; a case is let through only when it falls under one of them, and each of them must
actually occur in the generated cases (so the list cannot go stale silently).
"""

from __future__ import annotations

import os
import pathlib
import pickle
import runpy
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tomllib
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

# map_optimisers warns about the optimisers it ignores (a deliberate difference, counted below)
pytestmark = pytest.mark.filterwarnings("ignore:map_optimisers:UserWarning")

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RUNNER = HERE / "zodiax_calls.py"
CASES_PER_KIND = {  # the suite's cost is one zodiax 0.5 subprocess plus these calls
    "path": 300,
    "wrapper": 15,
    "batching": 25,
    "optimiser": 40,
    "schedule": 20,
    "function": 80,
    "nan": 20,
    "nan_debug_nans": 20,  # the NaN checks with jax_debug_nans on, as people debugging do
}

# --------------------------------------------------------------------------------------
# Generating cases.

NAMES = ["a", "b", "c", "d"]
KEYS = ["x", "y", "z"]

floats = st.floats(-4.0, 4.0, allow_nan=False).map(lambda v: round(v, 3))
small_ints = st.integers(-5, 5)


@st.composite
def arrays(draw, dtypes=("float64", "float32", "int64"), max_size=3):
    dtype = draw(st.sampled_from(dtypes))
    shape = draw(st.sampled_from([(), (1,), (2,), (max_size,)]))
    size = int(np.prod(shape))
    values = draw(
        st.lists(floats if dtype != "int64" else small_ints, min_size=size, max_size=size)
    )
    return np.asarray(values, dtype=dtype).reshape(shape)


numeric_leaves = st.one_of(
    floats.map(lambda v: ("leaf", "py", v)),
    small_ints.map(lambda v: ("leaf", "py", v)),
    arrays().map(lambda a: ("leaf", "jnp", a)),
    arrays().map(lambda a: ("leaf", "np", a)),
)
odd_leaves = st.sampled_from(
    [("leaf", "py", "text"), ("leaf", "py", None), ("leaf", "py", True), ("leaf", "py", 1 + 2j)]
)
leaves = st.one_of(numeric_leaves, numeric_leaves, numeric_leaves, odd_leaves)


def containers(children):
    return st.one_of(
        st.dictionaries(st.sampled_from(KEYS), children, min_size=1, max_size=3).map(
            lambda d: ("dict", d)
        ),
        st.lists(children, min_size=1, max_size=3).map(lambda v: ("list", v)),
        st.lists(children, min_size=1, max_size=2).map(lambda v: ("tuple", v)),
        st.dictionaries(st.sampled_from(NAMES), children, min_size=1, max_size=3).map(
            lambda d: ("module", dict(sorted(d.items())))
        ),
    )


subtrees = st.recursive(leaves, containers, max_leaves=6)
models = st.dictionaries(st.sampled_from(NAMES), subtrees, min_size=1, max_size=4).map(
    lambda d: ("module", dict(sorted(d.items())))
)


def paths_of(description, prefix=()):
    """Every path (as keys) of a description's nodes below the root."""
    kind = description[0]
    if kind in ("dict", "module"):
        items = description[1].items()
    elif kind in ("list", "tuple"):
        items = enumerate(description[1])
    else:
        return []
    out = []
    for key, child in items:
        out.append((*prefix, str(key)))
        out.extend(paths_of(child, (*prefix, str(key))))
    return out


values = st.one_of(
    floats.map(lambda v: ("leaf", "py", v)),
    small_ints.map(lambda v: ("leaf", "py", v)),
    arrays(("float64", "float32")).map(lambda a: ("leaf", "jnp", a)),
)


@st.composite
def path_cases(draw):
    tree = draw(models)
    known = [".".join(p) for p in paths_of(tree)]
    one_path = st.one_of(st.sampled_from(known), st.sampled_from(known), st.just("missing.step"))
    group = st.lists(one_path, min_size=1, max_size=3)
    paths = draw(
        st.one_of(
            one_path,
            group,
            st.lists(st.one_of(one_path, group), min_size=1, max_size=3),
            group.map(tuple),
        )
    )
    op = draw(st.sampled_from(["get", "set", "add", "multiply", "divide", "power", "min", "max"]))
    case = {"kind": "path", "op": op, "tree": tree, "paths": paths}
    if op == "get":
        case["kwargs"] = draw(
            st.fixed_dictionaries(
                {}, optional={"as_dict": st.booleans(), "to_array": st.booleans()}
            )
        )
        return case

    def values_like(p):
        if isinstance(p, str):
            return values
        return st.one_of(
            values,
            st.tuples(*[values_like(q) for q in p]).map(lambda v: ("list", list(v))),
            st.lists(values, min_size=1, max_size=1).map(lambda v: ("list", v)),
            st.lists(values, min_size=0, max_size=4).map(lambda v: ("list", v)),
        )

    style = draw(st.sampled_from(["positional", "positional", "mapping", "keywords"]))
    if style != "positional":  # set({path: value, (path, path): value}) or set(**{path: value})
        key = one_path
        if style == "mapping":
            key = st.one_of(one_path, st.lists(one_path, min_size=1, max_size=2).map(tuple))
        case["style"] = style
        case["updates"] = draw(st.lists(st.tuples(key, values), min_size=1, max_size=3))
        return case
    case["values"] = draw(st.one_of(values_like(paths), st.just("<no value>")))
    return case


@st.composite
def wrapper_cases(draw):
    fields = draw(
        st.dictionaries(
            st.sampled_from(NAMES),
            st.one_of(
                arrays(("float64",)).map(lambda a: ("leaf", "jnp", a)),
                floats.map(lambda v: ("leaf", "py", v)),
            ),
            min_size=1,
            max_size=3,
        )
    )
    fields["a"] = ("leaf", "jnp", draw(arrays(("float64",))))  # at least one array
    attributes = ["static", "sizes", "starts", "values", "nope"]
    return {
        "kind": "wrapper",
        "tree": ("module", dict(sorted(fields.items()))),
        "attributes": attributes,
    }


float_params = st.dictionaries(
    st.sampled_from(NAMES),
    arrays(("float64",), max_size=2).map(lambda a: ("leaf", "jnp", a + 0.5)),
    min_size=1,
    max_size=3,
).map(lambda d: ("dict", d))


@st.composite
def batching_cases(draw):
    tree = draw(float_params)
    size = sum(max(1, np.asarray(leaf[2]).size) for leaf in tree[1].values())
    op = draw(st.sampled_from(["hessian", "jacobian"]))
    function = draw(st.sampled_from(["coupled", "product"] if op == "hessian" else ["three"]))
    nbatches = draw(st.integers(1, size))
    return {"kind": "batching", "op": op, "function": function, "tree": tree, "nbatches": nbatches}


@st.composite
def optimiser_cases(draw):
    params = draw(float_params)
    names = sorted(params[1])
    chosen = draw(st.lists(st.sampled_from(names), min_size=1, unique=True))
    optimisers = {}
    for name in chosen:
        optimisers[name] = (
            draw(st.sampled_from(["sgd", "adam"])),
            draw(st.sampled_from([0.1, 1.0])),
        )
    if len(chosen) >= 2 and draw(st.booleans()):  # two names sharing one optimiser
        for name in chosen[:2]:
            del optimisers[name]
        optimisers[tuple(chosen[:2])] = ("sgd", 0.5)
    if draw(st.integers(0, 4)) == 0:
        optimisers["unknown"] = ("sgd", 1.0)
    grads = ("dict", {k: ("leaf", "jnp", np.asarray(v[2]) * 0 + 1.5) for k, v in params[1].items()})
    strict = draw(st.booleans())
    return {
        "kind": "optimiser",
        "tree": params,
        "optimisers": optimisers,
        "strict": strict,
        "grads": grads,
    }


schedule_cases = st.builds(
    lambda lr, start, length, steps: {
        "kind": "schedule",
        "args": (lr, start, length),
        "steps": steps,
    },
    st.sampled_from([1e-2, 0.5, 3.0]),
    st.integers(0, 6),
    st.integers(1, 4),
    st.lists(st.integers(0, 12), min_size=1, max_size=5),
)


@st.composite
def square_matrices(draw, kind, n=None):
    n = draw(st.integers(1, 4)) if n is None else n
    entries = np.asarray(draw(st.lists(floats, min_size=n * n, max_size=n * n))).reshape(n, n)
    if kind == "spd":
        entries = entries @ entries.T + n * np.eye(n)
    elif kind == "symmetric":
        entries = entries + entries.T
    return ("leaf", "jnp", entries)


@st.composite
def function_cases(draw):
    op = draw(
        st.sampled_from(
            [
                "z_score",
                "loglike",
                "chi2",
                "chi2r",
                "chi2r_from_z",
                "ddof",
                "mv_z_score",
                "mv_loglike",
                "gauss_hessian",
                "calc_entropy",
                "check_symmetric",
                "check_positive_semi_definite",
                "decompose",
                "eigen_projection",
            ]
        )
    )
    n = draw(st.integers(1, 4))
    vector = st.lists(floats, min_size=n, max_size=n).map(lambda v: ("leaf", "jnp", np.asarray(v)))
    positive = st.lists(st.floats(0.1, 3.0), min_size=n, max_size=n).map(
        lambda v: ("leaf", "jnp", np.asarray(v))
    )
    matrix = st.builds(
        lambda a: ("leaf", "jnp", a @ a.T + n * np.eye(n)),
        st.lists(floats, min_size=n * n, max_size=n * n).map(lambda v: np.asarray(v).reshape(n, n)),
    )
    kwargs = {}
    if op in ("z_score", "loglike", "chi2"):
        args = [draw(vector), draw(vector), draw(positive)]
    elif op == "chi2r":
        args = [draw(vector), draw(vector), draw(positive), ("leaf", "py", draw(st.integers(1, 3)))]
    elif op == "chi2r_from_z":
        args = [draw(vector), ("leaf", "py", draw(st.integers(1, 3)))]
    elif op == "ddof":
        args = [draw(vector), draw(arrays(("float64",)).map(lambda a: ("leaf", "jnp", a)))]
    elif op in ("mv_z_score", "mv_loglike"):
        # mostly covariances; also matrices that are not one (not symmetric, indefinite)
        covariance = st.one_of(
            matrix, matrix, square_matrices("any", n), square_matrices("symmetric", n)
        )
        args = [draw(vector), draw(vector), draw(covariance)]
    elif op == "gauss_hessian":
        jac = st.lists(floats, min_size=2 * n, max_size=2 * n).map(
            lambda v: ("leaf", "jnp", np.asarray(v).reshape(2, n))
        )
        args = [draw(jac)]
        if draw(st.booleans()):
            diagonal = st.just(("leaf", "jnp", np.diag(np.arange(1.0, 3.0))))
            args.append(
                draw(
                    st.one_of(
                        diagonal,
                        square_matrices("spd", 2),
                        square_matrices("any", 2),
                        square_matrices("symmetric", 2),
                    )
                )
            )
    elif op == "decompose":
        args = [draw(matrix)]
        kwargs = {"normalise": draw(st.booleans())}
    elif op == "eigen_projection":
        args = [draw(matrix)]
    else:
        args = [draw(st.one_of(matrix, square_matrices("any"), square_matrices("symmetric")))]
    return {"kind": "function", "op": op, "args": args, "kwargs": kwargs}


@st.composite
def nan_cases(draw):
    leaves = st.one_of(
        arrays(("float64", "float32")).map(lambda a: ("leaf", "jnp", a)),
        st.sampled_from([np.nan, 1.0]).map(lambda v: ("leaf", "jnp", np.asarray([v, 2.0]))),
    )
    op = draw(st.sampled_from(["zero_nan_check", "debug_nan_check"]))
    if op == "debug_nan_check":  # on a NaN both stop in the interactive debugger
        leaves = arrays(("float64", "float32")).map(lambda a: ("leaf", "jnp", a))
    tree = draw(st.dictionaries(st.sampled_from(KEYS), leaves, min_size=1, max_size=3))
    return {"kind": "nan", "op": op, "tree": ("dict", tree)}


@st.composite
def nan_debug_nans_cases(draw):
    """The NaN checks called with ``jax_debug_nans`` on, on leaves of every maker (a NaN in
    a NumPy array or a Python float is where a conversion would raise)."""
    makers = st.sampled_from(["py", "np", "jnp"])
    value = st.sampled_from([np.nan, 1.5, -0.25])
    scalar = st.tuples(makers, value).map(lambda mv: ("leaf", mv[0], mv[1]))
    vector = st.tuples(st.sampled_from(["np", "jnp"]), value).map(
        lambda mv: ("leaf", mv[0], np.asarray([mv[1], 2.0]))
    )
    tree = draw(st.dictionaries(st.sampled_from(KEYS), scalar | vector, min_size=1, max_size=3))
    return {
        "kind": "nan_debug_nans",
        "op": "zero_nan_check",
        "tree": ("dict", tree),
        "debug_nans": True,
    }


STRATEGIES = {
    "path": path_cases(),
    "wrapper": wrapper_cases(),
    "batching": batching_cases(),
    "optimiser": optimiser_cases(),
    "schedule": schedule_cases,
    "function": function_cases(),
    "nan": nan_cases(),
    "nan_debug_nans": nan_debug_nans_cases(),
}


# Hand-written cases that every run includes beside the generated ones, so that each
# deliberate difference is exercised whatever the generator draws.
EXPLICIT_CASES = {
    "path": [
        {  # one bare value for a nested list of paths
            "kind": "path",
            "op": "set",
            "tree": ("module", {"a": ("leaf", "py", 1.0), "b": ("leaf", "py", 2.0)}),
            "paths": [["a"], "b"],
            "values": ("leaf", "py", 1.5),
        },
        {  # paths and no value
            "kind": "path",
            "op": "set",
            "tree": ("module", {"a": ("leaf", "py", 1.0)}),
            "paths": "a",
            "values": "<no value>",
        },
        {  # a complex leaf
            "kind": "path",
            "op": "get",
            "tree": ("module", {"a": ("leaf", "py", 1 + 2j)}),
            "paths": "a",
            "kwargs": {},
        },
        {  # a complex leaf, then a string
            "kind": "path",
            "op": "get",
            "tree": (
                "module",
                {"d": ("module", {"a": ("leaf", "py", 1 + 2j), "b": ("leaf", "py", "text")})},
            ),
            "paths": "d",
            "kwargs": {},
        },
        {  # a missing path is reported before a value that cannot be added
            "kind": "path",
            "op": "add",
            "tree": ("module", {"a": ("leaf", "py", "text"), "b": ("leaf", "py", 1.0)}),
            "paths": ["a", "missing.step"],
            "values": ("leaf", "py", 1.0),
        },
        {  # the first value for a path named twice is combined too (and fails)
            "kind": "path",
            "op": "min",
            "tree": ("module", {"a": ("leaf", "py", 1.0)}),
            "paths": ["a", "a"],
            "values": ("list", [("leaf", "py", "text"), ("leaf", "py", 2.0)]),
        },
        {  # a path inside another
            "kind": "path",
            "op": "set",
            "tree": ("module", {"d": ("dict", {"y": ("leaf", "py", 1.0)})}),
            "paths": ["d.y", "d"],
            "values": ("list", [("leaf", "py", 2.0), ("leaf", "py", 3.0)]),
        },
    ],
    "optimiser": [
        {  # an optimiser for a name that is not a parameter, strict=False
            "kind": "optimiser",
            "tree": ("dict", {"a": ("leaf", "jnp", np.asarray([1.0, 2.0]))}),
            "optimisers": {"a": ("sgd", 0.1), "unknown": ("sgd", 1.0)},
            "strict": False,
            "grads": ("dict", {"a": ("leaf", "jnp", np.asarray([1.5, 1.5]))}),
        },
    ],
    "function": [
        {  # the entropy of a symmetric matrix with a negative eigenvalue
            "kind": "function",
            "op": "calc_entropy",
            "args": [("leaf", "jnp", np.asarray([[1.0, 2.0], [2.0, 1.0]]))],
            "kwargs": {},
        },
        {  # a lower triangle that is positive definite, a symmetric part that is not
            "kind": "function",
            "op": "calc_entropy",
            "args": [("leaf", "jnp", np.asarray([[2.942, 4.0], [0.5, 0.5]]))],
            "kwargs": {},
        },
        {  # a covariance that is not symmetric (its symmetric part is positive definite)
            "kind": "function",
            "op": "mv_z_score",
            "args": [
                ("leaf", "jnp", np.asarray([0.3, -0.2])),
                ("leaf", "jnp", np.zeros(2)),
                ("leaf", "jnp", np.asarray([[3.028, -3.343], [0.013, 1.97]])),
            ],
            "kwargs": {},
        },
        {  # the curvature with a covariance that is indefinite
            "kind": "function",
            "op": "gauss_hessian",
            "args": [
                ("leaf", "jnp", np.asarray([[1.0, 2.0], [0.5, -1.0]])),
                ("leaf", "jnp", np.asarray([[1.0, 2.0], [2.0, 1.0]])),
            ],
            "kwargs": {},
        },
        {  # eigenvalues 1 and 1, but v @ mat @ v < 0 for v = (1, -1)
            "kind": "function",
            "op": "check_positive_semi_definite",
            "args": [("leaf", "jnp", np.asarray([[1.0, 4.0], [0.0, 1.0]]))],
            "kwargs": {},
        },
        {  # equal rows: exactly singular, eigenvalues 0 and 0.6
            "kind": "function",
            "op": "check_positive_semi_definite",
            "args": [("leaf", "jnp", np.asarray([[0.3, 0.3], [0.3, 0.3]]))],
            "kwargs": {},
        },
    ],
    "nan_debug_nans": [
        {  # zodiax 0.5 returns zero here; a conversion to a JAX array first would raise
            "kind": "nan_debug_nans",
            "op": "zero_nan_check",
            "tree": (
                "dict",
                {
                    "x": ("leaf", "np", np.asarray([np.nan, 2.0])),
                    "y": ("leaf", "py", float("nan")),
                    "z": ("leaf", "np", np.float64("nan")),
                },
            ),
            "debug_nans": True,
        },
    ],
}


def generate(kind: str, count: int | None = None, seed: int | None = None) -> list[dict]:
    """``count`` cases of ``kind`` (``CASES_PER_KIND[kind]`` by default): the same on
    every run without a ``seed`` (derandomized), others for each ``seed`` (explore.py)."""
    cases: list[dict] = []

    @settings(
        max_examples=CASES_PER_KIND[kind] if count is None else count,
        derandomize=seed is None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        deadline=None,
    )
    @given(STRATEGIES[kind])
    def gather(case):
        cases.append(case)

    if seed is not None:
        gather = hypothesis_seed(seed)(gather)
    gather()
    return cases


# --------------------------------------------------------------------------------------
# Running both sides.


def _hatch() -> str | None:
    """The hatch executable (on PATH, or the one that launched this run), or None."""
    hatch = shutil.which("hatch")
    launcher = os.environ.get("_", "")
    if hatch is None and os.path.basename(launcher) == "hatch":
        hatch = launcher
    return hatch


NO_HATCH = (
    "zodiax 0.5.0's side of the differential suite runs in hatch's `zodiax05` environment, "
    "and `hatch` is not on the PATH of this test process: install it "
    '(`pip install "hatch>=1.18"`) and run `hatch test`, or put it on the PATH'
)


def zodiax05_environment() -> str:
    """The hatch environment of zodiax 0.5.0 on this process's Python (``zodiax05.py3.13``):
    both sides must run the same JAX, which the Python decides."""
    return f"zodiax05.py{sys.version_info.major}.{sys.version_info.minor}"


def run_both(cases: list[dict], folder: pathlib.Path) -> dict[str, list]:
    """``{kind: [(case, theirs, ours)]}``: ``cases`` run by zodiax 0.5.0 (its own hatch
    environment, a subprocess writing into ``folder``) and by ours (this process)."""
    hatch = _hatch()
    if hatch is None:
        pytest.skip(NO_HATCH)
    (folder / "cases.pkl").write_bytes(pickle.dumps(cases))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHONPATH"))}
    done = subprocess.run(
        [
            hatch,
            "run",
            f"{zodiax05_environment()}:python",
            str(RUNNER),
            str(folder / "cases.pkl"),
            str(folder / "theirs.pkl"),
        ],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,  # debug_nan_check's breakpoints meet an empty input
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(done.stdout[-3000:] + done.stderr[-3000:])
    theirs = pickle.loads((folder / "theirs.pkl").read_bytes())
    ours = runpy.run_path(str(RUNNER))["run_all"](cases)
    assert theirs["versions"]["zodiax"] == "0.5.0", theirs["versions"]
    assert ours["versions"]["zodiax"] != "0.5.0"
    assert theirs["versions"]["jax"] == ours["versions"]["jax"], (
        theirs["versions"],
        ours["versions"],
    )
    by_kind: dict[str, list] = {kind: [] for kind in CASES_PER_KIND}
    for case, a, b in zip(cases, theirs["results"], ours["results"]):
        by_kind[case["kind"]].append((case, a, b))
    return by_kind


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    """``{kind: [(case, theirs, ours)]}`` of the generated and the hand-written cases."""
    cases = [
        case for kind in CASES_PER_KIND for case in generate(kind) + EXPLICIT_CASES.get(kind, [])
    ]
    return run_both(cases, tmp_path_factory.mktemp("differential"))


# --------------------------------------------------------------------------------------
# Comparing.


def differences(theirs, ours, where="result") -> list[str]:
    """What differs between two recorded results (empty when they agree)."""
    if theirs[0] == "error" or ours[0] == "error":
        if theirs[:2] == ours[:2]:
            return []
        return [f"{where}: zodiax 0.5 gave {theirs[:2]}, ours {ours[:2]}"]
    kind_a, kind_b = theirs[0], ours[0]
    if kind_a != kind_b:
        return [f"{where}: {kind_a} vs {kind_b} ({theirs!r:.200} vs {ours!r:.200})"]
    if kind_a == "value":
        return differences(theirs[1], ours[1], where)
    if kind_a in ("jax", "numpy", "numpy-scalar"):
        (_, a, dtype_a, weak_a), (_, b, dtype_b, weak_b) = theirs, ours
        out = []
        if (dtype_a, weak_a) != (dtype_b, weak_b):
            out.append(f"{where}: dtype {dtype_a} weak={weak_a} vs {dtype_b} weak={weak_b}")
        if a.shape != b.shape:
            out.append(f"{where}: shape {a.shape} vs {b.shape}")
        elif not np.allclose(a, b, rtol=1e-9, atol=1e-12, equal_nan=True):
            out.append(f"{where}: values {a!r} vs {b!r}")
        return out
    if kind_a == "py":
        same = theirs[1] == ours[1] and (
            theirs[2] == ours[2] or (theirs[2] != theirs[2] and ours[2] != ours[2])
        )
        return [] if same else [f"{where}: {theirs[1:]} vs {ours[1:]}"]
    if kind_a in ("dict", "module"):
        a, b = theirs[-1], ours[-1]
        out = (
            []
            if kind_a == "dict" or theirs[1] == ours[1]
            else [f"{where}: class {theirs[1]} vs {ours[1]}"]
        )
        if list(a) != list(b):
            return [*out, f"{where}: keys {list(a)} vs {list(b)}"]
        return out + [d for k in a for d in differences(a[k], b[k], f"{where}.{k}")]
    if kind_a in ("list", "tuple"):
        a, b = theirs[1], ours[1]
        if len(a) != len(b):
            return [f"{where}: length {len(a)} vs {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{where}[{i}]")]
    return [] if theirs == ours else [f"{where}: {theirs!r} vs {ours!r}"]


def _has_complex(record) -> bool:
    if record[0] in ("jax", "numpy", "numpy-scalar"):
        return "complex" in record[2]
    if record[0] == "py":
        return record[1] == "complex"
    if record[0] in ("dict", "module"):
        return any(_has_complex(v) for v in record[-1].values())
    if record[0] in ("list", "tuple"):
        return any(_has_complex(v) for v in record[1])
    return False


# Differences kept on purpose: (name, README reason, test of a (case, theirs, ours) triple).
DELIBERATE = [
    (
        "set without a value",
        "`model.set(path)` with no value raises TypeError; zodiax 0.5 silently stores None "
        "(and the arithmetic operations then fail on None).",
        lambda case, theirs, ours: (
            case.get("values") == "<no value>" and ours[:2] == ("error", "TypeError")
        ),
    ),
    (
        "complex leaves in get",
        "`get` keeps complex leaves complex; zodiax 0.5 drops the imaginary part of complex "
        "arrays and raises TypeError on a Python complex (where a string leaf follows, we "
        "then raise the ValueError that zodiax 0.5 raises for a string).",
        lambda case, theirs, ours: (
            case.get("op") == "get"
            and (
                (ours[0] == "value" and _has_complex(ours[1]))
                or (
                    theirs[:2] == ("error", "TypeError")
                    and "complex" in theirs[2]
                    and ours[:2] == ("error", "ValueError")
                    and "is a str" in ours[2]
                )
            )
        ),
    ),
    (
        "optimisers for unknown names",
        "`map_optimisers(..., strict=False)` ignores (with a warning) an optimiser named for "
        "a parameter that does not exist; zodiax 0.5 accepts it too but its optimiser then "
        "fails on the first update.",
        lambda case, theirs, ours: (
            case["kind"] == "optimiser"
            and "unknown" in case["optimisers"]
            and theirs[0] == "error"
            and ours[0] == "value"
        ),
    ),
    (
        "one value for nested groups of paths",
        "one value (not in a list) for a nested list of paths is given to every path, as "
        "for a flat list; zodiax 0.5 fails an internal assertion (AssertionError). Where the "
        "values really do not fit the paths we raise ValueError, KeyError for a path that "
        "does not exist, and TypeError for a value that cannot be combined with its leaf.",
        lambda case, theirs, ours: (
            case["kind"] == "path"
            and theirs[:2] == ("error", "AssertionError")
            and (ours[0] == "value" or ours[1] in ("ValueError", "KeyError", "TypeError"))
        ),
    ),
    (
        "a covariance that is not positive definite",
        "`calc_entropy`, `mv_z_score` and `gauss_hessian` return NaN for a matrix that is "
        "not a covariance (its symmetric part is not positive definite), as `mv_loglike` "
        "does in both; zodiax 0.5 returns finite numbers for them (from the sign and log of "
        "the absolute determinant, or a solve), which are not an entropy, a distance or a "
        "curvature. For a singular one (an eigenvalue zero within rounding) both compute "
        "from rounding errors, and either may give a number.",
        lambda case, theirs, ours: (
            _covariance(case) is not None
            and ours[0] == "value"
            and _not_positive_definite(_covariance(case))
            and (
                bool(np.all(np.isnan(ours[1][1])))
                or _zero_eigenvalue_within_rounding(_symmetric_part(_covariance(case)))
            )
        ),
    ),
    (
        "a covariance that is not symmetric",
        "`calc_entropy`, `mv_z_score` and `gauss_hessian` use a covariance through its "
        "symmetric part `(cov + cov.T) / 2` (its Cholesky factor), as `mv_loglike` does in "
        "both; zodiax 0.5 uses the matrix as given in those three (its determinant, a "
        "solve), so the two differ for a matrix that is not symmetric.",
        lambda case, theirs, ours: (
            _covariance(case) is not None
            and not np.allclose(_covariance(case), _covariance(case).T)
            and ours[0] == "value"
            and bool(np.all(np.isfinite(ours[1][1])))
        ),
    ),
    (
        "check_positive_semi_definite of a non-symmetric matrix",
        "`check_positive_semi_definite` judges `v @ mat @ v` for every `v` (the eigenvalues "
        "of the symmetric part); for a non-symmetric matrix zodiax 0.5 can answer True "
        "although `v @ mat @ v < 0` for some `v`.",
        lambda case, theirs, ours: (
            case.get("op") == "check_positive_semi_definite"
            and not np.allclose(case["args"][0][2], case["args"][0][2].T)
        ),
    ),
    (
        "check_positive_semi_definite of a singular matrix",
        "for a matrix with a zero eigenvalue (singular, e.g. equal rows) the computed "
        "eigenvalue is zero or a rounding error of either sign; zodiax 0.5 and we may round "
        "it differently and so answer differently (`tol` sets the margin).",
        lambda case, theirs, ours: (
            case.get("op") == "check_positive_semi_definite"
            and np.allclose(case["args"][0][2], case["args"][0][2].T)
            and _zero_eigenvalue_within_rounding(np.asarray(case["args"][0][2], float))
        ),
    ),
]


_COVARIANCE_ARGUMENT = {"calc_entropy": 0, "mv_z_score": 2, "mv_loglike": 2, "gauss_hessian": 1}


def _covariance(case) -> np.ndarray | None:
    """The covariance matrix a stats case passes, or ``None``."""
    index = _COVARIANCE_ARGUMENT.get(case.get("op"))
    if case.get("kind") != "function" or index is None or len(case["args"]) <= index:
        return None
    return np.asarray(case["args"][index][2], float)


def _symmetric_part(matrix: np.ndarray) -> np.ndarray:
    """``(matrix + matrix.T) / 2``: the matrix our Cholesky factors are taken of."""
    return (matrix + matrix.T) / 2


def _not_positive_definite(matrix: np.ndarray) -> bool:
    """Whether the symmetric part of ``matrix`` has an eigenvalue that is negative or zero
    within rounding."""
    values = np.linalg.eigvalsh(_symmetric_part(matrix))
    return bool(values[0] <= matrix.shape[0] * np.finfo(float).eps * np.max(np.abs(values)))


def _zero_eigenvalue_within_rounding(matrix: np.ndarray) -> bool:
    """Whether a symmetric matrix's smallest eigenvalue is 0 to within rounding error."""
    values = np.linalg.eigvalsh(matrix)
    floor = matrix.shape[0] * np.finfo(float).eps * np.max(np.abs(values))
    return bool(abs(values[0]) <= floor)


def classify(triples):
    unexplained, explained = [], {name: 0 for name, _, _ in DELIBERATE}
    for case, theirs, ours in triples:
        found = differences(theirs, ours)
        if not found:
            continue
        reason = next((name for name, _, test in DELIBERATE if test(case, theirs, ours)), None)
        if reason is None:
            unexplained.append((case, found))
        else:
            explained[reason] += 1
    return unexplained, explained


@pytest.mark.parametrize("kind", sorted(CASES_PER_KIND))
def test_ours_agrees_with_zodiax05(kind, outcomes):
    triples = outcomes[kind]
    assert len(triples) == CASES_PER_KIND[kind] + len(EXPLICIT_CASES.get(kind, []))
    unexplained, _ = classify(triples)
    report = "\n\n".join(
        f"{case!r:.1500}\n  " + "\n  ".join(found[:6]) for case, found in unexplained[:5]
    )
    assert not unexplained, f"{len(unexplained)} of {len(triples)} {kind} cases differ:\n{report}"


def test_each_deliberate_difference_occurs_and_is_in_the_readme(outcomes):
    explained: dict[str, int] = {}
    for kind in CASES_PER_KIND:
        for name, count in classify(outcomes[kind])[1].items():
            explained[name] = explained.get(name, 0) + count
    never_seen = [name for name, count in explained.items() if count == 0]
    assert not never_seen, f"deliberate differences that no case exercised: {never_seen}"
    readme = (ROOT / "README.md").read_text()
    for name, _, _ in DELIBERATE:
        assert name in readme, f"the README's migration section does not list {name!r}"


def test_without_hatch_the_suite_is_skipped_saying_what_is_missing(monkeypatch, tmp_path):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setenv("_", "/usr/bin/python3")  # not launched by hatch either
    with pytest.raises(pytest.skip.Exception, match=r"`hatch` is not on the PATH.*pip install"):
        run_both([], tmp_path)
    assert not list(tmp_path.iterdir())  # nothing was run


def test_zodiax05_runs_on_the_python_of_this_run():
    # both sides must have the same JAX, which the Python decides (3.11: 0.10, 3.13: 0.12)
    name = zodiax05_environment()
    assert name == f"zodiax05.py{sys.version_info.major}.{sys.version_info.minor}"
    matrix = tomllib.loads((ROOT / "hatch.toml").read_text())["envs"]["zodiax05"]["matrix"]
    assert name.removeprefix("zodiax05.py") in matrix[0]["python"]
