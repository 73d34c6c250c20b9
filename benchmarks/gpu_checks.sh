#!/usr/bin/env bash
# Everything measured on a lent GPU, in one call (see benchmarks/README.md#gpu-figures):
#   bash benchmarks/gpu_checks.sh OUTDIR [tests] [bench] [runs]
# Needs CuPy, PyTorch (the reference column), and SCRATCHNET_DATA for the 10-epoch runs.
# Each part writes its log into OUTDIR and carries on after a failure.
set -uo pipefail
out=${1:?usage: gpu_checks.sh OUTDIR [tests] [bench] [runs]}; shift
parts=${*:-tests bench runs}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/device.txt"
for part in $parts; do case $part in
tests)
    python -m pytest -q -x tests/test_fused_kernels.py 2>&1 | tail -15 | tee "$out/fused_tests.log"
    python -m pytest -m gpu -q -p no:randomly 2>&1 | tail -15 | tee "$out/gpu_tests.log" ;;
bench)
    python benchmarks/bench_step.py --backend cupy --model unet --batches 64 256 --rounds 6 --per-round 5 --no-host 2>&1 | tee "$out/step_unet.log"
    python benchmarks/bench_step.py --backend cupy --batches 64 256 1024 --rounds 6 --per-round 5 --no-host 2>&1 | tee "$out/step_conv.log"
    python benchmarks/bench_gpu.py --model unet --batches 64 --rounds 4 --per-round 5 --names 2>&1 | tee "$out/kernels_unet.log"
    python benchmarks/bench_gpu.py --batches 64 256 --rounds 4 --per-round 5 2>&1 | tee "$out/kernels_conv.log" ;;
runs)
    for model in conv unet; do
        rm -rf "/tmp/run-$model"
        /usr/bin/time -f "process wall %e s, peak RSS %M KiB" python examples/train_denoiser.py \
            --backend cupy --model $model --no-progress --out "/tmp/run-$model" 2>&1 | tail -4 | tee "$out/run_$model.log"
        python -c "import json,sys; m=json.load(open('/tmp/run-$model/metrics.json')); print('test MSE', m['final']['test_mse'], 'train s', round(m['train_seconds'],1), 'metrics wall s', round(m['wall_time_s'],1))" 2>&1 | tee -a "$out/run_$model.log"
    done ;;
esac; done
