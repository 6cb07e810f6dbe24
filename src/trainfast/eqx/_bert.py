"""A BERT encoder with a masked-language-modelling head, and synthetic MLM batches."""

import dataclasses
import math
from collections.abc import Iterator
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jax import lax
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray


@dataclasses.dataclass(frozen=True)
class BertConfig:
    """Shape and behaviour of a [`BertMLM`][].

    Args:
        num_layers: number of encoder layers (BERT-base: 12).
        hidden: model width (BERT-base: 768).
        heads: attention heads; must divide `hidden`.
        intermediate: width of the feed-forward layer (BERT-base: 3072).
        vocab_size: vocabulary size, including the special tokens.
        max_position: longest sequence the position embedding supports.
        dropout: dropout rate for embeddings, attention probabilities and residual branches.
        attention: `"eager"` (explicit softmax, with attention-probability dropout) or
            `"fused"` (`jax.nn.dot_product_attention`, which has no attention-probability
            dropout; the residual dropouts still apply).
        layer_norm_eps: epsilon of every LayerNorm.
        mask_token_id: id of `[MASK]` (HF BERT uses 103); ids below `num_special_tokens` are
            never drawn as random tokens.
        num_special_tokens: how many low ids are reserved for special tokens.
        scan_layers: compute the encoder with `jax.lax.scan` over the layers' stacked
            arrays instead of unrolling it. The model's pytree (one module per layer) is the
            same either way; scanning only shrinks the compiled program, which keeps XLA:CPU
            compile times of deep models in seconds (the tests use it; GPUs unroll).
    """

    num_layers: int = 12
    hidden: int = 768
    heads: int = 12
    intermediate: int = 3072
    vocab_size: int = 30522
    max_position: int = 512
    dropout: float = 0.1
    attention: Literal["eager", "fused"] = "eager"
    layer_norm_eps: float = 1e-12
    mask_token_id: int = 103
    num_special_tokens: int = 104
    scan_layers: bool = False

    def __post_init__(self):
        if self.hidden % self.heads != 0:
            raise ValueError(
                f"`hidden` must be divisible by `heads`, got hidden={self.hidden}, "
                f"heads={self.heads}."
            )
        if self.attention not in ("eager", "fused"):
            raise ValueError(f"`attention` must be 'eager' or 'fused', got {self.attention!r}.")
        if not self.mask_token_id < self.num_special_tokens < self.vocab_size:
            raise ValueError(
                "Expected mask_token_id < num_special_tokens < vocab_size, got "
                f"{self.mask_token_id}, {self.num_special_tokens}, {self.vocab_size}."
            )

    @classmethod
    def tiny(cls, num_layers: int = 12, **overrides) -> "BertConfig":
        """A BERT with the real layer count but tiny widths (CPU tests and perf tests).

        Tree structure, not width, sets transform and dispatch cost, so this keeps the
        pytree of BERT-`num_layers` while the arithmetic is negligible.
        """
        defaults = dict(
            hidden=32,
            heads=4,
            intermediate=64,
            vocab_size=128,
            max_position=64,
            mask_token_id=3,
            num_special_tokens=4,
            scan_layers=True,
        )
        defaults.update(overrides)
        return cls(num_layers=num_layers, **defaults)


def _dense(layer, x: Float[Array, "... d_in"]) -> Float[Array, "... d_out"]:
    # Works for `eqx.nn.Linear` and `ParallelLinear` alike (both store `weight` as
    # (out, in)); written out rather than vmapped so any leading shape is accepted.
    y = x @ layer.weight.T
    if layer.bias is not None:
        y = y + layer.bias
    return y


def _layer_norm(ln: eqx.nn.LayerNorm, x: Float[Array, "... d"], eps: float):
    mean = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.var(x, axis=-1, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + eps) * ln.weight + ln.bias


def _dropout(x: Array, rate: float, key: PRNGKeyArray | None) -> Array:
    if key is None or rate == 0.0:
        return x
    keep = jr.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), 0.0)


def _split(key: PRNGKeyArray | None, n: int) -> list:
    return [None] * n if key is None else list(jr.split(key, n))


