"""Trained toy targets: upstream's training recipes, and saving, loading and caching the results.

SPD needs a target that has learned something for its decompositions to mean anything; the
perf workloads use random targets because only shapes matter for timing. The recipes are those
of upstream's `train_tms.py` and `train_resid_mlp.py` (`goodfire-ai/spd`):

- TMS: tied weights (`linear2.W` shares `linear1.W^T`'s storage), loss
  `mean((x - relu(W^T W x + b))^2)` on the workload's data (features active with probability
  0.05, values `U[0, 1]`), AdamW (torch's default weight decay 0.01), constant lr 5e-3,
  10k steps; batch 1024 for 5-2, 8192 and a zero-initialised bias for 40-10.
- ResidMLP: `W_E` fixed (random, unit-norm rows; `W_U = W_E^T`), MLP Linears without biases
  trained on labels `x + relu(x)` (features active with probability 0.01, values `U[-1, 1]`),
  loss `mean((out - labels)^2)`, AdamW weight decay 0.01, lr 3e-3 cosine to 0, batch 2048;
  1000 steps for 1 and 2 layers, 10k for 3.

A trained target is saved as `torch.save(model.state_dict())`. `trained_target` looks for one
shipped with the package (`targets/`), then in a cache directory, and trains (and caches) it
otherwise.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._targets import ResidMLPModel, SparseFeatureData, TMSModel
from ._workloads import Workload, get_workload


SHIPPED_DIR = Path(__file__).parent / "targets"
"""Trained targets that ship with the package (reproduce with `python -m trainfast.spd
--workload NAME --train-target PATH`)."""

CACHE_ENV = "TRAINFAST_SPD_CACHE"
"""Environment variable naming the cache directory (default `~/.cache/trainfast/spd`)."""


@dataclass(frozen=True)
class TargetRecipe:
    """How upstream trains one toy target.

    Attributes:
        steps: optimizer steps.
        batch_size: examples per step.
        lr: peak learning rate.
        lr_schedule: `constant` or `cosine` (decaying to 0 at the last step).
        weight_decay: AdamW weight decay.
        zero_bias: zero the TMS output bias before training (TMS 40-10).
        seed: the default seed of `trained_target`. TMS training often leaves features
            unrepresented (upstream: "Training TMS is very finnicky"; its shipped targets are
            picked runs): for TMS 5-2 it is 7, the first seed from 0 whose target (trained on
            the CPU) represents all 5 features as a pentagon.
    """

    steps: int
    batch_size: int
    lr: float
    lr_schedule: str = "constant"
    weight_decay: float = 0.01
    zero_bias: bool = False
    seed: int = 0


RECIPES: dict[str, TargetRecipe] = {
    "tms_5-2": TargetRecipe(steps=10_000, batch_size=1024, lr=5e-3, seed=7),
    "tms_40-10": TargetRecipe(steps=10_000, batch_size=8192, lr=5e-3, zero_bias=True),
    "resid_mlp1": TargetRecipe(steps=1_000, batch_size=2048, lr=3e-3, lr_schedule="cosine"),
    "resid_mlp2": TargetRecipe(steps=1_000, batch_size=2048, lr=3e-3, lr_schedule="cosine"),
    "resid_mlp3": TargetRecipe(steps=10_000, batch_size=2048, lr=3e-3, lr_schedule="cosine"),
}
"""Workload name -> upstream's recipe for its target."""


@dataclass
class TrainedTarget:
    """What `train_target` produced.

    Attributes:
        model: the trained target, on the training device, weights untied into plain tensors.
        losses: `(step, loss)` every `log_every` steps and at the last step.
        final_loss: mean loss over 10 fresh batches after training.
    """

    model: nn.Module
    losses: list[tuple[int, float]] = field(default_factory=list)
    final_loss: float = float("nan")


def _workload(workload: str | Workload) -> Workload:
    return get_workload(workload) if isinstance(workload, str) else workload


def recipe_for(workload: str | Workload) -> TargetRecipe:
    """Upstream's recipe for `workload`'s target; a custom workload uses its kind's recipe.

    Raises:
        ValueError: the workload's target is neither a TMS nor a ResidMLP.
    """
    wl = _workload(workload)
    if wl.name in RECIPES:
        return RECIPES[wl.name]
    if wl.name.startswith("tms"):
        return RECIPES["tms_5-2"]
    if wl.name.startswith("resid"):
        return RECIPES["resid_mlp1"]
    raise ValueError(f"no training recipe for workload {wl.name!r}; known: {', '.join(RECIPES)}")


def _labels_and_loss(model: nn.Module, batch: Tensor) -> Tensor:
    out = model(batch)
    if isinstance(model, TMSModel):
        labels = batch  # upstream writes `labels.abs()`; TMS values are already >= 0
    else:
        labels = F.relu(batch) + batch  # label coefficients all 1 (`use_trivial_label_coeffs`)
    return ((out - labels) ** 2).mean()


