#!/usr/bin/env bash
# One batched H200 session for the 2026-12-02 work (device tool; run from the tree):
#   bash scripts/h200_batch.sh   (writes everything under $OUT)
# Each part has its own time limit so one slow part cannot starve the others.
set -u
out=${OUT:-/tmp/h200-out}
mkdir -p "$out"
export PYTHONPATH=src:.:.gpu-site PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/device.txt"
python3 -c "import jax, torch; print('jax', jax.__version__, jax.devices(), 'torch', torch.__version__)" | tee -a "$out/device.txt"
part() {  # part NAME SECONDS COMMAND...
  local name=$1 limit=$2; shift 2
  echo "== $name (limit ${limit}s)"
  local t0=$SECONDS
  timeout "$limit" "$@" > "$out/$name.txt" 2>&1
  echo "rc=$? after $((SECONDS - t0))s" | tee -a "$out/$name.txt"
  tail -40 "$out/$name.txt"
}
if [ "${PARTS:-all}" = roofline ]; then
  part roofline 150 python3 scripts/h200_roofline.py
  exit 0
fi
part memory 150 python3 scripts/h200_memory.py --budget-s 130 --json "$out/memory.json"
part profiles 70 python3 scripts/h200_profiles.py --out "$out/profiles"
part creation 60 python3 scripts/h200_creation.py --configs 4x768
part p2 200 python3 -m pytest -p perfsuite.plugin -p no:cacheprovider -q --perf tests/eqx/test_perf_train_step.py --perf-json="$out/p2.json"
