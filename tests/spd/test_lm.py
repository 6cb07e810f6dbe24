"""The LM workload (`trainfast.spd._lm`): a GPT-2 from HF transformers, decomposed through hooks
on its Conv1D modules, fed by a CPU DataLoader; every exact flag bitwise equal to the baseline.

Everything runs `gpt2_tiny` (2 layers, width 32, vocab 256, 4 x 32 tokens, 8 Conv1Ds, C=16):
seconds on a 2-core CPU. Skipped where transformers is not installed (the `lm` extra).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from trainfast.spd import (
    DATA_FLAGS,
    EXACT_FLAGS,
    LM_WORKLOADS,
    ComponentModel,
    Flags,
    MaskInfo,
    RunResult,
    TokenSequences,
    decompose,
    get_workload,
    make_trainer,
    run,
)
from trainfast.spd._lm import HostBatches


needs_transformers = pytest.mark.skipif(
    importlib.util.find_spec("transformers") is None,
    reason="needs HF transformers (pip install 'perfsuite[lm]')",
)
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

STEPS = 3
# Eval at 0 and 2 and checkpoints at 2 and 3 (the last iteration): every exact flag's effect on
# eval, saving and logging is compared, not only the training steps.
TINY = {
    "faithfulness_warmup_steps": 2,
    "train_log_freq": 2,
    "eval_freq": 2,
    "n_eval_steps": 1,
    "save_freq": 2,
}


def _tiny_model(flags: Flags | None = None) -> ComponentModel:
    wl = get_workload("gpt2_tiny")
    torch.manual_seed(0)
    return ComponentModel(wl.make_target(), wl.config, flags or Flags())


def _tokens(batch: int = 3) -> torch.Tensor:
    wl = get_workload("gpt2_tiny")
    ds = TokenSequences(wl.shape.vocab_size, wl.shape.seq_len, seed=5)
    return torch.stack([ds[i] for i in range(batch)])


# ------------------------------------------------------------------------------ the data
def test_token_sequences_are_a_function_of_seed_and_index():
    ds = TokenSequences(100, 64, seed=3)
    a, b = ds[7], TokenSequences(100, 64, seed=3)[7]
    assert a.dtype == torch.int64
    assert a.shape == (64,)
    assert torch.equal(a, b)  # any worker builds the same item
    assert not torch.equal(ds[7], ds[8])
    assert not torch.equal(ds[7], TokenSequences(100, 64, seed=4)[7])
    tokens = torch.cat([ds[i] for i in range(50)])
    assert 0 <= int(tokens.min())
    assert int(tokens.max()) < 100
    counts = torch.bincount(tokens, minlength=100)
    # Zipf, exponent 1.1: rank 1 has 10^1.1 ~ 12.6x rank 10's probability; 3200 draws keep
    # the observed ratio well above 4.
    assert counts[0] > 4 * counts[9]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"vocab_size": 1, "seq_len": 4}, "need vocab_size >= 2 and seq_len >= 1"),
        ({"vocab_size": 10, "seq_len": 0}, "need vocab_size >= 2 and seq_len >= 1"),
        ({"vocab_size": 10, "seq_len": 4, "exponent": 0.0}, "exponent must be > 0"),
    ],
)
def test_token_sequences_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TokenSequences(seed=0, **kwargs)


def test_data_flags_build_the_loader_they_name():
    wl = get_workload("gpt2_tiny")
    cpu = torch.device("cpu")
    base = wl.loader(4, 0, cpu, Flags())
    assert base.num_workers == 0
    assert not base.pin_memory
    workers = wl.loader(4, 0, cpu, Flags(data_workers=True))
    assert workers.num_workers == wl.num_workers > 0
    # Without CUDA there is nothing to pin: the flag leaves the loader alone there.
    assert not wl.loader(4, 0, cpu, Flags(pin_memory=True)).pin_memory
    batches = HostBatches(base, cpu, Flags(non_blocking=True))
    assert batches.non_blocking
    first = next(batches)
    assert first.shape == (4, wl.shape.seq_len)
    assert first.dtype == torch.int64


@needs_cuda
@pytest.mark.parametrize(
    "flags",
    [
        Flags(pin_memory=True),
        Flags(non_blocking=True),
        Flags(pin_memory=True, non_blocking=True),
        Flags(prefetch=True),
        Flags(data_workers=True, pin_memory=True, non_blocking=True, prefetch=True),
    ],
    ids=["pin", "non_blocking", "pin+non_blocking", "prefetch", "all_data"],
)
def test_data_flags_deliver_the_baselines_batches_on_cuda(flags):
    wl = get_workload("gpt2_tiny")
    cuda = torch.device("cuda")
    loader = wl.loader(4, 0, cuda, flags)
    assert loader.pin_memory == flags.pin_memory
    base = HostBatches(wl.loader(4, 0, cuda, Flags()), cuda, Flags())
    got = HostBatches(loader, cuda, flags)
    try:
        for _ in range(4):
            # Compared after the consumer's use: a non-blocking copy must have landed, and a
            # prefetched batch's stream must have been waited on, before it is read.
            b, g = next(base), next(got)
            assert g.device.type == "cuda"
            assert torch.equal(g, b)
    finally:
        got.close()


# ------------------------------------------------------------------------------ the target
@needs_transformers
def test_conv1d_weights_are_read_transposed():
    m = _tiny_model()
    for path in m.paths:
        conv = m.target_model.get_submodule(path)
        assert type(conv).__name__ == "Conv1D"
        w = m.target_weight(path)
        assert torch.equal(w, conv.weight.T)  # (d_out, d_in), upstream's `W.T`
        comp = m.component(path)
        assert (comp.d_out, comp.d_in) == tuple(w.shape)
        assert torch.equal(comp.bias, conv.bias)


@needs_transformers
def test_hooks_cache_each_conv1d_input_and_replace_its_output():
    m = _tiny_model()
    x = _tokens()
    with torch.no_grad():
        logits = m.target_model(x)
        out, cache = m(x, cache_type="input")
        assert list(cache) == m.paths
        for path, acts in cache.items():
            assert acts.shape == (*x.shape, m.component(path).d_in)
        torch.testing.assert_close(out, logits)
        deltas = m.calc_weight_deltas()
        lead = tuple(x.shape)
        # Components with every mask at one plus the full delta component add up to the
        # target weight: the hooks must reproduce the target's logits.
        full = {
            p: MaskInfo(torch.ones(m.component(p).C), (deltas[p], torch.ones(lead)))
            for p in m.paths
        }
        torch.testing.assert_close(m(x, mask_infos=full), logits, rtol=1e-4, atol=1e-5)
        # Without the delta the random components are far from the weights: the output moves,
        # which shows the hooks' outputs replaced the Conv1Ds'.
        bare = {p: MaskInfo(torch.ones(m.component(p).C)) for p in m.paths}
        assert not torch.allclose(m(x, mask_infos=bare), logits, atol=1e-2)
    n_hooks = sum(len(mod._forward_hooks) for mod in m.target_model.modules())
    assert n_hooks == 0  # per-call hooks are removed after each forward


@needs_transformers
def test_explicit_forward_falls_back_to_persistent_hooks_on_an_hf_model():
    m = _tiny_model(Flags(explicit_forward=True))
    assert m.hook_mode == "persistent"
    n_hooks = sum(len(mod._forward_hooks) for mod in m.target_model.modules())
    assert n_hooks == len(m.paths)
    toy = make_trainer("tms_5-2", flags=Flags(explicit_forward=True), overrides={"batch_size": 4})
    assert toy.model.hook_mode == "explicit"  # the toys' forward takes `sub`


def test_lm_workloads_have_upstreams_lm_settings():
    for wl in LM_WORKLOADS.values():
        cfg = wl.config
        assert cfg.output_loss_type == "kl"
        assert list(cfg.loss_coeffs) == [
            "importance_minimality",
            "stochastic_recon_subset",
            "pgd_recon_subset",
            "faithfulness",
        ]
        assert (cfg.pgd_n_steps, cfg.pgd_step_size, cfg.pgd_mask_scope) == (
            1,
            1.0,
            "shared_across_batch",
        )
        assert (cfg.pnorm, cfg.p_anneal_final_p, cfg.ci_fn_type) == (2.0, 0.3, "shared_mlp")
        assert len(cfg.target_module_paths) == 4 * wl.shape.n_layer
    big = LM_WORKLOADS["gpt2_simple"]
    assert (big.shape.n_layer, big.shape.n_embd, big.shape.vocab_size) == (4, 128, 4019)
    assert (big.config.batch_size, big.shape.seq_len, big.config.C) == (64, 512, 1200)
    assert big.fastest_flags("cuda").bf16
    assert not Flags.fastest("cuda").bf16  # the toys' "all on" stays without bf16
    assert set(DATA_FLAGS) <= set(EXACT_FLAGS)
    assert big.fastest_flags("cuda").cuda_graphs


def test_lm_workload_lookup_errors():
    with pytest.raises(ValueError, match="workload 'gpt2_tiny' has only a random target"):
        get_workload("gpt2_tiny", target="trained")
    with pytest.raises(ValueError, match=r"unknown workload 'gpt3'; known workloads: .*gpt2_tiny"):
        get_workload("gpt3")
    with pytest.raises(ValueError, match="workload 'gpt2_tiny' has only a random target"):
        decompose("gpt2_tiny", 1)


def test_spd_imports_without_transformers_and_names_the_extra():
    # A fresh interpreter where `import transformers` fails: trainfast.spd must import, and
    # building an LM target must say what to install.
    code = (
        "import sys; sys.modules['transformers'] = None\n"
        "import trainfast.spd as spd\n"
        "try:\n"
        "    spd.get_workload('gpt2_tiny').make_target()\n"
        "except ImportError as e:\n"
        "    print('ERR', e)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "ERR the LM workloads need HF transformers: pip install 'perfsuite[lm]'" in out.stdout


# ------------------------------------------------------------------------------ training
def _run(flags: Flags, out_dir: Path, **config) -> RunResult:
    return run(
        "gpt2_tiny", STEPS, flags=flags, seed=0, out_dir=out_dir, overrides={**TINY, **config}
    )


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    if importlib.util.find_spec("transformers") is None:
        pytest.skip("needs HF transformers")
    d = tmp_path_factory.mktemp("lm_base")
    return _run(Flags(), d), d


@needs_transformers
def test_baseline_trains_on_the_lm(baseline):
    base, d = baseline
    assert len(base.loss_terms) == STEPS + 1
    first = base.loss_terms[0]
    assert set(first) >= {"stochastic_recon_subset", "pgd_recon_subset", "faithfulness", "total"}
    # KL of a stochastically masked model to the target: positive and finite; PGD's mask is
    # the adversarial one, so its KL is at least the random one's (both one-sample values,
    # hence the slack: with random components both are far from zero).
    assert 0 < first["stochastic_recon_subset"] < math.inf
    assert first["pgd_recon_subset"] > 0.5 * first["stochastic_recon_subset"]
    assert [p.name for p in base.checkpoints] == ["model_2.pth", "model_3.pth"]
    records = [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "eval/stochastic_recon" in r] == [0, 2]


# `fused_unmasked` and `fused_ci_fn` have nothing to act on in the LM (no unmasked term; a
# shared_mlp CI function): they must leave it bitwise as the baseline too (docs/spd-lm.md).
@needs_transformers
@pytest.mark.parametrize("flag", [*EXACT_FLAGS, "all_exact", "fused_unmasked", "fused_ci_fn"])
def test_exact_flag_is_bitwise_on_the_lm(flag, baseline, tmp_path):
    base, base_dir = baseline
    flags = Flags.exact() if flag == "all_exact" else Flags.parse([flag])
    got = _run(flags, tmp_path)
    assert got.loss_terms == base.loss_terms  # floats compared with ==, term by term
    assert got.eval_metrics == base.eval_metrics
    assert got.warmup_losses == base.warmup_losses
    for k in base.state_dict:
        assert torch.equal(got.state_dict[k], base.state_dict[k]), k
    for pa, pb in zip(got.checkpoints, base.checkpoints, strict=True):
        sa, sb = torch.load(pa), torch.load(pb)
        assert all(torch.equal(sa[k].cpu(), sb[k].cpu()) for k in sb), pa.name
    assert (tmp_path / "metrics.jsonl").read_text() == (base_dir / "metrics.jsonl").read_text()


@needs_transformers
def test_fused_adamw_within_tolerance_on_the_lm(baseline, tmp_path):
    base, _ = baseline
    got = _run(Flags(fused_adamw=True), tmp_path)
    # Fused and foreach AdamW round differently at the last ulp; 3 steps at lr 2e-4 (plus two
    # warm-up steps at 1e-3) keep the drift at the ulp level of the updates.
    for k in base.state_dict:
        torch.testing.assert_close(got.state_dict[k], base.state_dict[k], rtol=1e-5, atol=1e-6)
    for a, b in zip(got.loss_terms, base.loss_terms):
        for k in a:
            assert math.isclose(a[k], b[k], rel_tol=1e-4, abs_tol=1e-7), (k, a[k], b[k])


@needs_transformers
def test_bf16_loose_first_step_and_finite_on_the_lm(baseline, tmp_path):
    base, _ = baseline
    got = _run(Flags(bf16=True), tmp_path)
    first, ref = got.loss_terms[0], base.loss_terms[0]
    # bf16 keeps 8 bits of mantissa (relative rounding 2^-9 ~ 0.2% per op); summed over the
    # GEMMs of 2 layers the one-step losses stay within 10% (the KLs are small differences of
    # log-probabilities, which amplify relative errors; faithfulness is computed in fp32).
    for k in ("importance_minimality", "stochastic_recon_subset", "faithfulness"):
        assert math.isclose(first[k], ref[k], rel_tol=0.1), (k, first[k], ref[k])
    assert all(math.isfinite(v) for rec in got.loss_terms for v in rec.values())


@needs_transformers
@needs_cuda
@pytest.mark.filterwarnings("default")  # torch/transformers warnings during capture are shown
def test_cuda_graphs_train_like_eager_on_the_lm():
    """The whole LM step (HF forward with hooks, PGD's autograd.grad, AdamW) captured and
    replayed: graph replays draw masks from graph-safe Philox offsets, so only the eager
    steps before the capture are equal; later losses must stay finite and in eager's band."""
    cfg = {**TINY, "eval_freq": None, "save_freq": None}
    base = run("gpt2_tiny", 30, device="cuda", overrides=cfg)
    got = run("gpt2_tiny", 30, flags=Flags(cuda_graphs=True), device="cuda", overrides=cfg)
    for a, b in zip(got.loss_terms[:3], base.loss_terms[:3]):
        assert math.isclose(a["total"], b["total"], rel_tol=1e-5)
    # The total is mostly faithfulness (x 1e6, mask-free): the KL terms, which the random
    # masks drive, are checked on their own as well.
    for term in ("total", "stochastic_recon_subset", "pgd_recon_subset"):
        late_a = sum(t[term] for t in got.loss_terms[-10:])
        late_b = sum(t[term] for t in base.loss_terms[-10:])
        assert math.isfinite(late_a), term
        assert 0.5 < late_a / late_b < 2.0, (term, late_a, late_b)
