#!/usr/bin/env bash
# The GPU path on a CUDA machine, in under 5 minutes: the real-shape throughput comparison (the trainable's step
# against a plain torch loop, under bf16 autocast, at Qwen2.5-0.5B's shape with random weights) at a GPU-sized
# batch, then a 2-trial study sharing one GPU (resources.gpus_per_trial: 0.5) through Ray.
#   bash bench/gpu_check.sh            # from anywhere, with the project's environment in .venv/ (or $UNLEARN_VENV)
#   WITH_1_5B=1 bash bench/gpu_check.sh   # also the throughput at Qwen2.5-1.5B's shape (a 6 GB build: longer)
# Prints figures only. Needs a CUDA build of torch (see TORCH_SPEC / UNLEARN_VENV in scripts/setup.sh). The first
# run builds the embedded model (its tokenizer and data; 1-2 minutes on CPU) and the random-weight shape model.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="$(cd "${UNLEARN_VENV:-.venv}" && pwd)"
PY="$VENV/bin/python"
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device: this script checks the GPU path')"
"$PY" -c "import torch; print('device:', torch.cuda.get_device_name(0), '| torch', torch.__version__)"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" RAY_USAGE_STATS_ENABLED=0 MLFLOW_DISABLE_TELEMETRY=true
timeout 200 "$PY" bench/bench_real_shape.py throughput --device cuda --shape qwen2.5-0.5b --batch 16 --len 256 \
    --steps 10 --rounds 3 --threads 4
if [[ "${WITH_1_5B:-0}" == 1 ]]; then
  timeout 300 "$PY" bench/bench_real_shape.py throughput --device cuda --shape qwen2.5-1.5b --batch 16 --len 256 \
      --steps 5 --rounds 3 --threads 4
fi
work="$(mktemp -d)"
cat > "$work/gpu-study.yaml" <<YAML
study: gpu-check
model: shape:qwen2.5-0.5b
variants: [ga, npo]
search: {num_samples: 2, max_concurrent: 2}
scheduler: {type: fifo}
train: {steps: 20, batch_size: 16, max_len: 128, eval_every: 10, checkpoint_every: 10}
resources: {cpus_per_trial: 2, gpus_per_trial: 0.5}
YAML
(cd "$work" && timeout 150 "$VENV/bin/unlearn-study" run --config gpu-study.yaml | tail -8)
echo "study working directory: $work"
