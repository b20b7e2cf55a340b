#!/usr/bin/env bash
# Train medseg's universal interactive model on one CUDA GPU, resumably, then benchmark it.
#
#   scripts/train_universal_gpu.sh [RUN_DIR] [HOURS]      (defaults: runs/universal_gpu 4)
#
# Run it again with the same RUN_DIR to continue (a larger HOURS extends the schedule). The
# tasks are generated on the CPU by WORKERS processes (default: all cores but two), the network
# trains on the GPU in bfloat16. RUN_DIR is a loadable model folder at every checkpoint; to ship
# it, copy RUN_DIR/interactive.json and RUN_DIR/model.safetensors into
# src/medseg/interactive/weights/universal/ and regenerate the model card (docs/interactive.md).
set -euo pipefail
RUN=${1:-runs/universal_gpu}
HOURS=${2:-4}
WORKERS=${WORKERS:-$(( $(nproc) > 3 ? $(nproc) - 2 : 1 ))}
BATCH=${BATCH:-64}

python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device')"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true

medseg train-universal -o "$RUN" --hours "$HOURS" --device cuda --batch-size "$BATCH" \
    --workers "$WORKERS" --checkpoint-minutes 10 --threads 2

# accuracy on the held-out sets (brain example, coins, CT phantom) vs the random walker; the
# latency rows are for the CPU machine the model ships to, so they are left out here
python benchmarks/bench_interactive.py "$RUN" --no-latency --threads 2 --json "$RUN/bench.json"
ls -l "$RUN/model.safetensors"
