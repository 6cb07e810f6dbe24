"""Settings shared by the SPD tests."""

from __future__ import annotations

import torch


# One intra-op thread: on a shared 2-core machine OpenMP's spinning threads turn millisecond
# ops into seconds under contention (measured 32 s -> 1.7 s for a tiny 5-step run).
torch.set_num_threads(1)
