#!/usr/bin/env bash
# Benchmarks 1-3 and 5 on a GPU (issue 7): rnnlab against cuDNN, the cost of probing, and
# trials/hour of the flagship sweep; first the cuDNN check (issue 15, benchmarks/cudnn.py: the
# fused path equals the probed loop on CUDA, TF32 off). Writes benchmarks/results-gpu/*.json and
# docs/performance-gpu.md; the CPU figures (benchmarks/results/, docs/performance.md) are left alone.
#
#   benchmarks/gpu.sh wheels [DIR]                     # here, with the network: see below
#   benchmarks/gpu.sh [--wheels DIR] [--copy-to DIR]   # on the GPU machine: ~6 minutes on an H200
#
# It needs a Python whose torch is a CUDA build (PYTHON, default python3) and rnnlab's
# dependencies. The H200 machines lent to this project have CUDA torch in python3 (3.12) but
# neither rnnlab nor mlflow, optuna or pydantic, and no network: `gpu.sh wheels` downloads those
# here as wheels for Python 3.12 (mlflow-skinny, not the whole mlflow: recording needs no server),
# with rnnlab's own wheel for its entry points, into build/gpu-wheels (ignored by git); there,
# `--wheels DIR` installs them from that folder alone (--no-index, nothing fetched) into a scratch
# folder, and the code still runs from this checkout. `--copy-to DIR` copies the results, the page
# and the log into DIR (a folder that comes back from the GPU machine).
#
# Exit codes: 0 every benchmark ran and the cuDNN check passed; 1 one failed (the page says which)
# or the check failed (benchmarks/results-gpu/checks/cudnn.json says where); 3 no CUDA GPU seen
# (nothing ran); 4 rnnlab or its dependencies cannot be imported (nothing ran); 124 the time limit
# (BENCH_LIMIT_S, default 520 s) stopped them (the page holds what had finished).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
RESULTS=benchmarks/results-gpu
PAGE=docs/performance-gpu.md
SITE="${TMPDIR:-/tmp}/rnnlab-gpu-site"
LOG="${TMPDIR:-/tmp}/rnnlab-gpu.log"
# rnnlab's dependencies that the H200 machines' image lacks (its package list as of 2026-11),
# pinned to the versions installed here; rnnlab's benchmarks ran with just these added to a copy
# of that package list
WANTED="alembic annotated-types cachetools cffi colorlog cryptography databricks-sdk fastapi gitdb
gitpython google-auth importlib-metadata mako mlflow-skinny opentelemetry-api opentelemetry-proto
opentelemetry-sdk opentelemetry-semantic-conventions optuna pyasn1 pyasn1-modules pycparser
pydantic pydantic-core python-dotenv smmap sqlalchemy sqlparse starlette typing-inspection uvicorn"

say() { printf 'benchmarks/gpu.sh: %s\n' "$*" >&2; }

