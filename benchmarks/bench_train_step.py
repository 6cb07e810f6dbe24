"""BERT masked-LM train steps under the three `make_train_step` dispatchers (and `jax.jit`).

Same math in every variant; they differ in host-side cost per call, which grows with the
number of leaves, so the models keep BERT's real layer count. `tiny` widths make the host
cost visible on CPU; `base` (BERT-base widths) needs a GPU or TPU and is skipped elsewhere.
"""

from trainfast.eqx.bert import BertConfig
from trainfast.eqx.workloads import train_step_workload

from .common import block_jax, require_jax_accelerator


DISPATCHES = ["filter_jit", "partition", "cached", "jit"]
# name -> (layers, width preset); "base" needs an accelerator.
MODELS = {
    "tiny-2L": (2, "tiny"),
    "tiny-12L": (12, "tiny"),
    "base-12L": (12, "base"),
}


def _workload(dispatch: str, model: str):
    layers, preset = MODELS[model]
    if preset == "base":
        require_jax_accelerator(f"BERT-base ({model})")
        return train_step_workload(dispatch, config=BertConfig(num_layers=layers), batch=8, seq=128)
    return train_step_workload(dispatch, layers)


class TrainStep:
    """One training step (forward, backward, AdamW update), waited for.

    `setup` builds the model, optimizer and batches and runs the first (compiling) step and
    one more, so `time_step` sees only steady-state steps; `track_compile_seconds` reports
    the first step minus a steady step (trace + compile), `peakmem_step` the peak RSS.
    """

    params = [DISPATCHES, list(MODELS)]
    param_names = ["dispatch", "model"]
    version = "1"
    timeout = 900
    # Compilation happens in `setup`; keep the number of processes (each one compiles) low.
    rounds = 1
    repeat = (3, 20, 10.0)

    def setup(self, dispatch, model):
        import time

        self.workload = _workload(dispatch, model)
        start = time.perf_counter()
        block_jax(self.workload())
        first = time.perf_counter() - start
        start = time.perf_counter()
        block_jax(self.workload())
        steady = time.perf_counter() - start
        self.compile_seconds = max(first - steady, 0.0)

    def time_step(self, dispatch, model):
        block_jax(self.workload())

    def peakmem_step(self, dispatch, model):
        block_jax(self.workload.run(3))

    def track_compile_seconds(self, dispatch, model):
        return self.compile_seconds

    track_compile_seconds.unit = "seconds"


class TrainLoop:
    """Seconds per step over 10 steps issued back to back, waited for once at the end.

    Dispatchers that do not block (`partition`, `cached`, `jit`) overlap host dispatch with
    device work here; `filter_jit` blocks inside every call.
    """

    params = [DISPATCHES, list(MODELS)]
    param_names = ["dispatch", "model"]
    version = "1"
    timeout = 900
    rounds = 1
    repeat = (3, 20, 10.0)
    steps = 10

    def setup(self, dispatch, model):
        self.workload = _workload(dispatch, model)
        block_jax(self.workload.run(2))

    def time_loop(self, dispatch, model):
        block_jax(self.workload.run(self.steps))