class Embeddings(eqx.Module):
    """Word and position embeddings, then LayerNorm (no token types: MLM only)."""

    word: eqx.nn.Embedding
    position: eqx.nn.Embedding
    layer_norm: eqx.nn.LayerNorm

    def __init__(self, config: BertConfig, *, key: PRNGKeyArray):
        kw, kp = jr.split(key)
        self.word = eqx.nn.Embedding(config.vocab_size, config.hidden, key=kw)
        self.position = eqx.nn.Embedding(config.max_position, config.hidden, key=kp)
        self.layer_norm = eqx.nn.LayerNorm(config.hidden)


class Attention(eqx.Module):
    """Self-attention: `query`/`key`/`value` projections, `output` projection, LayerNorm."""

    query: eqx.nn.Linear
    key: eqx.nn.Linear
    value: eqx.nn.Linear
    output: eqx.nn.Linear
    layer_norm: eqx.nn.LayerNorm

    def __init__(self, config: BertConfig, *, key: PRNGKeyArray):
        kq, kk, kv, ko = jr.split(key, 4)
        h = config.hidden
        self.query = eqx.nn.Linear(h, h, key=kq)
        self.key = eqx.nn.Linear(h, h, key=kk)
        self.value = eqx.nn.Linear(h, h, key=kv)
        self.output = eqx.nn.Linear(h, h, key=ko)
        self.layer_norm = eqx.nn.LayerNorm(h)


class Intermediate(eqx.Module):
    dense: eqx.nn.Linear

    def __init__(self, config: BertConfig, *, key: PRNGKeyArray):
        self.dense = eqx.nn.Linear(config.hidden, config.intermediate, key=key)


class Output(eqx.Module):
    dense: eqx.nn.Linear
    layer_norm: eqx.nn.LayerNorm

    def __init__(self, config: BertConfig, *, key: PRNGKeyArray):
        self.dense = eqx.nn.Linear(config.intermediate, config.hidden, key=key)
        self.layer_norm = eqx.nn.LayerNorm(config.hidden)


class Layer(eqx.Module):
    """One post-LayerNorm encoder layer, named like HF BERT."""

    attention: Attention
    intermediate: Intermediate
    output: Output

    def __init__(self, config: BertConfig, *, key: PRNGKeyArray):
        ka, ki, ko = jr.split(key, 3)
        self.attention = Attention(config, key=ka)
        self.intermediate = Intermediate(config, key=ki)
        self.output = Output(config, key=ko)


def _init_layers(config: BertConfig, keys: PRNGKeyArray) -> tuple[Layer, ...]:
    """`tuple(Layer(config, key=k) for k in keys)`, initialised by one vmapped `Layer`.

    The values are the same (each layer draws from its own key either way), but a jitted
    initialiser holds one random-number program per kind of weight instead of one per
    layer and weight, so its compile time no longer grows with depth through the PRNG
    (XLA:CPU, BERT-24L at tiny widths: 60 s -> 21 s). The stacked arrays are then split
    into one module per layer: the pytree is what the rest of the package expects.
    """
    stacked = eqx.filter_vmap(lambda k: Layer(config, key=k))(keys)
    arrays, static = eqx.partition(stacked, eqx.is_array)
    n = keys.shape[0]
    # One `split` per array (then a squeeze per layer) rather than `x[i]` per layer: the
    # same slices, about half the traced equations and the Python that builds them, which
    # is what a jitted creation's first run still spends per layer.
    pieces = jax.tree.map(lambda x: _Layers(lax.split(x, [1] * n)), arrays)
    per_layer = [jax.tree.map(lambda ps, i=i: ps.layer(i), pieces) for i in range(n)]
    return tuple(eqx.combine(a, static) for a in per_layer)


class _Layers:
    """One array's per-layer slices; not a pytree node, so `jax.tree.map` sees it whole."""

    def __init__(self, slices: list):
        self.slices = slices

    def layer(self, i: int):
        return lax.squeeze(self.slices[i], (0,))


