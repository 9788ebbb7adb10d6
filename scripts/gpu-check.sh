#!/usr/bin/env bash
# The GPU check: sizeseg's CUDA path on a GPU machine, in one run of under 8 minutes.
#
#   1. installs the project without dependencies, plus the MONAI and nibabel wheels in .whl/
#      (the machine has torch with CUDA, Lightning and numba, but neither of those);
#   2. runs the CUDA-tensor tests: the ops, metrics and SizeLoss on CUDA equal the CPU numba
#      kernels, and the ops' and losses' forward and backward never synchronise with the host
#      (torch.cuda.set_sync_debug_mode("error"));
#   3. times a U-Net training step with and without SizeLoss (scripts/gpu_check.py steps);
#   4. runs `sizeseg bench core --device cuda` (with CuPy's distance_transform_edt per image as an
#      anchor where CuPy is installed);
#   5. writes everything under $OUT: gpu-check.log, bench-core.json, bench-core.png, steps.json,
#      steps.png (results/gpu/README.md says where they are recorded).
#
# Usage, from the repository root:
#   scripts/gpu-check.sh --fetch-wheels   # once, where pip reaches an index: the wheels into .whl/
#   OUT=/some/folder scripts/gpu-check.sh # on the GPU machine (the device tool sets OUT)
#   scripts/gpu-check.sh --dry-run        # any CPU machine: every stage, small, nothing installed
#                                         # (DRY_RUN=1 does the same)
# With the device tool: run(command="bash scripts/gpu-check.sh", carry=[".whl"], timeout_s=540).
# Each stage has its own time limit; a failed stage is reported and the next one still runs; the
# exit status is 1 if any stage failed.
set -uo pipefail

MONAI_VERSION=1.6.1
NIBABEL_VERSION=5.4.2
DRY_RUN="${DRY_RUN:-0}"
case "${1:-}" in
  --dry-run) DRY_RUN=1 ;;
  --fetch-wheels)
    exec python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl \
      "monai==$MONAI_VERSION" "nibabel==$NIBABEL_VERSION" ;;
  "") ;;
  *) echo "gpu-check.sh: unknown argument '$1' (expected --dry-run or --fetch-wheels)" >&2; exit 2 ;;
esac

cd "$(dirname "$0")/.." || exit 2
OUT="${OUT:-$(mktemp -d /tmp/gpu-check.XXXXXX)}"
mkdir -p "$OUT"
LOG="$OUT/gpu-check.log"
: >"$LOG"
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
PY=python3
DEADLINE=$(( SECONDS + 460 ))
FAILED=()

say() { echo "== $*" | tee -a "$LOG"; }

# stage NAME SECONDS COMMAND...: run with a time limit (x5 in a dry run: a shared CPU is slow and
# its timings mean nothing), log its output, note a failure
stage() {
  local name=$1 limit=$(( $2 * ( DRY_RUN == 1 ? 5 : 1 ) )) start=$SECONDS
  shift 2
  if [ "$DRY_RUN" != 1 ]; then  # the whole run stays under 8 minutes: a stage gets what is left
    local left=$(( DEADLINE - SECONDS ))
    [ "$left" -lt "$limit" ] && limit=$left
    if [ "$limit" -lt 10 ]; then say "$name: skipped, the 8 minutes are used up"; FAILED+=("$name (no time left)"); return; fi
  fi
  say "$name (limit ${limit}s)"
  timeout "$limit" "$@" 2>&1 | tee -a "$LOG"
  local status=${PIPESTATUS[0]}
  say "$name: exit $status after $((SECONDS - start))s"
  [ "$status" -eq 0 ] || FAILED+=("$name (exit $status)")
}

say "gpu-check: $(date -u +%FT%TZ), dry run: $DRY_RUN, OUT=$OUT, commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "nvidia-smi: none"; } | tee -a "$LOG"

if [ "$DRY_RUN" = 1 ]; then
  DEVICE=cpu
  # one thread each: on a shared CPU, two spinning pools per process made a step 50x slower
  export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" NUMBA_NUM_THREADS="${NUMBA_NUM_THREADS:-1}"
  say "dry run: installing nothing; the CUDA tests skip and their CPU twins (the same torch path) run"
else
  DEVICE=cuda
  ls .whl/monai-*.whl .whl/nibabel-*.whl >/dev/null 2>&1 \
    || { say "no wheels in .whl/: run scripts/gpu-check.sh --fetch-wheels here and carry .whl"; exit 2; }
  stage "install wheels" 120 $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/sizeseg-site .whl/*.whl
  export PYTHONPATH="/tmp/sizeseg-site${PYTHONPATH:+:$PYTHONPATH}"
  # the project itself, without dependencies; where pip cannot build it offline, from src/
  if ! timeout 120 $PY -m pip install -q --no-index --no-deps --no-build-isolation -e . >>"$LOG" 2>&1 \
      || ! $PY -c "import sizeseg" 2>/dev/null; then
    say "pip could not install the project offline (see above): importing it from src/"
    export PYTHONPATH="$PWD/src:$PYTHONPATH"
  fi
  $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" \
    || { say "torch sees no CUDA device: stopping (use --dry-run on a CPU machine)"; exit 1; }
fi
stage "versions" 60 $PY -c "import torch, numba, monai, nibabel, lightning, sizeseg
print('torch', torch.__version__, 'cuda', torch.version.cuda, 'numba', numba.__version__, 'monai', monai.__version__,
      'nibabel', nibabel.__version__, 'lightning', lightning.__version__)
print('device', torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu')
try:
    import cupy; print('cupy', cupy.__version__)
except ImportError:
    print('cupy: not installed (no CuPy anchor)')"

# the CUDA-tensor tests (with their CPU twins) and the losses' no-sync tests
stage "tests on CUDA tensors" 240 $PY -m pytest -q -rs -p no:cacheprovider \
  tests/ops/test_cuda_tensors.py tests/ops/test_torch_path_no_sync.py tests/losses/test_losses_inputs.py

# the training steps first: they write after each batch, the bench only at its end
if [ "$DRY_RUN" = 1 ]; then
  stage "training steps" 150 $PY scripts/gpu_check.py steps --dry-run --out "$OUT"
  stage "sizeseg bench core" 240 $PY -m sizeseg bench core --device cpu --quick --repeats 1 --json "$OUT/bench-core.json"
else
  stage "training steps" 150 $PY scripts/gpu_check.py steps --device cuda --repeats 20 --out "$OUT"
  stage "sizeseg bench core" 240 $PY -m sizeseg bench core --device cuda --quick --repeats 5 --json "$OUT/bench-core.json"
fi
[ -f "$OUT/bench-core.json" ] && stage "figures" 60 $PY scripts/gpu_check.py figures --bench "$OUT/bench-core.json" --out "$OUT"

ls -l "$OUT" | tee -a "$LOG"
if [ ${#FAILED[@]} -gt 0 ]; then
  say "FAILED: ${FAILED[*]}"
  exit 1
fi
say "all stages passed on $DEVICE; files in $OUT"
