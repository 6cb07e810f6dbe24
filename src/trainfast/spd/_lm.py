"""Language-model workloads (seed 004's subject): SPD on a GPT-2 built with HF `transformers`.

What differs from the toys, and is the point of these workloads:

- the target is an arbitrary library model (`GPT2LMHeadModel` from a `GPT2Config`: random
  weights, nothing downloaded) whose forward cannot be rewritten, so its `Conv1D` modules
  (`attn.c_attn`, `attn.c_proj`, `mlp.c_fc`, `mlp.c_proj`) are decomposed through forward hooks
  (`ComponentModel` reads a Conv1D's `(d_in, d_out)` weight as `W.T`, as upstream does);
- the batches are int64 token ids made on the CPU by a `torch.utils.data` pipeline
  (`TokenSequences` + `DataLoader`) and copied to the device every step, as upstream's LM
  runs do, so the data flags have real work: `data_workers` (worker processes),
  `pin_memory` (page-locked batches), `non_blocking` (asynchronous copies) and `prefetch`
  (the next batch staged one step ahead on a side stream);
- the loss is upstream's LM recipe: KL to the target's logits, importance minimality with
  p annealed 2 -> 0.3, the uniform-k subset stochastic reconstruction, the subset PGD
  reconstruction (1 step of size 1, one source shared across the batch), faithfulness;
- bf16 autocast pays (GEMM-bound, unlike the launch-bound toys), so `fastest_flags` has it.

Flags that do not apply here, and why:

- `explicit_forward` needs a target whose `forward` takes a `sub` callback (the toys); an
  HF model's forward cannot be rewritten, so `ComponentModel` falls back to persistent hooks
  (the row measures persistent hooks again);
- `fused_ci_fn` acts on the `mlp` CI function (per-component scalar MLPs); upstream's LM
  configs use `shared_mlp` (one ordinary MLP, already plain GEMMs): a no-op here;
- `fused_unmasked` acts on component forwards without mask and delta, which only the
  `unmasked_recon` term runs; these configs do not have it: a no-op here.

Upstream's LM configs give each module its own C (`module_info`); this package has one C per
run, so the realistic workload takes ss_gpt2_simple's 1200 for every module.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from ._config import SPDConfig
from ._flags import Flags
from ._targets import Prefetcher


_INSTALL_HINT = "pip install 'perfsuite[lm]' (transformers>=4.46)"


def _transformers() -> Any:
    """Import `transformers` lazily: `trainfast.spd` imports without it; LM workloads need it."""
    try:
        import transformers
    except ImportError as e:
        raise ImportError(f"the LM workloads need HF transformers: {_INSTALL_HINT}") from e
    return transformers


@dataclass(frozen=True)
class GPT2Shape:
    """The GPT-2 hyper-parameters that set the cost of a step.

    Attributes:
        n_layer, n_head, n_embd: transformer depth, heads and width (MLP width is 4x).
        vocab_size: tokens (the logits' width, which the KL loss reads).
        seq_len: tokens per sequence (also the model's `n_positions`).
    """

    n_layer: int
    n_head: int
    n_embd: int
    vocab_size: int
    seq_len: int

    def module_paths(self) -> tuple[str, ...]:
        """Every Conv1D of every block, in forward order (upstream's `h.*.attn/mlp.*`)."""
        per_block = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")
        return tuple(f"transformer.h.{i}.{m}" for i in range(self.n_layer) for m in per_block)


class LMTarget(nn.Module):
    """`GPT2LMHeadModel` built from a config, returning its logits (upstream's
    `pretrained_model_output_attr: logits`).

    The HF model's `transformer` and `lm_head` are this module's children, so module paths read
    as upstream's (`transformer.h.0.mlp.c_fc`) and forward hooks on them work as on any model.
    Dropout is off (a target is evaluated, never trained, here) and the model is in eval mode.
    Weights are HF's random initialisation from the global RNG (seeded by the `Trainer`).

    Raises:
        ImportError: transformers is not installed (names the extra to install).
    """

    def __init__(self, shape: GPT2Shape):
        super().__init__()
        tf = _transformers()
        config = tf.GPT2Config(
            vocab_size=shape.vocab_size,
            n_positions=shape.seq_len,
            n_embd=shape.n_embd,
            n_layer=shape.n_layer,
            n_head=shape.n_head,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            # GPT-2's 50256 lies outside small vocabularies (transformers warns): the last id.
            bos_token_id=shape.vocab_size - 1,
            eos_token_id=shape.vocab_size - 1,
        )
        hf = tf.GPT2LMHeadModel(config)
        self.transformer = hf.transformer
        self.lm_head = hf.lm_head  # tied to transformer.wte, as in GPT-2
        self.config = config
        self.eval()

    def forward(self, input_ids: Tensor) -> Tensor:
        hidden = self.transformer(input_ids=input_ids, use_cache=False)[0]
        return self.lm_head(hidden)


class TokenSequences(Dataset):
    """Synthetic token sequences: item `i` is `(seq_len,)` int64 ids, a function of `(seed, i)`.

    Tokens follow a Zipf law over the vocabulary (rank r has weight `r^-exponent`, the shape
    of natural-language unigram counts), drawn with a generator seeded from `(seed, i)`: any
    worker makes the same item, so workers and prefetching cannot change the batches. The
    drawing is the CPU work that tokenisation does in upstream's pipeline.

    Args:
        vocab_size: ids are in `[0, vocab_size)`.
        seq_len: tokens per item.
        seed: the stream's seed.
        exponent: the Zipf exponent (> 0).
    """

    def __init__(self, vocab_size: int, seq_len: int, seed: int, exponent: float = 1.1):
        if vocab_size < 2 or seq_len < 1:
            raise ValueError(
                f"need vocab_size >= 2 and seq_len >= 1, got vocab_size={vocab_size}, "
                f"seq_len={seq_len}"
            )
        if not exponent > 0:
            raise ValueError(f"exponent must be > 0, got {exponent}")
        self.vocab_size, self.seq_len, self.seed = vocab_size, seq_len, seed
        ranks = torch.arange(1, vocab_size + 1, dtype=torch.float64)
        self.weights = ranks.pow(-exponent)

    def __len__(self) -> int:
        return 2**40  # an endless stream, read in order

    def __getitem__(self, index: int) -> Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + int(index))
        return torch.multinomial(self.weights, self.seq_len, replacement=True, generator=g)


class HostBatches:
    """Batches from a CPU `DataLoader`, copied to `device`, as the data flags say.

    Baseline (upstream): `next(loader).to(device)`, a blocking copy. `non_blocking` copies with
    `non_blocking=True`; `prefetch` stages batch `k + 1` while step `k` runs (`Prefetcher`: on
    CUDA a side stream, pinned memory and a non-blocking copy). The values never change.
    """

    def __init__(self, loader: DataLoader, device: torch.device, flags: Flags):
        self.device, self.non_blocking = device, flags.non_blocking
        self._it = iter(loader)  # starts the workers, if any
        self._staged = Prefetcher(self._it, device) if flags.prefetch else None

    def __iter__(self) -> Iterator[Tensor]:
        return self

    def __next__(self) -> Tensor:
        if self._staged is not None:
            return next(self._staged)
        return next(self._it).to(self.device, non_blocking=self.non_blocking)

    def close(self) -> None:
        """Stop the loader's worker processes (no-op without workers)."""
        shutdown = getattr(self._it, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()


class EvalTokens:
    """The eval stream: `next()` is the next batch on `device` (blocking, no workers)."""

    def __init__(self, loader: DataLoader, device: torch.device):
        self._loader, self.device = loader, device
        self._it: Iterator[Tensor] | None = None

    def next(self) -> Tensor:
        if self._it is None:  # lazily: a run without evaluation never draws a batch
            self._it = iter(self._loader)
        return next(self._it).to(self.device)


def _worker_context() -> Any:
    """Where DataLoader workers come from: a fork server that has imported this module.

    Not a plain fork: that copies the trainer's threads' locks (OpenMP, the CUDA runtime) in
    whatever state they are, and Python 3.12+ warns about it. Not spawn: every worker would
    import torch again (7 s per trainer on the loaded 2-core runner). The fork server imports
    torch and this module once per process; each worker is then a fork of that
    single-threaded server (milliseconds). Spawn where there is no fork server (not POSIX).
    """
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([__name__])  # read when the server starts (once)
    return ctx


@dataclass(frozen=True)
class LMWorkload:
    """A GPT-2 target, a token pipeline and the SPD config of upstream's LM runs.

    Used like a toy `Workload` by `Trainer`/`make_trainer`/`run` (`make_target`, `config`,
    `make_data`), plus `train_batches`, through which the data flags act.

    Attributes:
        name: the workload's name.
        shape: the GPT-2 shapes.
        config: the SPD settings (`output_loss_type="kl"`).
        num_workers: DataLoader workers under `data_workers`.
        target: the target, in words (random: timing needs only the shapes).
    """

    name: str
    shape: GPT2Shape
    config: SPDConfig
    num_workers: int = 4
    target: str = "random"

    def make_target(self) -> nn.Module:
        return LMTarget(self.shape)

    def loader(self, batch_size: int, seed: int, device: torch.device, flags: Flags) -> DataLoader:
        """The `DataLoader` the flags ask for (upstream: no workers, no pinned memory)."""
        data = TokenSequences(self.shape.vocab_size, self.shape.seq_len, seed)
        kw: dict[str, Any] = {"batch_size": batch_size, "shuffle": False}
        if flags.data_workers and self.num_workers > 0:
            kw.update(
                num_workers=self.num_workers,
                persistent_workers=True,
                prefetch_factor=2,
                multiprocessing_context=_worker_context(),
            )
        if flags.pin_memory and device.type == "cuda":
            kw["pin_memory"] = True  # without CUDA there is nothing to pin (torch warns)
        return DataLoader(data, **kw)

    def train_batches(
        self, batch_size: int, seed: int, device: torch.device, flags: Flags
    ) -> HostBatches:
        """The training stream, on `device`, through the data flags."""
        return HostBatches(self.loader(batch_size, seed, device, flags), device, flags)

    def make_data(self, batch_size: int, seed: int, device: str | torch.device) -> EvalTokens:
        """A stream of batches on `device` (the eval data), with upstream's loader."""
        device = torch.device(device)
        return EvalTokens(self.loader(batch_size, seed, device, Flags()), device)

    def trained(self, seed: int | None = None, **kwargs: Any) -> LMWorkload:
        """Not available: the LM workloads have random targets only (timing needs shapes), so
        `decompose` and `evaluate_decomposition` (one-hot features) are for the toys.

        Raises:
            ValueError: always, naming the workload.
        """
        raise ValueError(
            f"workload {self.name!r} has only a random target: decompose/evaluate_decomposition "
            "measure toy targets (one feature per input); an LM has no trained target here"
        )

    def fastest_flags(self, device: str) -> Flags:
        """All flags that pay on `device` for an LM: `Flags.fastest` plus bf16 autocast."""
        return Flags.fastest(device, bf16=True)


def lm_workload(name: str, shape: GPT2Shape, *, num_workers: int = 4, **config: Any) -> LMWorkload:
    """An LM workload; `config` overrides the shared settings (upstream's LM recipe).

    The settings are `ss_llama_simple_mlp-1L.yaml`'s (upstream HEAD `3f0bb61e`): importance
    minimality 2e-3 (p 2 -> 0.3 over the run, beta 0.1), stochastic subset recon 0.5, subset
    PGD recon 0.5 (1 step of size 1.0, shared across the batch, random init), faithfulness
    1e6, lr 2e-4 cosine to 10%, warm-up lr 1e-3 without weight decay, `shared_mlp` CI
    functions, KL output loss, `ci_alive_threshold` 0.0.
    """
    base = SPDConfig(
        C=config.pop("C", 1200),
        target_module_paths=shape.module_paths(),
        ci_fn_type="shared_mlp",
        ci_fn_hidden=(1000,),
        loss_coeffs={
            "importance_minimality": 2e-3,
            "stochastic_recon_subset": 0.5,
            "pgd_recon_subset": 0.5,
            "faithfulness": 1e6,
        },
        output_loss_type="kl",
        pnorm=2.0,
        p_anneal_start_frac=0.0,
        p_anneal_final_p=0.3,
        p_anneal_end_frac=1.0,
        importance_minimality_beta=0.1,
        pgd_n_steps=1,
        pgd_step_size=1.0,
        pgd_init="random",
        pgd_mask_scope="shared_across_batch",
        batch_size=64,
        lr=2e-4,
        lr_schedule="cosine",
        lr_final_frac=0.1,
        faithfulness_warmup_steps=200,
        faithfulness_warmup_lr=1e-3,
        faithfulness_warmup_weight_decay=0.0,
        train_log_freq=200,
        eval_freq=1000,
        n_eval_steps=5,
        ci_alive_threshold=0.0,
    )
    return LMWorkload(name, shape, base.replace(config), num_workers=num_workers)


LM_WORKLOADS: dict[str, LMWorkload] = {
    w.name: w
    for w in (
        # upstream's `gpt2_simple-1.25M` target shapes (block 512, vocab 4019, 4 layers, 4
        # heads, width 128) as an HF GPT-2, all 16 Conv1Ds decomposed, batch 64 x 512 tokens
        # (ss_llama_simple_mlp-1L's batch; ss_gpt2_simple's 256 would need ~4x the memory).
        lm_workload("gpt2_simple", GPT2Shape(4, 4, 128, 4019, 512)),
        # The CPU tests' version: same structure, seconds per run on a 2-core machine.
        lm_workload(
            "gpt2_tiny",
            GPT2Shape(2, 2, 32, 256, 32),
            C=16,
            ci_fn_hidden=(32,),
            batch_size=4,
            num_workers=1,
        ),
    )
}
"""LM workload name -> definition (looked up by `get_workload` too)."""