class MLMHead(eqx.Module):
    """Transform (dense, GELU, LayerNorm) then the vocabulary decoder."""

    dense: eqx.nn.Linear
    layer_norm: eqx.nn.LayerNorm
    decoder: eqx.nn.Linear

    def __init__(self, config: BertConfig, *, key: PRNGKeyArray):
        kd, kv = jr.split(key)
        self.dense = eqx.nn.Linear(config.hidden, config.hidden, key=kd)
        self.layer_norm = eqx.nn.LayerNorm(config.hidden)
        self.decoder = eqx.nn.Linear(config.hidden, config.vocab_size, key=kv)


class BertMLM(eqx.Module):
    """BERT encoder plus masked-LM head.

    Module paths read like HF BERT: `embeddings.word`, `layers.3.attention.query`,
    `layers.3.attention.output`, `layers.3.intermediate.dense`, `layers.3.output.dense`,
    `head.decoder`. A BERT with `L` layers has `16 L + 10` array leaves.

    `config` is a static field; every array is a dynamic leaf.
    """

    embeddings: Embeddings
    layers: tuple[Layer, ...]
    head: MLMHead
    config: BertConfig = eqx.field(static=True)

    def __init__(self, config: BertConfig, *, key: PRNGKeyArray):
        keys = jr.split(key, config.num_layers + 2)
        self.embeddings = Embeddings(config, key=keys[0])
        self.layers = _init_layers(config, keys[2:])
        self.head = MLMHead(config, key=keys[1])
        self.config = config

    def _attention(self, attn: Attention, x, mask, key):
        c = self.config
        b, s, _ = x.shape
        d = c.hidden // c.heads
        q = _dense(attn.query, x).reshape(b, s, c.heads, d)
        k = _dense(attn.key, x).reshape(b, s, c.heads, d)
        v = _dense(attn.value, x).reshape(b, s, c.heads, d)
        k_probs, k_out = _split(key, 2)
        if c.attention == "fused":
            ctx = jax.nn.dot_product_attention(q, k, v, mask=mask[:, None, None, :])
        else:
            scores = jnp.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(d)  # (B, H, S, S)
            scores = jnp.where(mask[:, None, None, :], scores, jnp.finfo(scores.dtype).min)
            probs = _dropout(jax.nn.softmax(scores, axis=-1), c.dropout, k_probs)
            ctx = jnp.einsum("bhqk,bkhd->bqhd", probs, v)
        out = _dropout(_dense(attn.output, ctx.reshape(b, s, c.hidden)), c.dropout, k_out)
        return _layer_norm(attn.layer_norm, x + out, c.layer_norm_eps)

    def _layer(self, layer: Layer, x, mask, key_attn, key_ffn):
        c = self.config
        x = self._attention(layer.attention, x, mask, key_attn)
        h = jax.nn.gelu(_dense(layer.intermediate.dense, x), approximate=False)
        h = _dropout(_dense(layer.output.dense, h), c.dropout, key_ffn)
        return _layer_norm(layer.output.layer_norm, x + h, c.layer_norm_eps)

    def _scan_layers(self, x, mask, key):
        # Stack the per-layer arrays inside the trace: the pytree keeps one module per
        # layer, but XLA compiles the layer body once.
        static = eqx.filter(self.layers[0], eqx.is_array, inverse=True)
        arrays = [eqx.filter(layer, eqx.is_array) for layer in self.layers]
        stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *arrays)
        n = len(self.layers)
        keys = None if key is None else jr.split(jr.fold_in(key, 1), (n, 2))

        def body(x, inputs):
            arrays, k = inputs
            layer = eqx.combine(arrays, static)
            ka, kf = (None, None) if k is None else (k[0], k[1])
            return self._layer(layer, x, mask, ka, kf), None

        x, _ = jax.lax.scan(body, x, (stacked, keys))
        return x

    def __call__(
        self,
        input_ids: Int[Array, "batch seq"],
        attention_mask: Bool[Array, "batch seq"] | None = None,
        *,
        key: PRNGKeyArray | None = None,
    ) -> Float[Array, "batch seq vocab"]:
        """MLM logits. `key=None` means inference (no dropout)."""
        c = self.config
        if attention_mask is None:
            attention_mask = jnp.ones(input_ids.shape, dtype=bool)
        seq = input_ids.shape[1]
        keys = _split(key, 2 * len(self.layers) + 1)
        e = self.embeddings
        x = e.word.weight[input_ids] + e.position.weight[jnp.arange(seq)][None]
        x = _dropout(_layer_norm(e.layer_norm, x, c.layer_norm_eps), c.dropout, keys[0])
        if c.scan_layers and len(self.layers) > 1:
            x = self._scan_layers(x, attention_mask, key)
        else:
            for i, layer in enumerate(self.layers):
                x = self._layer(layer, x, attention_mask, keys[1 + 2 * i], keys[2 + 2 * i])
        h = jax.nn.gelu(_dense(self.head.dense, x), approximate=False)
        h = _layer_norm(self.head.layer_norm, h, c.layer_norm_eps)
        return _dense(self.head.decoder, h)