wheels() {
    local dir="${1:-build/gpu-wheels}" pins platforms=()
    pins="$("$PY" -c 'import sys; from importlib.metadata import version
print(" ".join(f"{n}=={version(n)}" for n in sys.argv[1:]))' $WANTED)"
    for tag in 2_17 2_24 2_26 2_27 2_28 2_31 2_34 2_35 2_36 2_38 2_39; do
        platforms+=(--platform "manylinux_${tag}_x86_64")
    done
    mkdir -p "$dir" && rm -f "$dir"/*.whl
    # shellcheck disable=SC2086  # pins is a list of name==version
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp "${platforms[@]}" --platform manylinux2014_x86_64 -d "$dir" $pins
    "$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$dir" .
    say "$(find "$dir" -name '*.whl' | wc -l) wheels, $(du -sh "$dir" | cut -f1) in $dir"
    say "on the GPU machine: benchmarks/gpu.sh --wheels $dir --copy-to \"\$OUT\" (carry $dir)"
}

if [[ "${1:-}" == wheels ]]; then
    shift
    wheels "$@"
    exit 0
fi

WHEELS="" COPY_TO=""
while (($#)); do
    case "$1" in
        --wheels) WHEELS="$2"; shift 2 ;;
        --copy-to) COPY_TO="$2"; shift 2 ;;
        *) say "unknown argument '$1'; expected wheels [DIR], --wheels DIR or --copy-to DIR"; exit 2 ;;
    esac
done

# 1. CUDA first: on a machine without it nothing else is worth doing
if ! "$PY" - <<'EOF'; then
import sys

try:
    import torch
except ImportError as exc:
    sys.exit(f"benchmarks/gpu.sh: {sys.executable} cannot import torch ({exc})")
if not torch.cuda.is_available():
    sys.exit(
        f"benchmarks/gpu.sh: torch {torch.__version__} ({sys.executable}) sees no CUDA GPU "
        "(torch.cuda.is_available() is False), so no benchmark ran.\n"
        "It needs an NVIDIA GPU and a CUDA build of torch: on the H200 machines lent to this "
        "project python3 has one; elsewhere set PYTHON to a Python that has one (this script "
        "installs no torch)."
    )
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN "
      f"{torch.backends.cudnn.version()}: {torch.cuda.get_device_name(0)}")
EOF
    exit 3
fi
if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
fi

# 2. rnnlab and its dependencies, from carried wheels where given
if [[ -n "$WHEELS" ]]; then
    if ! compgen -G "$WHEELS/*.whl" >/dev/null; then
        say "no wheels in '$WHEELS': make them with 'benchmarks/gpu.sh wheels $WHEELS'"
        exit 4
    fi
    rm -rf "$SITE"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
        --disable-pip-version-check --root-user-action=ignore --target "$SITE" "$WHEELS"/*.whl
    # the code from this checkout; the scratch folder adds the dependencies and rnnlab's entry
    # points (its plugins) and console script
    export PYTHONPATH="$ROOT:$ROOT/plugins:$SITE${PYTHONPATH:+:$PYTHONPATH}"
    export PATH="$SITE/bin:$PATH"
fi
export GIT_PYTHON_REFRESH=quiet  # mlflow imports GitPython, which needs no git binary to record
if ! "$PY" -c 'import mlflow, optuna, pydantic, rnnlab.sweep, rnnlab.run' ||
    ! (cd "${TMPDIR:-/tmp}" && rnnlab sweep "$ROOT/experiments/vanishing.yaml" --dry-run >/dev/null); then
    say "rnnlab or its dependencies are missing here (above), so no benchmark ran. Run"
    say "'benchmarks/gpu.sh wheels' where pip reaches PyPI, carry build/gpu-wheels and pass"
    say "--wheels build/gpu-wheels; or install rnnlab (pip install -e .) into $PY's environment."
    exit 4
fi

# 3. the cuDNN check (benchmarks/cudnn.py, seconds): the fused path against the probed loop for
# rnn, lstm and gru, TF32 off; a disagreement makes the script exit 1 after the benchmarks. Its
# JSON goes to a subfolder: the page is made from every *.json of $RESULTS itself
mkdir -p "$RESULTS"
set +e
"$PY" -u -m benchmarks.cudnn --out "$RESULTS/checks" 2>&1 | tee "$LOG"
checked=${PIPESTATUS[0]}
set -e

# 4. the benchmarks, on CUDA alone, within the time limit; then the page from what finished
began=$SECONDS
set +e
timeout --kill-after=20 "${BENCH_LIMIT_S:-520}" "$PY" -u -m benchmarks.run --device cuda \
    --only overhead fused scaling probing --out "$RESULTS" --doc "$PAGE" 2>&1 | tee -a "$LOG"
status=${PIPESTATUS[0]}
set -e
if ((checked != 0 && status == 0)); then
    say "the cuDNN check failed (above): the fused path and the probed loop disagree"
    status=1
fi
"$PY" -m benchmarks.run --report-only --out "$RESULTS" --doc "$PAGE"
say "benchmarks took $((SECONDS - began)) s; exit $status; the log is $LOG"
if [[ -n "$COPY_TO" ]]; then
    mkdir -p "$COPY_TO/results-gpu"
    cp "$RESULTS"/*.json "$COPY_TO/results-gpu/" 2>/dev/null || true
    cp "$RESULTS"/checks/cudnn.json "$COPY_TO/" 2>/dev/null || true
    cp "$PAGE" "$LOG" "$COPY_TO/"
fi
exit "$status"