def train_target(
    workload: str | Workload,
    *,
    seed: int = 0,
    device: str | torch.device = "cpu",
    recipe: TargetRecipe | None = None,
    log_every: int = 100,
) -> TrainedTarget:
    """Train `workload`'s target with upstream's recipe (or `recipe`).

    The global RNG is seeded with `seed` for the initialisation inside `fork_rng`, so the
    caller's RNG state is untouched; data comes from its own generator (`seed + 1`).

    Args:
        workload: a workload name or `Workload` whose `make_target` builds a TMS or ResidMLP.
        seed: initialisation and data seed.
        device: where to train.
        recipe: overrides `recipe_for(workload)` (e.g. fewer steps in tests).
        log_every: loss logging cadence (each log is one host sync).

    Returns:
        A `TrainedTarget`.

    Example:
        >>> from trainfast.spd import TargetRecipe, train_target
        >>> t = train_target("tms_5-2", recipe=TargetRecipe(steps=5, batch_size=64, lr=5e-3))
        >>> [step for step, _ in t.losses]
        [0, 4]
    """
    wl = _workload(workload)
    recipe = recipe or recipe_for(wl)
    device = torch.device(device)
    fork = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=fork):
        torch.manual_seed(seed)
        model = wl.make_target().to(device)
    params = _prepare(model, recipe)
    data = SparseFeatureData(
        wl.n_features, recipe.batch_size, wl.feature_probability, wl.value_range, seed + 1, device
    )
    opt = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    result = TrainedTarget(model)
    for step in range(recipe.steps):
        for group in opt.param_groups:
            group["lr"] = _lr(recipe, step)
        opt.zero_grad(set_to_none=True)
        loss = _labels_and_loss(model, data.next())
        loss.backward()
        opt.step()
        if step % log_every == 0 or step == recipe.steps - 1:
            result.losses.append((step, loss.item()))
    _finish(model)
    with torch.no_grad():
        result.final_loss = sum(_labels_and_loss(model, data.next()).item() for _ in range(10)) / 10
    return result


def _lr(recipe: TargetRecipe, step: int) -> float:
    # Upstream's cosine reaches its floor (0) at the last step.
    if recipe.lr_schedule == "constant" or recipe.steps <= 1:
        return recipe.lr
    progress = step / (recipe.steps - 1)
    return recipe.lr * 0.5 * (1 + math.cos(math.pi * progress))


def _prepare(model: nn.Module, recipe: TargetRecipe) -> list[nn.Parameter]:
    """Set the model up as upstream's recipe does; returns the parameters to train."""
    if isinstance(model, TMSModel):
        if recipe.zero_bias:
            with torch.no_grad():
                model.linear2.bias.zero_()
        # Upstream ties by shared storage and trains all three Parameters: the shared weight
        # gets two AdamW updates per step (one from each use). Kept, as the recipe's fact.
        model.linear2.weight.data = model.linear1.weight.data.T
        return list(model.parameters())
    if isinstance(model, ResidMLPModel):
        model.W_E.requires_grad_(False)  # fixed random embedding, as upstream
        model.W_U.requires_grad_(False)
        return [p for p in model.parameters() if p.requires_grad]
    raise ValueError(f"cannot train a {type(model).__name__}: no recipe (TMS, ResidMLP only)")


def _finish(model: nn.Module) -> None:
    """Untie the trained weights into plain tensors and hand the model back frozen-ready."""
    if isinstance(model, TMSModel):
        model.linear2.weight.data = model.linear1.weight.data.T.contiguous()
    if isinstance(model, ResidMLPModel):
        model.W_E.requires_grad_(True)
        model.W_U.requires_grad_(True)


def save_target(model: nn.Module, path: str | Path) -> Path:
    """`torch.save` the target's state dict (CPU tensors) to `path`; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().cpu().clone() for k, v in model.state_dict().items()}, path)
    return path


def load_target(workload: str | Workload, path: str | Path) -> nn.Module:
    """Build `workload`'s target architecture and load the state dict saved at `path`.

    Building draws the random initialisation from the global RNG, exactly as the random
    target does, so a trained and a random target leave the same RNG state behind (the
    components, initialised next, come out the same for the same seed).
    """
    model = _workload(workload).make_target()
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model


def cache_dir() -> Path:
    """The cache directory: `$TRAINFAST_SPD_CACHE`, or `~/.cache/trainfast/spd`."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "trainfast" / "spd"


def target_filename(name: str, seed: int) -> str:
    """File name of the trained target of workload `name` and `seed`."""
    return f"{name}_seed{seed}.pth"


def trained_target(
    workload: str | Workload,
    seed: int | None = None,
    *,
    cache: str | Path | None = None,
    device: str | torch.device = "cpu",
) -> nn.Module:
    """`workload`'s target trained with upstream's recipe: shipped, cached, or trained now.

    Looks in `SHIPPED_DIR`, then in `cache` (default `cache_dir()`); otherwise trains on
    `device` with `train_target` and saves the result in the cache. Returns the model on the
    CPU. `seed=None` is the recipe's `seed`.
    """
    wl = _workload(workload)
    seed = recipe_for(wl).seed if seed is None else seed
    name = target_filename(wl.name, seed)
    directory = Path(cache) if cache is not None else cache_dir()
    for path in (SHIPPED_DIR / name, directory / name):
        if path.exists():
            return load_target(wl, path)
    trained = train_target(wl, seed=seed, device=device)
    save_target(trained.model, directory / name)
    return load_target(wl, directory / name)