def num_leaves(config: BertConfig) -> int:
    """Array leaves of `BertMLM(config)`: 16 per layer plus 10."""
    return 16 * config.num_layers + 10


def _make_batch(config: BertConfig, batch: int, seq: int, key: PRNGKeyArray) -> dict:
    k_tok, k_sel, k_kind, k_rand = jr.split(key, 4)
    shape = (batch, seq)
    tokens = jr.randint(k_tok, shape, config.num_special_tokens, config.vocab_size)
    selected = jr.bernoulli(k_sel, 0.15, shape)
    u = jr.uniform(k_kind, shape)
    random_tokens = jr.randint(k_rand, shape, config.num_special_tokens, config.vocab_size)
    inputs = jnp.where(selected & (u < 0.8), config.mask_token_id, tokens)
    inputs = jnp.where(selected & (u >= 0.8) & (u < 0.9), random_tokens, inputs)
    return {
        "input_ids": inputs.astype(jnp.int32),
        "attention_mask": jnp.ones(shape, dtype=bool),
        "labels": tokens.astype(jnp.int32),
        "label_mask": selected,
    }


_make_batch_jit = jax.jit(_make_batch, static_argnums=(0, 1, 2))


def mlm_batches(
    config: BertConfig, batch: int, seq: int, *, key: PRNGKeyArray
) -> Iterator[dict[str, Array]]:
    """Endless seeded synthetic masked-LM batches.

    Tokens are uniform over the non-special ids. 15% of positions are selected; of those 80%
    become `[MASK]`, 10% a random token and 10% keep their token. Each batch is a dict with
    `input_ids` (int32, `(batch, seq)`), `attention_mask` (bool, all true), `labels` (int32,
    the original tokens) and `label_mask` (bool, the selected positions). The same `key` gives
    the same stream.
    """
    if seq > config.max_position:
        raise ValueError(f"`seq` must be <= max_position={config.max_position}, got {seq}.")
    while True:
        key, sub = jr.split(key)
        yield _make_batch_jit(config, batch, seq, sub)


def mlm_loss(
    model: BertMLM, batch: dict[str, Array], key: PRNGKeyArray | None
) -> tuple[Float[Array, ""], dict[str, Array]]:
    """Masked-LM cross-entropy over the selected positions.

    Returns:
        `(loss, aux)` with `aux = {"loss": loss, "accuracy": accuracy}` over the selected
        positions. `key=None` disables dropout.
    """
    logits = model(batch["input_ids"], batch["attention_mask"], key=key)
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    nll = -jnp.take_along_axis(logp, batch["labels"][..., None], axis=-1)[..., 0]
    weight = batch["label_mask"].astype(jnp.float32)
    denom = jnp.maximum(weight.sum(), 1.0)
    loss = (nll * weight).sum() / denom
    correct = (jnp.argmax(logits, axis=-1) == batch["labels"]).astype(jnp.float32)
    accuracy = (correct * weight).sum() / denom
    return loss, {"loss": loss, "accuracy": accuracy}
