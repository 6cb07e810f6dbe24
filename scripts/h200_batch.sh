#!/usr/bin/env bash
# The H200 work still owed by issues 14, 15 and 17, in priority order, batched for the device
# tool's 10-minute calls (run from the tree; writes everything under $OUT):
#   PARTS=a bash scripts/h200_batch.sh   # call 1 (~9 min): memory rows, SPD kernel counts, CUDA tests
#   PARTS=b bash scripts/h200_batch.sh   # call 2 (~9 min): seed 001's creation table (issue 17 §2)
#   PARTS=c bash scripts/h200_batch.sh   # call 3 (~9 min): dispatch vs buffers, P2 on unrolled BERT-base (17 §3)
#   PARTS=d bash scripts/h200_batch.sh   # call 4 (~9 min): what a, c left (32x512 memory rows and packed state, the P2 loop test)
#   PARTS=e bash scripts/h200_batch.sh   # call 5 (~4 min): creation with the threefry kernel by default (17 §1)
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
case "${PARTS:-a}" in
  a)
    # Issue 14: the graph pool is charged (new test), BERT 32x512 rows, SPD with cuda_graphs.
    part cuda-tests 90 python3 -m pytest -p perfsuite.plugin -p no:cacheprovider -q tests/spd/test_memory_column.py tests/perfsuite/test_memory.py -k "cuda or graph"
    part memory 280 python3 scripts/h200_memory.py --parts bert,spd --budget-s 260 --json "$out/memory.json"
    # Issue 15: kernel counts of eager / compile / cuda_graphs with the fixed counter.
    part roofline-spd 150 python3 scripts/h200_roofline.py --sections spd --json "$out/roofline-spd.json"
    ;;
  b)
    # Issue 17 §2: seed 001's whole table, each size in its own subprocess and timeout.
    part creation 540 python3 scripts/h200_creation.py --budget 520 --timeout 120 --compilation-cache /tmp/jax-cc
    ;;
  c)
    # Issue 17 §3: is the rest of a waited step the dispatch of ~200 buffers? (packed state)
    part dispatch 200 python3 scripts/h200_dispatch.py
    # Issue 17 §3: the 20-step loop and 32x512 claims that did not fit last time.
    part p2 330 python3 -m pytest -p perfsuite.plugin -p no:cacheprovider -q --perf tests/eqx/test_perf_train_step.py -k "cached" --perf-json="$out/p2.json"
    ;;
  d)
    # Issue 14: the 32x512 memory rows the first call's budget cut (each dispatcher compiles ~25 s).
    part memory-32x512 200 python3 scripts/h200_memory.py --parts bert --budget-s 190 --bert-rows 32x512:filter_jit,32x512:partition,32x512:jit --json "$out/memory-32x512.json"
    # Issue 17 §3: packed state at 32x512 (part c's 200 s ended before it).
    part dispatch-32x512 150 python3 scripts/h200_dispatch.py --no-buffers --shapes 32x512
    # Issue 17 §3: the 20-step loop test (`-k cached` in part c does not select it).
    part p2-loop 220 python3 -m pytest -p perfsuite.plugin -p no:cacheprovider -q --perf tests/eqx/test_perf_train_step.py -k "loop" --perf-json="$out/p2-loop.json"
    ;;
  e)
    # Issue 17 §1: the creation's random bits by the threefry kernel on one GPU (default now):
    # the same bits (test), then the first runs with where their compile time went.
    part kernel-test 120 python3 -m pytest -p perfsuite.plugin -p no:cacheprovider -q tests/eqx/test_tensor_parallel.py -k random_kernel
    part creation-kernel 300 python3 scripts/h200_creation.py --no-step --budget 290 --timeout 60 --configs 4x768 12x1024 24x2048 60x2048
    ;;
  *) echo "PARTS must be a, b, c, d or e" >&2; exit 2 ;;
esac
