"""SPD's exact tier (issue 15): FLOPs per training step, counted by torch's FlopCounterMode.

`fused_unmasked` computes an unmasked component forward as `x @ (V @ U)` instead of
`(x @ V) @ U`. Per decomposed Linear (`d_in -> d_out`, `C` components, batch `B`) the forward
costs `2 B C (d_in + d_out)` FLOPs unfused and `2 d_in C d_out + 2 B d_in d_out` fused: fewer
only when `B` is large enough. resid_mlp1 (1000 -> 50 -> 1000, C = 100) breaks even at
`B = d_in C d_out / (C (d_in + d_out) - d_in d_out) ~ 91` counting the forward alone; the
counts, backward included, read +24.2 MFLOP per step at batch 64 and -83.4 MFLOP at 256
(break-even ~107; the fixed part, 60.0 MFLOP, is exactly three times the two `V @ U`
products), so the flag removes FLOPs at the config batch (2048) and adds them at 64. None of the shipped workloads has an
unmasked loss term: there the flag changes nothing per step (exactly the same FLOPs), which
these counts make visible. Counts are exact on every machine (no timing), so these run on
the CPU in `make perf`.
"""

from __future__ import annotations

import pytest

from trainfast.spd import Flags, make_trainer


pytestmark = pytest.mark.perf

# resid_mlp1's loss terms plus an unmasked reconstruction (the path `fused_unmasked` takes).
WITH_UNMASKED = {
    "importance_minimality": 1e-5,
    "stochastic_recon_layerwise": 1.0,
    "stochastic_recon": 1.0,
    "unmasked_recon": 1.0,
}


def _flops(perf, name: str, flags: Flags, **overrides) -> int:
    trainer = make_trainer("resid_mlp1", flags=flags, seed=0, overrides=overrides)
    try:
        trainer.step()  # first step apart (optimizer state, lazy set-up)
        return perf.counts(trainer.step, name=name)["torch_flops"]
    finally:
        trainer.close()


def test_fused_unmasked_flops_per_step(perf):
    fused = Flags(fused_unmasked=True)
    # Stock losses: no unmasked forward runs, so the flag cannot change the work.
    stock = {"batch_size": 64}
    assert _flops(perf, "baseline_stock", Flags(), **stock) == _flops(
        perf, "fused_stock", fused, **stock
    )
    # With an unmasked term: more FLOPs below the break-even batch, fewer above it.
    small = {"batch_size": 64, "loss_coeffs": WITH_UNMASKED}
    large = {"batch_size": 256, "loss_coeffs": WITH_UNMASKED}
    base_small = _flops(perf, "baseline_b64", Flags(), **small)
    fused_small = _flops(perf, "fused_b64", fused, **small)
    base_large = _flops(perf, "baseline_b256", Flags(), **large)
    fused_large = _flops(perf, "fused_b256", fused, **large)
    assert fused_small > base_small, (fused_small, base_small)
    assert fused_large < base_large, (fused_large, base_large)
    perf.record("fused_unmasked_flops_saved_b256", base_large - fused_large, "FLOP")


def test_exact_flags_remove_the_replaced_linears_flops(perf):
    # `explicit_forward` (in the exact set) no longer runs the target's Linears whose
    # output the components replace: fewer FLOPs, and fewer Python calls (no hooks).
    base = make_trainer("resid_mlp1", flags=Flags(), seed=0, overrides={"batch_size": 64})
    exact = make_trainer("resid_mlp1", flags=Flags.exact(), seed=0, overrides={"batch_size": 64})
    try:
        for t in (base, exact):
            t.step()
        cb = perf.counts(base.step, name="baseline")
        ce = perf.counts(exact.step, name="exact")
    finally:
        base.close()
        exact.close()
    assert ce["torch_flops"] < cb["torch_flops"], (ce["torch_flops"], cb["torch_flops"])
    assert ce["python_calls"] < cb["python_calls"], (ce["python_calls"], cb["python_calls"])
