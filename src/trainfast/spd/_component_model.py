"""`ComponentModel`: a frozen target whose chosen Linears can be swapped for components.

Three interchangeable ways to reach the decomposed Linears (the `hook_mode` of `Flags`):

- `per_call` (upstream): every forward that masks or caches builds a `functools.partial` hook
  per module, registers it, runs the target and removes it again;
- `persistent`: one hook per module registered at construction; `forward` only sets a context
  that the hook reads, and the hook is a no-op without one;
- `explicit`: the target's own `forward(x, sub=...)` calls back at each Linear; no hooks, and
  a Linear whose output would be replaced is never run.

All three issue the same tensor ops in the same order, so they agree bitwise.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor, nn

from . import _ci_kernel
from ._components import LinearComponents, MaskInfo, MLPCiFn, StackedLinear, make_ci_fn
from ._config import SPDConfig
from ._flags import Flags
from ._masks import Noise
from ._sigmoids import sigmoid_pair


@dataclass
class CIOutputs:
    """Causal importances per module: `lower` (masks), `upper` (penalty), `pre_sigmoid`."""

    lower: dict[str, Float[Tensor, "... C"]]
    upper: dict[str, Float[Tensor, "... C"]]
    pre_sigmoid: dict[str, Float[Tensor, "... C"]]


def _key(path: str) -> str:
    # ModuleDict keys may not contain dots.
    return path.replace(".", "-")


class ComponentModel(nn.Module):
    """Wrap `target` and decompose the Linears at `config.target_module_paths`.

    Args:
        target: the model to decompose; frozen here (`requires_grad_(False)`).
        config: C, CI-function type and widths, sigmoid type.
        flags: hook mode, cached target weights, no-sync asserts, fused unmasked path.

    Raises:
        ValueError: a path names no submodule, or a module that is not an `nn.Linear`, or C <= 0.
    """

    def __init__(self, target: nn.Module, config: SPDConfig, flags: Flags):
        super().__init__()
        if config.C <= 0:
            raise ValueError(f"C must be a positive number of components, got C={config.C}")
        self.target_model = target.requires_grad_(False)
        self.paths = list(config.target_module_paths)
        self.flags = flags
        self.components = nn.ModuleDict()
        self.ci_fns = nn.ModuleDict()
        for path in self.paths:
            try:
                module = target.get_submodule(path)
            except AttributeError as e:
                raise ValueError(f"target module path {path!r} names no submodule") from e
            if not isinstance(module, nn.Linear) and not _is_conv1d(module):
                raise ValueError(
                    f"target module path {path!r} is a {type(module).__name__}, not an nn.Linear"
                    " (or a transformers Conv1D)"
                )
            d_out, d_in = _weight_of(module).shape
            self.components[_key(path)] = LinearComponents(
                d_in, d_out, config.C, module.bias, fused_unmasked=flags.fused_unmasked
            )
            self.ci_fns[_key(path)] = make_ci_fn(
                config.ci_fn_type, config.C, d_in, tuple(config.ci_fn_hidden)
            )
        self.ci_fn_type = config.ci_fn_type
        self.hook_mode = _hook_mode(flags, target)
        self._lower, self._upper = sigmoid_pair(config.sigmoid_type)
        self._ctx: tuple[dict[str, MaskInfo], str, dict[str, Tensor]] | None = None
        self._target_weights: dict[str, Tensor] | None = None
        if flags.fused_ci_fn:
            for module in self.ci_fns.modules():
                if isinstance(module, StackedLinear):
                    module.pointwise = True
                if isinstance(module, MLPCiFn):
                    module.fused = _ci_kernel.available()
        if flags.compile:
            if self.hook_mode == "per_call":
                # Hooks registered inside a compiled region are not seen by the traced target
                # (the cache stays empty), so with per-call hooks the model forward stays
                # eager and only the CI functions and losses are compiled.
                self._forward_impl = torch._dynamo.disable(self._forward_impl)
        if self.hook_mode == "persistent":
            for path in self.paths:
                target.get_submodule(path).register_forward_hook(
                    functools.partial(self._persistent_hook, module_name=path), with_kwargs=True
                )

    # ----------------------------------------------------------------------------- weights
    def component(self, path: str) -> LinearComponents:
        """The `LinearComponents` replacing the Linear at `path`."""
        return self.components[_key(path)]  # type: ignore[return-value]

    def target_weight(self, path: str) -> Float[Tensor, "d_out d_in"]:
        """The frozen target weight at `path` (looked up on every call, as upstream does)."""
        module = self.target_model.get_submodule(path)
        match module:
            case nn.Linear():
                return module.weight
            case _ if _is_conv1d(module):
                return module.weight.T  # Conv1D stores (d_in, d_out), as upstream's `W.T`
            case _:
                raise ValueError(f"module {path!r} is a {type(module).__name__}, not a Linear")

    def calc_weight_deltas(self) -> dict[str, Float[Tensor, "d_out d_in"]]:
        """`W_target - (V @ U)^T` per module, on the autograd graph (gradients reach V, U)."""
        if self.flags.cache_target_weights:
            if self._target_weights is None:
                self._target_weights = {p: self.target_weight(p) for p in self.paths}
            targets = self._target_weights
        else:
            targets = {p: self.target_weight(p) for p in self.paths}
        return {p: targets[p] - self.component(p).weight for p in self.paths}

    # ----------------------------------------------------------------------------- forward
    def forward(
        self,
        x: Tensor,
        mask_infos: dict[str, MaskInfo] | None = None,
        cache_type: str = "none",
    ) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
        """Run the target, with masked modules replaced and/or module inputs cached.

        Args:
            x: the target's input.
            mask_infos: module path -> what to replace it with; `None` = plain target.
            cache_type: `"none"` or `"input"` (cache each decomposed module's input).

        Returns:
            The output, or `(output, cache)` when `cache_type == "input"`.
        """
        if cache_type not in ("none", "input"):
            raise ValueError(f"cache_type must be 'none' or 'input', got {cache_type!r}")
        return self._forward_impl(x, mask_infos or {}, cache_type)

    def _forward_impl(
        self, x: Tensor, mask_infos: dict[str, MaskInfo], cache_type: str
    ) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
        cache: dict[str, Tensor] = {}
        mode = self.hook_mode
        if not mask_infos and cache_type == "none":
            return self.target_model(x)  # persistent hooks see no context and do nothing
        if mode == "explicit":
            self._ctx = (mask_infos, cache_type, cache)
            try:
                out = self.target_model(x, sub=self._sub)
            finally:
                self._ctx = None
        elif mode == "persistent":
            self._ctx = (mask_infos, cache_type, cache)
            try:
                out = self.target_model(x)
            finally:
                self._ctx = None
        else:
            hooked = self.paths if cache_type != "none" else list(mask_infos)
            with self._attach_hooks(hooked, mask_infos, cache_type, cache):
                out = self.target_model(x)
        return (out, cache) if cache_type == "input" else out

    @contextlib.contextmanager
    def _attach_hooks(
        self,
        paths: list[str],
        mask_infos: dict[str, MaskInfo],
        cache_type: str,
        cache: dict[str, Tensor],
    ) -> Iterator[None]:
        # Upstream's per-forward cost: a partial, a register and a remove per hooked module.
        handles = []
        try:
            for path in paths:
                hook = functools.partial(
                    self._components_and_cache_hook,
                    module_name=path,
                    mask_info=mask_infos.get(path),
                    cache_type=cache_type,
                    cache=cache,
                )
                module = self.target_model.get_submodule(path)
                handles.append(module.register_forward_hook(hook, with_kwargs=True))
            yield
        finally:
            for handle in handles:
                handle.remove()

    def _replace(self, path: str, x: Tensor, mask_info: MaskInfo, target_out: Any) -> Tensor:
        comp_out = self.component(path)(
            x, mask_info.component_mask, mask_info.weight_delta_and_mask
        )
        if isinstance(mask_info.routing_mask, str):
            return comp_out
        if target_out is None:  # explicit mode: run the Linear only where it is needed
            target_out = self.target_model.get_submodule(path)(x)
        return torch.where(mask_info.routing_mask[..., None], comp_out, target_out)

    def _components_and_cache_hook(
        self,
        module: nn.Module,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        output: Tensor,
        *,
        module_name: str,
        mask_info: MaskInfo | None,
        cache_type: str,
        cache: dict[str, Tensor],
    ) -> Tensor | None:
        assert len(args) == 1, "decomposed Linears take one positional arg"
        assert not kwargs, "decomposed Linears take no keyword args"
        x = args[0]
        if cache_type == "input":
            cache[module_name] = x
        if mask_info is None:
            return None
        return self._replace(module_name, x, mask_info, output)

    def _persistent_hook(
        self,
        module: nn.Module,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        output: Tensor,
        *,
        module_name: str,
    ) -> Tensor | None:
        if self._ctx is None:
            return None
        mask_infos, cache_type, cache = self._ctx
        return self._components_and_cache_hook(
            module,
            args,
            kwargs,
            output,
            module_name=module_name,
            mask_info=mask_infos.get(module_name),
            cache_type=cache_type,
            cache=cache,
        )

    def _sub(self, name: str, x: Tensor, linear: nn.Linear) -> Tensor:
        assert self._ctx is not None
        mask_infos, cache_type, cache = self._ctx
        if cache_type == "input":
            cache[name] = x
        mask_info = mask_infos.get(name)
        if mask_info is None:
            return linear(x)
        return self._replace(name, x, mask_info, None)

    # ----------------------------------------------------------------------------- CI
    def calc_causal_importances(
        self, pre_weight_acts: dict[str, Tensor], sampling: str, noise: Noise
    ) -> CIOutputs:
        """Run every CI function and both sigmoids.

        Args:
            pre_weight_acts: module path -> module input (from a caching forward).
            sampling: `binomial` perturbs the lower pre-activation with `0.05 * U[0, 1]`.
            noise: where the binomial perturbation is drawn from.
        """
        lower, upper, pre = {}, {}, {}
        for path in self.paths:
            x = pre_weight_acts[path]
            ci_in = self.component(path).get_component_acts(x) if self.ci_fn_type == "mlp" else x
            pre_sigmoid = self.ci_fns[_key(path)](ci_in)
            if sampling == "binomial":
                pre_lo = 1.05 * pre_sigmoid - 0.05 * noise.rand(tuple(pre_sigmoid.shape))
            else:
                pre_lo = pre_sigmoid
            lo, up = self._lower(pre_lo), self._upper(pre_sigmoid)
            if not self.flags.lazy_logging:
                # Upstream's range checks: each one copies a bool to the host (a sync).
                assert (lo <= 1.0).all()
                assert (up >= 0.0).all()
            lower[path], upper[path], pre[path] = lo, up, pre_sigmoid
        return CIOutputs(lower, upper, pre)

    def component_parameters(self) -> list[nn.Parameter]:
        """V and U of every module, in path order."""
        return [p for path in self.paths for p in (self.component(path).V, self.component(path).U)]

    def ci_parameters(self) -> list[nn.Parameter]:
        """All CI-function parameters."""
        return list(self.ci_fns.parameters())


def _is_conv1d(module: nn.Module) -> bool:
    """An HF `transformers.pytorch_utils.Conv1D` (`x @ W + b` with `W` of shape `(d_in, d_out)`),
    recognised by name and fields so that this module never imports transformers."""
    return type(module).__name__ == "Conv1D" and hasattr(module, "nf") and hasattr(module, "weight")


def _weight_of(module: nn.Module) -> Tensor:
    """The `(d_out, d_in)` weight of a Linear or a Conv1D."""
    return module.weight.T if _is_conv1d(module) else module.weight


def _hook_mode(flags: Flags, target: nn.Module) -> str:
    """`flags.hook_mode`, except that `explicit` needs a target whose `forward` takes `sub`
    (the toys); an arbitrary model (a transformers LM) cannot have its forward rewritten, so
    there `explicit_forward` falls back to persistent hooks (registered once; the replaced
    module still runs, as under hooks)."""
    mode = flags.hook_mode
    if mode == "explicit" and "sub" not in inspect.signature(target.forward).parameters:
        return "persistent"
    return mode


def tie_components(model: ComponentModel, pairs: tuple[tuple[str, str], ...]) -> None:
    """Make each `tgt`'s components the transposes of `src`'s, sharing storage (as upstream).

    For a target whose `tgt` weight is `src`'s transposed (TMS: `linear2.W = linear1.W^T`),
    component `c` of `tgt` must be component `c` of `src` transposed: `V_tgt = U_src^T` and
    `U_tgt = V_src^T`, so `(V_tgt @ U_tgt)^T = V_src @ U_src`. Tying only `U_tgt` (as this
    package once did) leaves `V_tgt` free and the two matrices' components unrelated.

    Each tied Parameter keeps its own gradient and AdamW state, and both updates land on the
    shared storage every step: upstream's behaviour, kept so the baseline stays faithful. On
    the CPU the optimizer applies them one tensor after the other (deterministic); on CUDA a
    foreach or fused AdamW kernel may update both aliases of an element at once, so runs with
    tied components need not repeat bitwise there (upstream: "Tying weights will make your
    training nondeterministic"). Pairs naming a module that is not decomposed are skipped.
    """
    for src, tgt in pairs:
        if src in model.paths and tgt in model.paths:
            s, t = model.component(src), model.component(tgt)
            t.U.data = s.V.data.T
            t.V.data = s.U.data.T
