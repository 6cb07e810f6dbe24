"""The paper's TMS 5-2 result as a test: SPD on a trained target finds its five features.

The shipped trained TMS 5-2 (a pentagon), the package's tms_5-2 SPD config with the fixed
tying, on the CPU at a budget that fits `make test`: batch 256 instead of 4096, 2000 steps
instead of 10k (the cosine schedule runs over them) and, to make up for 1/80 of the samples,
lr 3e-3 instead of 1e-3 (at 1e-3, even with 3000 steps, a feature ends split over two
components in 4 of 9 seeds; docs/spd-recovery.md). All exact flags are on: they are bit-identical to the
baseline (tests/spd/test_equivalence.py) and faster.

What must come out, per seed: exactly 5 live components in each matrix (causal importance
> 0.1 on some one-hot input), the same five in both (the tying), each responding to exactly
one feature in `linear1` and together covering all five, every live component's cosine to its
feature's slice of the target weight > 0.99 in both matrices; the other 15 dead.
"""

from __future__ import annotations

import pytest

from trainfast.spd import Flags, decompose


SEEDS = (0, 1, 2)
"""Seeds the test names; docs/spd-recovery.md has the other seeds tried and their results."""

STEPS = 2000
BUDGET = {"batch_size": 256, "lr": 3e-3, "train_log_freq": 1000}


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_tms_5_2_decomposes_into_its_five_features(seed):
    d = decompose("tms_5-2", STEPS, flags=Flags.exact(), seed=seed, overrides=BUDGET)
    first, second = d.modules["linear1"], d.modules["linear2"]
    assert first.n_live == 5, first.summary()
    assert first.one_feature_each(), first.summary()
    assert first.covers_features_once(5), first.summary()
    assert second.live == first.live, second.summary()
    assert second.covers_features_once(5), second.summary()
    assert first.min_cosine() > 0.99, first.summary()
    assert second.min_cosine() > 0.99, second.summary()
