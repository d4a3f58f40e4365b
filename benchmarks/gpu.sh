#!/usr/bin/env bash
# The benchmark suite on a GPU machine that has JAX with CUDA but no network.
#
#   benchmarks/gpu.sh wheels           with network (here): put the pure-Python wheels the
#                                      suite needs besides JAX into benchmarks/wheels/
#   benchmarks/gpu.sh [quick|full]     on the GPU machine: run the suite with our packages,
#                                      then with zodiax 0.5.0, and write the report
#
# On the GPU machine nothing is installed: the machine's own Python and JAX are used
# (PYTHON=... to choose another interpreter), our packages come from their src/ folders on
# PYTHONPATH (with a minimal .dist-info each, so that importlib.metadata finds their
# versions), and the wheels of benchmarks/wheels/ (dLux, Equinox, optax, numpyro, pytest,
# pytest-benchmark, zodiax 0.5.0, ...) are unpacked into a temporary folder, except those
# whose distribution the machine already has. The zodiax 0.5.0 run gets a PYTHONPATH with
# zodiax 0.5.0 instead of our packages. Results go to benchmarks/results/gpu-<name>/ as
# usual (BENCH_RESULTS=DIR for another folder; BENCH_ARGS="--memory key" and the like go to
# run.py); if $OUT is set (or BENCH_COPY_TO), the new
# results, the report and its plots are copied there.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="$ROOT/benchmarks"
PY="${PYTHON:-python3}"
WHEELS="${BENCH_WHEELS:-$BENCH/wheels}"
RESULTS="${BENCH_RESULTS:-$BENCH/results}"
MODE="${1:-full}"

# Everything imported besides JAX, NumPy and SciPy, by distribution name.
COMMON="dlux abcdlux interpax jaxkd equinox jaxtyping wadler-lindig typing-extensions
optax absl-py tqdm pytest pluggy iniconfig packaging pygments pytest-benchmark py-cpuinfo2"
OURS="optimistix lineax numpyro multipledispatch blackjax"

if [[ "$MODE" == "wheels" ]]; then
  # Pin each wheel to the version this Python has (run it with the bench environment's:
  # `hatch run bench:bash benchmarks/gpu.sh wheels`), or take the newest.
  mkdir -p "$WHEELS"
  specs=$("$PY" - $COMMON $OURS <<'EOF'
import importlib.metadata as md, sys
for name in sys.argv[1:]:
    try:
        print(f"{name}=={md.version(name)}")
    except md.PackageNotFoundError:
        print(name)
EOF
)
  if "$PY" -m pip --version >/dev/null 2>&1; then PIP=("$PY" -m pip); else PIP=(python3 -m pip); fi
  # shellcheck disable=SC2086
  "${PIP[@]}" download --no-deps --only-binary=:all: --dest "$WHEELS" $specs "zodiax==0.5.0"
  ls "$WHEELS"
  exit 0
fi
if [[ "$MODE" != "quick" && "$MODE" != "full" ]]; then
  echo "usage: $0 [quick|full|wheels]" >&2
  exit 2
fi

"$PY" -c "import jax" 2>/dev/null || { echo "$PY cannot import jax" >&2; exit 1; }
"$PY" -c "import jax; print('JAX', jax.__version__, 'on', jax.devices())"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/common" "$WORK/ours" "$WORK/zodiax05"

# Unpack the carried wheels (zip files; all pure Python) unless the machine has them.
"$PY" - "$WHEELS" "$WORK" <<'EOF'
import glob, importlib.metadata as md, os, re, sys, zipfile
wheels, work = sys.argv[1], sys.argv[2]
found = sorted(glob.glob(os.path.join(wheels, "*.whl")))
if not found:
    print(f"no wheels in {wheels}: relying on what the machine has installed")
for path in found:
    name, version = os.path.basename(path).split("-")[:2]
    dist = re.sub(r"[-_.]+", "-", name).lower()
    if dist == "zodiax":
        target = "zodiax05"  # never on the path of our packages
    else:
        try:
            md.version(dist)
            print(f"machine has {dist} {md.version(dist)}: not unpacking {os.path.basename(path)}")
            continue
        except md.PackageNotFoundError:
            target = "common"
    zipfile.ZipFile(path).extractall(os.path.join(work, target))
EOF

# Our packages from src/, each with the metadata that its __init__ reads.
"$PY" - "$ROOT" "$WORK/ours" <<'EOF'
import glob, os, re, sys
root, site = sys.argv[1], sys.argv[2]
for pyproject in glob.glob(os.path.join(root, "packages", "*", "pyproject.toml")) + [
    os.path.join(root, "examples", "pyproject.toml")
]:
    text = open(pyproject).read()
    name = re.search(r'^name\s*=\s*"([^"]+)"', text, re.M).group(1)
    version = re.search(r'^version\s*=\s*"([^"]+)"', text, re.M).group(1)
    info = os.path.join(site, f"{name.replace('-', '_')}-{version}.dist-info")
    os.makedirs(info, exist_ok=True)
    with open(os.path.join(info, "METADATA"), "w") as stream:
        stream.write(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
EOF
SRC="$(printf '%s:' "$ROOT"/packages/*/src)$ROOT/examples/src"

export XLA_PYTHON_CLIENT_PREALLOCATE=false
STAMP="$WORK/stamp"
touch "$STAMP"

echo "== our packages"
PYTHONPATH="$SRC:$WORK/ours:$WORK/common${PYTHONPATH:+:$PYTHONPATH}" \
  "$PY" -c "import zodiax, zdx_batching, dLux, pytest_benchmark; print('zodiax', zodiax.__version__)"
status=0
PYTHONPATH="$SRC:$WORK/ours:$WORK/common${PYTHONPATH:+:$PYTHONPATH}" \
  "$PY" "$BENCH/run.py" --size "$MODE" --results "$RESULTS" ${BENCH_ARGS:-} || status=$?

echo "== zodiax 0.5.0"
if PYTHONPATH="$WORK/zodiax05:$WORK/common${PYTHONPATH:+:$PYTHONPATH}" \
  "$PY" -c "import zodiax, dLux; assert zodiax.__version__.startswith('0.5'), zodiax.__version__"; then
  PYTHONPATH="$WORK/zodiax05:$WORK/common${PYTHONPATH:+:$PYTHONPATH}" \
    "$PY" "$BENCH/run.py" --size "$MODE" --results "$RESULTS" ${BENCH_ARGS:-} || status=$?
else
  echo "zodiax 0.5.0 is not importable (no zodiax-0.5.0 wheel in $WHEELS?): skipped" >&2
fi

echo "== report"
PYTHONPATH="$WORK/common${PYTHONPATH:+:$PYTHONPATH}" \
  "$PY" "$BENCH/report.py" --size "$MODE" --results "$RESULTS" || status=$?

COPY="${BENCH_COPY_TO:-${OUT:-}}"
if [[ -n "$COPY" ]]; then
  mkdir -p "$COPY"
  find "$RESULTS" -type f -newer "$STAMP" -exec cp {} "$COPY"/ \;
  echo "copied the new results to $COPY"
fi
exit $status
