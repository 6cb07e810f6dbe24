"""SPD training steps (PyTorch): the faithful baseline and each optimization flag.

Every configuration runs `trainfast.spd.make_trainer(...).step()`, the code the perf tests
and `python -m trainfast.spd` time. `cuda` (and the `cuda_graphs` flag) skip on machines
without CUDA.

On CPU the batch is cut to `CPU_BATCH_SIZE` and torch runs one intra-op thread: the
upstream batches (2048-4096) take seconds per step there, and OpenMP's spinning threads
turn milliseconds into seconds on a shared machine. CUDA runs use the upstream shapes.
"""

import torch

from trainfast.spd import Flags, make_trainer

from .common import require_cuda, sync_torch


WORKLOADS = ["tms_5-2", "resid_mlp1"]
DEVICES = ["cpu", "cuda"]
CPU_BATCH_SIZE = 64
# The baseline, the named sets, then every flag alone, so each optimization has a history.
FLAG_SETS = ["baseline", "exact", "fastest", *Flags.names()]


def _flags(name: str, device: str) -> Flags:
    if name == "baseline":
        return Flags()
    if name == "exact":
        return Flags.exact()
    if name == "fastest":
        return Flags.fastest(device)
    return Flags.parse([name])


def _trainer(workload: str, flags: str, device: str):
    if device == "cuda":
        require_cuda(f"SPD on {device}")
        overrides = None
    elif flags == "cuda_graphs":
        raise NotImplementedError("the cuda_graphs flag needs a CUDA device")
    else:
        torch.set_num_threads(1)
        overrides = {"batch_size": CPU_BATCH_SIZE}
    return make_trainer(workload, flags=_flags(flags, device), device=device, overrides=overrides)


class _SPDBase:
    params = [WORKLOADS, FLAG_SETS, DEVICES]
    param_names = ["workload", "flags", "device"]
    version = "1"
    timeout = 900
    rounds = 1  # each process pays the warm-up (and, for `compile`, the compilation)
    warmup_steps = 3

    def setup(self, workload, flags, device):
        self.device = device
        self.trainer = _trainer(workload, flags, device)
        for _ in range(self.warmup_steps):
            self.trainer.step()
        sync_torch(device)

    def teardown(self, workload, flags, device):
        trainer = getattr(self, "trainer", None)
        if trainer is not None:
            trainer.close()


class SPDStep(_SPDBase):
    """One SPD iteration (forward, causal importances, losses, backward, AdamW), synced.

    Synchronising after every step charges each flag for its device work; `SPDSteps`
    shows what asynchronous flags gain when steps are issued back to back.
    """

    def time_step(self, workload, flags, device):
        self.trainer.step()
        sync_torch(self.device)

    def peakmem_step(self, workload, flags, device):
        self.trainer.step()
        sync_torch(self.device)


class SPDSteps(_SPDBase):
    """Ten SPD iterations back to back, synced once at the end (seconds per 10 steps)."""

    steps = 10

    def time_steps(self, workload, flags, device):
        step = self.trainer.step
        for _ in range(self.steps):
            step()
        sync_torch(self.device)
