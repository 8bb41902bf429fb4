#!/usr/bin/env bash
# One short lease on a lent GPU: model throughput, then paper-scale training (112 x 112) of
# C3D (3D-ResNeXt-101) and LRCN (Inception-v3 + LSTM) on the synthetic data set.
# Usage (repository root, GPU machine):  bash benchmarks/gpu_session.sh [OUT_DIR] [MINUTES_PER_MODEL]
set -uo pipefail
out=${1:-${OUT:-runs/gpu}}
minutes=${2:-1.5}
mkdir -p "$out"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 HBA_CACHE=${HBA_CACHE:-/tmp/hba_cache}
py=${PYTHON:-python3}
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  $py -c "import torch, torchvision, cv2; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'cv2', cv2.__version__, torch.cuda.get_device_name())"
} 2>&1 | tee "$out/gpu.txt"
timeout 120 $py benchmarks/bench_models.py --device cuda --amp --seconds 1 \
  --models c3d lrcn r3d_18 c3d_small lrcn_small 2>&1 | tee "$out/bench_models.txt"
timeout $(awk "BEGIN{print int($minutes*2*60+150)}") $py benchmarks/train_gpu.py --models c3d lrcn \
  --size 112 --max-minutes "$minutes" --json "$out/train_gpu.json" --quiet 2>&1 | tee "$out/train_gpu.txt"
