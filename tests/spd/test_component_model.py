"""Semantics from ../shared/docs/spd.md: delta identity, all-ones masks reproduce the target,
caching."""

from __future__ import annotations

import pytest
import torch

from trainfast.spd import ComponentModel, Flags, MaskInfo
from trainfast.spd._config import SPDConfig
from trainfast.spd._targets import ResidMLPModel, TMSModel


HOOK_FLAGS = {
    "per_call": Flags(),
    "persistent": Flags(persistent_hooks=True),
    "explicit": Flags(explicit_forward=True),
}
PATHS = ("layers.0.mlp_in", "layers.0.mlp_out", "layers.1.mlp_in", "layers.1.mlp_out")


def _model(flags: Flags, C: int = 6) -> ComponentModel:
    torch.manual_seed(0)
    return ComponentModel(
        ResidMLPModel(10, 16, 5, 2, bias=True), SPDConfig(C=C, target_module_paths=PATHS), flags
    )


def _x() -> torch.Tensor:
    return torch.randn(7, 10, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("cached", [False, True])
def test_target_weight_is_components_plus_delta(cached):
    m = _model(Flags(cache_target_weights=cached))
    deltas = m.calc_weight_deltas()
    for p in PATHS:
        comp = m.component(p)
        vu_t = (comp.V @ comp.U).T
        torch.testing.assert_close(m.target_weight(p), vu_t + deltas[p], rtol=0, atol=1e-6)
        torch.testing.assert_close(comp.weight, vu_t)


@pytest.mark.parametrize("mode", list(HOOK_FLAGS))
def test_all_ones_masks_plus_delta_reproduce_target(mode):
    m = _model(HOOK_FLAGS[mode])
    x = _x()
    deltas = m.calc_weight_deltas()
    infos = {p: MaskInfo(torch.ones(7, 6), (deltas[p], torch.ones(7))) for p in PATHS}
    with torch.no_grad():
        target = m(x)
        masked = m(x, mask_infos=infos)
    torch.testing.assert_close(masked, target, rtol=1e-5, atol=1e-5)
    assert not torch.equal(masked, m(x, mask_infos={p: MaskInfo(torch.zeros(7, 6)) for p in PATHS}))


@pytest.mark.parametrize("mode", list(HOOK_FLAGS))
def test_cache_holds_module_inputs(mode):
    m = _model(HOOK_FLAGS[mode])
    x = _x()
    out, cache = m(x, cache_type="input")
    tgt = m.target_model
    resid = x @ tgt.W_E
    h = torch.relu(tgt.layers[0].mlp_in(resid))
    assert list(cache) == list(PATHS)
    torch.testing.assert_close(cache["layers.0.mlp_in"], resid)
    torch.testing.assert_close(cache["layers.0.mlp_out"], h)
    torch.testing.assert_close(out, tgt(x))


def test_hook_modes_agree_bitwise_and_leave_no_hooks():
    x = _x()
    outs = []
    for flags in HOOK_FLAGS.values():
        m = _model(flags)
        deltas = m.calc_weight_deltas()
        infos = {
            p: MaskInfo(
                torch.rand(7, 6, generator=torch.Generator().manual_seed(2)),
                (deltas[p], torch.full((7,), 0.5)),
            )
            for p in PATHS[:2]
        }
        outs.append(m(x, mask_infos=infos))
        n_hooks = sum(len(mod._forward_hooks) for mod in m.target_model.modules())
        assert n_hooks == (
            len(PATHS) if flags.persistent_hooks and not flags.explicit_forward else 0
        )
    assert torch.equal(outs[0], outs[1])
    assert torch.equal(outs[0], outs[2])


@pytest.mark.parametrize("mode", list(HOOK_FLAGS))
def test_routing_mask_keeps_target_where_false(mode):
    m = _model(HOOK_FLAGS[mode])
    x = _x()
    routing = torch.tensor([True, False] * 3 + [True])
    infos = {p: MaskInfo(torch.zeros(7, 6), None, routing) for p in PATHS}
    with torch.no_grad():
        out, target = m(x, mask_infos=infos), m(x)
    torch.testing.assert_close(out[~routing], target[~routing])
    assert not torch.allclose(out[routing], target[routing])


def test_fused_unmasked_matches_within_tolerance():
    torch.manual_seed(0)
    tms = TMSModel(12, 4)
    cfg = SPDConfig(C=30, target_module_paths=("linear1", "linear2"))
    ref = ComponentModel(tms, cfg, Flags())
    fused = ComponentModel(tms, cfg, Flags(fused_unmasked=True))
    fused.load_state_dict(ref.state_dict())
    x = torch.rand(9, 12)
    infos = {p: MaskInfo(None) for p in cfg.target_module_paths}
    a, b = ref(x, mask_infos=infos), fused(x, mask_infos=infos)
    torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)
    a.sum().backward()
    b.sum().backward()
    for (_, p), (_, q) in zip(ref.named_parameters(), fused.named_parameters()):
        if p.grad is not None:
            torch.testing.assert_close(q.grad, p.grad, rtol=1e-4, atol=1e-6)


def test_pointwise_ci_fn_matches_einsum():
    from trainfast.spd._components import MLPCiFn

    torch.manual_seed(0)
    fn = MLPCiFn(7, (16,))
    acts = torch.randn(5, 7, requires_grad=True)
    ref = fn(acts)
    (g_ref,) = torch.autograd.grad(ref.sum(), acts)
    for layer in fn.layers:
        layer.pointwise = True
    got = fn(acts)
    (g_got,) = torch.autograd.grad(got.sum(), acts)
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(g_got, g_ref, rtol=1e-5, atol=1e-6)
    m = _model(Flags(fused_ci_fn=True))
    assert all(layer.pointwise for fn in m.ci_fns.values() for layer in fn.layers)
