#!/usr/bin/env bash
# Measure ResNet-18 on every CUDA target that runs here (cuda-torch, cuda-onnxruntime,
# cuda-tensorrt) with the farm's runtimes and harness; print the figures, or why a target
# cannot run. Installs nothing. Run from anywhere: ./scripts/gpu_check.sh [--batch 1 8]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHONPATH=. exec "${PYTHON:-python3}" scripts/gpu_check.py "$@"
