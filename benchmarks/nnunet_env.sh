#!/usr/bin/env bash
# Build a separate nnU-Net v2 environment for the side-by-side benchmarks
# (bench_train_vs_nnunet.py, bench_predict.py --nnunet-venv).
#
# Never install nnunetv2 into medseg's own environment: its dependencies
# (dynamic-network-architectures -> timm -> torchvision) make pip replace the CPU torch with a
# multi-GB CUDA build. This venv sees the system site-packages (torch CPU, numpy, scipy,
# SimpleITK, scikit-image, pandas, matplotlib, cc3d, ...) and every package is added with
# --no-deps, so pip never resolves torch. timm/torchvision are not needed for nnUNetPlans
# (PlainConvUNet) training and prediction.
#
# Usage: bash benchmarks/nnunet_env.sh [VENV]   (default /tmp/nnunet-venv)
set -euo pipefail
VENV="${1:-/tmp/nnunet-venv}"
TORCH_BEFORE="$(python3 -c 'import torch; print(torch.__version__)')"

python3 -m venv --system-site-packages "$VENV"
"$VENV/bin/pip" install --no-deps \
    nnunetv2==2.8.1 dynamic-network-architectures batchgenerators batchgeneratorsv2 acvl-utils \
    blosc2 numexpr msgpack ndindex tqdm seaborn graphviz yacs

# Every module the benchmarks use must import; torch must still be the system one.
"$VENV/bin/python" - <<'EOF'
import importlib

for name in (
    "nnunetv2.experiment_planning.plan_and_preprocess_entrypoints",
    "nnunetv2.run.run_training",
    "nnunetv2.inference.predict_from_raw_data",
    "dynamic_network_architectures.architectures.unet",
):
    importlib.import_module(name)
EOF
TORCH_AFTER="$("$VENV/bin/python" -c 'import torch; print(torch.__version__)')"
if [ "$TORCH_BEFORE" != "$TORCH_AFTER" ]; then
    echo "torch changed from $TORCH_BEFORE to $TORCH_AFTER: remove $VENV" >&2
    exit 1
fi
echo "nnU-Net environment ready in $VENV (torch $TORCH_AFTER)"
echo "Set nnUNet_raw, nnUNet_preprocessed, nnUNet_results and nnUNet_compile=f before use."
