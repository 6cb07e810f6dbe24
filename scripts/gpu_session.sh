#!/usr/bin/env bash
# One batched GPU session (device tool): the project is not installed there, so it runs from
# the tree with PYTHONPATH, and jaxtyping (absent on the device image) comes from .venv.
# Usage on the device: bash scripts/gpu_session.sh [OUTDIR]
set -u
out=${1:-${OUT:-/tmp/gpu-out}}
mkdir -p "$out"
export PYTHONPATH=src:.:.gpu-site
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/device.txt"
python3 -c "import jax, torch; print('jax', jax.__version__, jax.devices(), 'torch', torch.__version__)" | tee -a "$out/device.txt"

echo "== 1. canaries (CUDA and JAX-on-GPU) =="
timeout 60 python3 -m pytest -p perfsuite.plugin -p no:cacheprovider -q -s tests/perfsuite/test_canaries.py 2>&1 \
  | grep -E "canary|passed|failed|Error" | tee "$out/canaries.txt"

echo "== 2. plugin perf examples on the GPU backend =="
timeout 60 python3 -m pytest -p perfsuite.plugin -p no:cacheprovider -q --perf tests/perfsuite/test_perf_examples.py \
  --perf-json="$out/perf-examples.json" 2>&1 | tail -16 | tee "$out/perf-examples.txt"

echo "== 3. TP make_module_opt table, tp=1 on one GPU =="
timeout 150 python3 scripts/tp_scaling.py --configs ${TP_CONFIGS:-4x768 12x1024 24x2048 48x2048 60x2048 48x4096} \
  --batch 8 --seq 128 --steps 5 --markdown "$out/tp_scaling.md" 2>&1 | tail -12

echo "== 4. trainfast.spd on CUDA: equivalence tests, the speedup assertions, ablation =="
timeout 60 python3 -m pytest -p perfsuite.plugin -p no:cacheprovider -q -k cuda tests/spd/test_equivalence.py 2>&1 | tail -3 | tee "$out/spd-cuda-tests.txt"
timeout 150 python3 -m pytest -p perfsuite.plugin -p no:cacheprovider -q --perf -k cuda tests/spd/test_perf_spd.py \
  --perf-json="$out/spd-perf.json" 2>&1 | grep -E "speedup|passed|failed|PerfFailure|Inconclusive" | tail -12 | tee "$out/spd-perf.txt"
timeout 110 python3 -m trainfast.spd --workload ${SPD_WORKLOADS:-resid_mlp3} --ablate --device cuda \
  --warmup 6 --steps 20 --repeats 3 --budget-s 100 --only ${SPD_ONLY:-baseline,all_on,fused_ci_fn,cuda_graphs} 2>&1 | tail -40 | tee "$out/spd-ablation.md"
