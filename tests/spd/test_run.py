"""The public entry points: `run`, `make_trainer`, the CLI."""

from __future__ import annotations

import json

import pytest
import torch
from spd_workloads import tiny_resid, tiny_tms

from trainfast.spd import WORKLOADS, Flags, make_trainer, run
from trainfast.spd.__main__ import main


def test_run_result_fields(tmp_path):
    r = run(tiny_tms(), 3, flags=["lean_gc"], seed=1, out_dir=tmp_path)
    assert len(r.loss_terms) == len(r.step_times) == 4
    assert set(r.loss_terms[0]) >= {"importance_minimality", "stochastic_recon", "total"}
    assert r.flags == Flags(lean_gc=True)
    assert all(t > 0 for t in r.step_times)
    assert r.state_dict["components.linear1.V"].device.type == "cpu"
    assert [p.name for p in r.checkpoints] == ["model_2.pth", "model_3.pth"]
    assert (tmp_path / "metrics.jsonl").exists()
    assert r.warmup_losses  # faithfulness warm-up ran and was logged


def test_out_dir_none_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = run(tiny_resid(), 1)
    assert r.checkpoints == []
    assert list(tmp_path.iterdir()) == []


def test_training_reduces_loss():
    r = run(tiny_tms(lr=1e-2, eval_freq=None, save_freq=None), 30)
    first = sum(t["total"] for t in r.loss_terms[:5])
    last = sum(t["total"] for t in r.loss_terms[-5:])
    assert last < first


def test_tied_components_share_storage():
    t = make_trainer(tiny_tms())
    c1, c2 = t.model.component("linear1"), t.model.component("linear2")
    assert c2.U.data_ptr() == c1.V.data_ptr()
    assert c2.V.data_ptr() == c1.U.data_ptr()


def test_tied_components_are_each_others_transposes_throughout_training():
    # The TMS target has linear2.W = linear1.W^T, so component c of linear2 must be component
    # c of linear1 transposed, `V2[:, c] (x) U2[c, :] == (V1[:, c] (x) U1[c, :])^T`, and stay so
    # after updates. Tying only U2 = V1^T left V2 free: the sums differed from the first step.
    t = make_trainer(tiny_tms(), steps=4)
    t.faithfulness_warmup()
    for _ in range(4):
        c1, c2 = t.model.component("linear1"), t.model.component("linear2")
        for c in range(c1.C):
            comp1 = torch.outer(c1.V[:, c], c1.U[c, :])
            comp2 = torch.outer(c2.V[:, c], c2.U[c, :])
            assert torch.equal(comp2, comp1.T), c
        torch.testing.assert_close(c2.weight, c1.weight.T)  # sums may run in another order
        t.step()


def test_last_iteration_makes_no_update():
    t = make_trainer(tiny_resid(), steps=1)
    t.step()
    before = {k: v.clone() for k, v in t.model.state_dict().items()}
    t.step()  # iteration `steps`: logs/evaluates/saves only
    assert all(torch.equal(before[k], v) for k, v in t.model.state_dict().items())
    with pytest.raises(RuntimeError, match="all 2 iterations have run"):
        t.step()


def test_registered_workload_shapes():
    assert set(WORKLOADS) == {"tms_5-2", "tms_40-10", "resid_mlp1", "resid_mlp2", "resid_mlp3"}
    assert WORKLOADS["resid_mlp3"].config.C == 500
    assert len(WORKLOADS["resid_mlp3"].config.target_module_paths) == 6
    assert WORKLOADS["tms_40-10"].config.batch_size == 4096


def test_resid_mlp2_subset_and_pgd_terms_run():
    wl = tiny_resid(
        loss_coeffs={
            "faithfulness": 0.0,
            "importance_minimality": 1e-4,
            "stochastic_recon_subset": 2.0,
            "pgd_recon_subset": 2.0,
            "ci_masked_recon_layerwise": 1.0,
        },
        pgd_mask_scope="shared_across_batch",
        ci_fn_type="shared_mlp",
        ci_fn_hidden=(16,),
        eval_freq=None,
    )
    base = run(wl, 2)
    exact = run(wl, 2, flags=Flags.exact())
    assert base.loss_terms == exact.loss_terms
    assert all(v == v for rec in base.loss_terms for v in rec.values())  # no NaN


def test_cli_ablate_prints_table(capsys):
    rc = main(
        [
            "--workload",
            "tms_5-2",
            "--ablate",
            "--only",
            "all_exact",
            "--warmup",
            "1",
            "--steps",
            "1",
            "--repeats",
            "1",
            "--batch-size",
            "16",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0
    assert "| tms_5-2 | baseline |" in out
    assert "| tms_5-2 | all_exact |" in out


def test_cli_unknown_workload(capsys):
    assert main(["--workload", "nope"]) == 2
    assert "unknown workload 'nope'" in capsys.readouterr().out


def test_metrics_jsonl_is_valid(tmp_path):
    run(tiny_resid(), 2, out_dir=tmp_path)
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert all(isinstance(json.loads(line), dict) for line in lines)


def test_cli_decompose_prints_the_evaluation(capsys):
    rc = main(["--workload", "tms_5-2", "--decompose", "3", "--batch-size", "16", "--lr", "2e-3"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "# tms_5-2 seed 0 baseline: 3 steps in" in out
    assert "# linear1: " in out
    assert "# linear2: " in out
