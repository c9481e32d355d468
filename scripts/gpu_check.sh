#!/usr/bin/env bash
# The GPU proof: the cuda-torch search space for ResNet-18 (random weights, 224×224)
# measured with the farm's runtime and harness, against bare PyTorch (fp16, channels_last, CUDA
# graph) in the same run; one row per configuration with its ratio to the bare loop and its top-1
# agreement with CPU fp32, then a PASS/FAIL verdict (exit 0 / 1). The other CUDA targets are
# measured when they run here, else their reason is printed. Installs nothing; needs torch (CUDA
# build) and numpy only; about 5 minutes (--budget-s, default 280).
#   ./scripts/gpu_check.sh [--budget-s 280] [--json rows.json]
#   ./scripts/gpu_check.sh --dry-run        # the same code on the CPU with a tiny CNN
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHONPATH=. exec "${PYTHON:-python3}" scripts/gpu_check.py "$@"
