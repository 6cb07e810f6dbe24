"""Evaluating a decomposition: which components are alive, which features they answer to,
and how well each matches the part of the target weight that belongs to its feature.

This is the measure of the paper's toy results (TMS, ResidMLP): on one-hot inputs (one
feature active at `input_magnitude`, upstream's 0.75), a component is *live* when its causal
importance (`ci_lower`) exceeds `threshold` (upstream's `ci_alive_threshold`, 0.1) for some
feature, and it *responds to* the features for which it does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from ._component_model import CIOutputs, ComponentModel
from ._masks import LiveNoise


@dataclass
class ModuleDecomposition:
    """One decomposed module's components on one-hot inputs.

    Attributes:
        ci: `(n_features, C)` causal importances (`ci_lower`), row `i` for feature `i` alone.
        live: indices of the components whose importance exceeds the threshold somewhere.
        features: live component -> the features it responds to (importance > threshold).
        feature_map: live component -> the feature it responds to most strongly (largest
            pre-sigmoid importance).
        cosines: live component -> cosine between its rank-one weight and the target
            weight's slice for its `feature_map` feature (`None` where the module has no
            feature axis; see `evaluate_decomposition`).
    """

    ci: Float[Tensor, "n_features C"]
    live: list[int]
    features: dict[int, tuple[int, ...]]
    feature_map: dict[int, int]
    cosines: dict[int, float | None]

    @property
    def n_live(self) -> int:
        """Number of live components."""
        return len(self.live)

    def one_feature_each(self) -> bool:
        """Every live component responds to exactly one feature, and no two to the same one."""
        single = [f[0] for f in self.features.values() if len(f) == 1]
        return len(single) == len(self.features) and len(set(single)) == len(single)

    def covers_features_once(self, n_features: int) -> bool:
        """The live components' `feature_map` is a bijection onto the `n_features` features."""
        return sorted(self.feature_map.values()) == list(range(n_features))

    def summary(self) -> str:
        """One line: live count, then `component->feature cosine` per live component."""
        parts = []
        for c in self.live:
            cos = self.cosines[c]
            fires = ", ".join(str(f) for f in self.features[c])
            extra = "" if len(self.features[c]) == 1 else f" (fires on {fires})"
            parts.append(f"{c}->{self.feature_map[c]}" + ("" if cos is None else f" {cos:.4f}"))
            parts[-1] += extra
        return f"{self.n_live} live: " + ", ".join(parts)

    def min_cosine(self) -> float | None:
        """Smallest cosine over the live components that have one (`None` if none has)."""
        values = [c for c in self.cosines.values() if c is not None]
        return min(values) if values else None


@torch.no_grad()
def _one_hot_ci(
    model: ComponentModel, n_features: int, input_magnitude: float, sampling: str
) -> CIOutputs:
    device = next(model.parameters()).device
    batch = torch.eye(n_features, device=device) * input_magnitude
    _, cache = model(batch, cache_type="input")
    return model.calc_causal_importances(cache, sampling, LiveNoise(device))


def _feature_slice(weight: Tensor, feature: int, axis: str) -> Tensor:
    """The part of `weight (d_out, d_in)` that reads (`in`) or writes (`out`) `feature`."""
    out = torch.zeros_like(weight)
    if axis == "in":
        out[:, feature] = weight[:, feature]
    else:
        out[feature, :] = weight[feature, :]
    return out


def _default_axis(weight: Tensor, n_features: int) -> str | None:
    d_out, d_in = weight.shape
    if d_in == n_features:
        return "in"
    if d_out == n_features:
        return "out"
    return None


def evaluate_decomposition(
    model: ComponentModel,
    n_features: int,
    *,
    threshold: float = 0.1,
    input_magnitude: float = 0.75,
    feature_axes: Mapping[str, str | None] | None = None,
    sampling: str = "continuous",
) -> dict[str, ModuleDecomposition]:
    """Live components, the features they respond to, and their cosines to the target.

    A live component's feature is the one it responds to most strongly (a module downstream
    of superposed features, like TMS `linear2`, also sees other features' interference: its
    input for feature `i` overlaps the directions of `i`'s neighbours, so some importance
    there is expected). The cosine of a live component `c` with feature `i` compares its
    rank-one weight `(V[:, c] ⊗ U[c, :])^T` (flattened) with the target weight's slice for `i`: column
    `i` where the module reads the features (`"in"`, TMS `linear1`: feature `i`'s embedding),
    row `i` where it writes them (`"out"`, TMS `linear2`). By default a module whose input
    width is `n_features` reads them and one whose output width is writes them; others
    (ResidMLP's MLP Linears) get no cosine.

    Args:
        model: a trained `ComponentModel` (whose target takes `n_features`-wide inputs).
        n_features: number of input features of the target.
        threshold: causal importance above which a component counts as firing.
        input_magnitude: value of the active feature in each one-hot input.
        feature_axes: module path -> `"in"`, `"out"` or `None`, overriding the default.
        sampling: the config's `sampling` (`binomial` perturbs the lower CI randomly).

    Returns:
        Module path -> `ModuleDecomposition`.

    Example:
        >>> from trainfast.spd import evaluate_decomposition, make_trainer
        >>> t = make_trainer("tms_5-2", overrides={"batch_size": 8})
        >>> sorted(evaluate_decomposition(t.model, 5))
        ['linear1', 'linear2']
    """
    outputs = _one_hot_ci(model, n_features, input_magnitude, sampling)
    result = {}
    for path in model.paths:
        ci = outputs.lower[path].detach().float().cpu()
        pre = outputs.pre_sigmoid[path].detach().float().cpu()
        comp = model.component(path)
        target = model.target_weight(path).detach().float().cpu()
        V, U = comp.V.detach().float().cpu(), comp.U.detach().float().cpu()
        axis = (feature_axes or {}).get(path, _default_axis(target, n_features))
        firing = ci > threshold
        live = [c for c in range(ci.shape[1]) if bool(firing[:, c].any())]
        features = {c: tuple(int(i) for i in firing[:, c].nonzero().flatten()) for c in live}
        # The pre-sigmoid value ranks features where the clamped importance saturates at 1.
        feature_map = {c: int(pre[:, c].argmax()) for c in live}
        cosines: dict[int, float | None] = {}
        for c in live:
            if axis is None:
                cosines[c] = None
                continue
            rank_one = torch.outer(U[c], V[:, c])  # (d_out, d_in), as the target weight
            ref = _feature_slice(target, feature_map[c], axis)
            cos = torch.nn.functional.cosine_similarity(rank_one.flatten(), ref.flatten(), dim=0)
            cosines[c] = float(cos)
        result[path] = ModuleDecomposition(ci, live, features, feature_map, cosines)
    return result
