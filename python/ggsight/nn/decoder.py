"""Building blocks of the dense decoders that follow Llama's layout (llama, qwen2, qwen3,
granite, ...): the llama.cpp keys they all share, one rotary embedding, one GQA self-attention
(optional q/k/v/o biases, optional per-head QK RMSNorm, KV cache, fused attention) and one
SwiGLU MLP. Each family's text.py composes them in the order of its reference. Shapes in ggml
order."""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..cache import FULL
from ..errors import UnsupportedError
from ..ggml import Tensor, required
from ..ggml.ops import ROPE_NEOX, ROPE_NORMAL
from .binder import WeightBinder
from .layers import attention, output_rows, rms_norm, with_image_rows

__all__ = ["Attention", "DecoderConfig", "DecoderLayer", "DenseDecoder", "ROPE_NEOX", "ROPE_NORMAL", "Rope", "SwiGLU", "decoder_hparams", "linear", "rope_freq_scale"]


def decoder_hparams(gguf, arch: str, *, rope_base: float = 10_000.0, norm_eps: float = 1e-5,
                    n_ctx: int = 4096) -> dict:
    """The hyperparameters every llama.cpp decoder GGUF writes under `<arch>.`, with the given
    defaults for the optional ones: block_count, embedding_length, feed_forward_length and
    attention.head_count are required."""
    def key(name, default=None):
        return required(gguf, f"{arch}.{name}", default)
    n_embd, n_head = int(key("embedding_length")), int(key("attention.head_count"))
    head_dim = int(gguf.get(f"{arch}.attention.key_length", n_embd // n_head))
    return dict(
        n_layer=int(key("block_count")), n_embd=n_embd, n_ff=int(key("feed_forward_length")), n_head=n_head,
        n_head_kv=int(key("attention.head_count_kv", n_head)), head_dim=head_dim,
        n_rot=int(key("rope.dimension_count", head_dim)), n_ctx_train=int(key("context_length", n_ctx)),
        norm_eps=float(key("attention.layer_norm_rms_epsilon", norm_eps)),
        rope_base=float(key("rope.freq_base", rope_base)))


def rope_freq_scale(gguf, arch: str) -> float:
    """1 / the linear rope scaling factor (1 when the file asks for none). llama3 scaling needs
    no key: its divisors are the rope_freqs.weight tensor. YaRN and LongRoPE are refused rather
    than run as plain rope."""
    kind = gguf.get(f"{arch}.rope.scaling.type", "none")
    factor = float(gguf.get(f"{arch}.rope.scaling.factor", 0.0) or 0.0)
    if kind in ("none", "") or (kind == "linear" and factor in (0.0, 1.0)):
        return 1.0
    if kind == "linear":
        return 1.0 / factor
    raise UnsupportedError(f"{gguf.path}: rope scaling {kind!r} is not supported (linear or llama3 are)")


@dataclass(frozen=True)
class DecoderConfig:
    """The hyperparameters every Llama-layout decoder has; a family's frozen config adds its own
    fields after these and builds itself with read()."""
    n_layer: int
    n_embd: int
    n_ff: int
    n_head: int
    n_head_kv: int
    head_dim: int              # attention.key_length, else n_embd / n_head
    n_rot: int
    n_ctx_train: int
    norm_eps: float
    rope_base: float
    rope_freq_scale: float     # 1 / linear scaling factor

    @classmethod
    def read(cls, gguf, arch: str, *, rope_base: float, norm_eps: float, n_ctx: int = 4096, **own):
        """decoder_hparams under `arch.` with the family's defaults, the rope scaling, and the
        family's own fields (`own`)."""
        shape = decoder_hparams(gguf, arch, rope_base=rope_base, norm_eps=norm_eps, n_ctx=n_ctx)
        return cls(**shape, rope_freq_scale=rope_freq_scale(gguf, arch), **own)


def linear(weight: Tensor, bias: Tensor | None, x: Tensor) -> Tensor:
    """weight [n_in, n_out] times x [n_in, n_tokens] (+ bias [n_out])."""
    out = weight.mul_mat(x)
    return out.add(bias) if bias is not None else out


@dataclass(frozen=True)
class Rope:
    """Rotary embedding of the first n_rot values of each head. mode: ROPE_NORMAL rotates
    adjacent pairs (llama.cpp's converter permutes Llama's q/k rows into that order), ROPE_NEOX
    the two halves (HF's rotate_half, kept as is by Qwen's files). freq_scale: 1 / linear
    scaling factor; freq_factors: llama3 scaling's per-pair divisors (rope_freqs.weight)."""
    n_rot: int
    mode: int
    base: float
    freq_scale: float = 1.0
    freq_factors: Tensor | None = None

    def __call__(self, x: Tensor, positions: Tensor) -> Tensor:
        return x.rope(positions, self.n_rot, self.mode, freq_base=self.base, freq_scale=self.freq_scale,
                      freq_factors=self.freq_factors)


class Attention:
    """Self-attention of layer il with n_head_kv <= n_head key/value heads: blk.{il}.attn_q,
    attn_k, attn_v, attn_output (each with an optional .bias), and with qk_norm the per-head
    RMSNorms attn_q_norm / attn_k_norm (Qwen3), applied before the rotation."""

    def __init__(self, w: WeightBinder, il: int, n_embd: int, n_head: int, n_head_kv: int, head_dim: int,
                 qk_norm: bool = False):
        p = f"blk.{il}."
        q_width, kv_width = n_head * head_dim, n_head_kv * head_dim
        self.n_head, self.n_head_kv, self.head_dim = n_head, n_head_kv, head_dim
        self.wq, self.bq = w(p + "attn_q.weight", (n_embd, q_width)), w.optional(p + "attn_q.bias", (q_width,))
        self.wk, self.bk = w(p + "attn_k.weight", (n_embd, kv_width)), w.optional(p + "attn_k.bias", (kv_width,))
        self.wv, self.bv = w(p + "attn_v.weight", (n_embd, kv_width)), w.optional(p + "attn_v.bias", (kv_width,))
        self.wo, self.bo = w(p + "attn_output.weight", (q_width, n_embd)), w.optional(p + "attn_output.bias", (n_embd,))
        self.q_norm = w(p + "attn_q_norm.weight", (head_dim,)) if qk_norm else None
        self.k_norm = w(p + "attn_k_norm.weight", (head_dim,)) if qk_norm else None

    def __call__(self, x: Tensor, inp, cache, il: int, rope: Rope, scale: float, eps: float,
                 flash: bool = True) -> Tensor:
        """x [n_embd, n_tokens] (normed) -> [n_embd, n_tokens]; keys and values of the batch go
        to layer il's cache, of the kind the cache gives that layer. scale multiplies q.k."""
        n_tokens, kind = inp.n_tokens, cache.kinds[il]
        q = linear(self.wq, self.bq, x).reshape(self.head_dim, self.n_head, n_tokens)     # [head_dim, n_head, n_tokens]
        k = linear(self.wk, self.bk, x).reshape(self.head_dim, self.n_head_kv, n_tokens)  # [head_dim, n_head_kv, n_tokens]
        v = linear(self.wv, self.bv, x).reshape(self.head_dim, self.n_head_kv, n_tokens)
        if self.q_norm is not None:
            q = rms_norm(q, self.q_norm, eps).named(f"q_norm-{il}")
            k = rms_norm(k, self.k_norm, eps).named(f"k_norm-{il}")
        q = rope(q, inp.positions).named(f"q_rope-{il}")
        k = rope(k, inp.positions).named(f"k_rope-{il}")
        k_all, v_all = cache.layers[il].store(k, v, inp.cells[kind], inp.n_view[kind])
        out = attention(q, k_all, v_all, inp.masks[kind], scale, flash=flash).named(f"attn-{il}")  # [q_width, n_tokens]
        return linear(self.wo, self.bo, out)


class SwiGLU:
    """down(silu(gate(x)) * up(x)) of layer il: blk.{il}.ffn_gate, ffn_up, ffn_down (optional biases)."""

    def __init__(self, w: WeightBinder, il: int, n_embd: int, n_ff: int):
        p = f"blk.{il}."
        self.gate, self.b_gate = w(p + "ffn_gate.weight", (n_embd, n_ff)), w.optional(p + "ffn_gate.bias", (n_ff,))
        self.up, self.b_up = w(p + "ffn_up.weight", (n_embd, n_ff)), w.optional(p + "ffn_up.bias", (n_ff,))
        self.down, self.b_down = w(p + "ffn_down.weight", (n_ff, n_embd)), w.optional(p + "ffn_down.bias", (n_embd,))

    def __call__(self, x: Tensor) -> Tensor:
        """[n_embd, n_tokens] -> [n_embd, n_tokens]"""
        hidden = linear(self.gate, self.b_gate, x).swiglu_split(linear(self.up, self.b_up, x))   # [n_ff, n_tokens]
        return linear(self.down, self.b_down, hidden)


class DecoderLayer:
    """The weights of layer il of a pre-norm Llama-layout block: blk.{il}.attn_norm, the
    Attention, blk.{il}.ffn_norm, the SwiGLU. c: a config with decoder_hparams' fields; each
    family's forward() runs them in its reference's order."""

    def __init__(self, w: WeightBinder, il: int, c, qk_norm: bool = False):
        self.attn_norm = w(f"blk.{il}.attn_norm.weight", (c.n_embd,))
        self.attn = Attention(w, il, c.n_embd, c.n_head, c.n_head_kv, c.head_dim, qk_norm)
        self.ffn_norm = w(f"blk.{il}.ffn_norm.weight", (c.n_embd,))
        self.ffn = SwiGLU(w, il, c.n_embd, c.n_ff)


class DenseDecoder:
    """A Llama-layout text decoder as llama.cpp's files hold it: token_embd, n_layer pre-norm
    blocks (RMSNorm, GQA attention with rope, residual; RMSNorm, MLP, residual), output_norm, and
    the lm head (output.weight, or the tied embedding table). A family sets its config class and
    rope, and overrides the hooks where its reference differs (layers, MLP, cache kinds, scales).
    forward() follows the reference order and names the intermediates the dump hook sees."""

    config_class = None          # the family's frozen config dataclass, with from_gguf(gguf)
    rope_mode = ROPE_NORMAL
    rope_freq_factors = False    # llama3 scaling: rope_freqs.weight, one divisor per rotated pair
    qk_norm = False              # per-head RMSNorm of q and k before the rope (Qwen3)

    def __init__(self, gguf, weights, config=None):
        self.config = c = config or self.config_class.from_gguf(gguf)
        self.binder = w = WeightBinder(weights)
        self.tok_embd = w("token_embd.weight", (c.n_embd,))
        factors = w.optional("rope_freqs.weight", (c.n_rot // 2,)) if self.rope_freq_factors else None
        self.rope = Rope(c.n_rot, self.rope_mode, c.rope_base, c.rope_freq_scale, factors)
        self.layers = self.make_layers(w, c)
        self.output_norm = w("output_norm.weight", (c.n_embd,))
        self.output = w.optional("output.weight", (c.n_embd,)) or self.tok_embd
        self.n_vocab = self.output.ne[1]
        self.flash_attn = True

    def make_layers(self, w: WeightBinder, c) -> list:
        return [DecoderLayer(w, il, c, self.qk_norm) for il in range(c.n_layer)]

    def cache_kinds(self) -> list:
        return [FULL] * self.config.n_layer

    def embed(self, tokens: Tensor) -> Tensor:
        return self.tok_embd.get_rows(tokens).named("inp_embd")              # [n_embd, n_tokens]

    def mlp(self, layer, x: Tensor, inp, il: int) -> Tensor:
        return layer.ffn(x)

    def attention_scale(self) -> float:
        return 1.0 / math.sqrt(self.config.head_dim)

    def residual_scale(self) -> float:
        """Multiplies each block's output before its residual add."""
        return 1.0

    def logit_scale(self) -> float:
        """Divides the logits."""
        return 1.0

    def forward(self, inp, cache, embeddings: Tensor | None = None) -> Tensor:
        """Logits [n_vocab, n_outputs] for the batch's output rows."""
        c = self.config
        x = embeddings if embeddings is not None else self.embed(inp.tokens)
        x = with_image_rows(x, inp)      # a vision model's image rows go into this decoder unscaled
        scale, residual = self.attention_scale(), self.residual_scale()
        for il, L in enumerate(self.layers):
            cur = rms_norm(x, L.attn_norm, c.norm_eps).named(f"attn_norm-{il}")
            cur = L.attn(cur, inp, cache, il, self.rope, scale, c.norm_eps, self.flash_attn)
            x = _scaled(cur, residual).add(x).named(f"attn_residual-{il}")    # [n_embd, n_tokens]
            cur = rms_norm(x, L.ffn_norm, c.norm_eps).named(f"ffn_norm-{il}")
            x = _scaled(self.mlp(L, cur, inp, il), residual).add(x).named(f"l_out-{il}")
        x = output_rows(x, inp, self.output_norm, c.norm_eps)
        logits = self.output.mul_mat(x)                                         # [n_vocab, n_outputs]
        return _scaled(logits, 1.0 / self.logit_scale()).named("result_output")


def _scaled(x: Tensor, factor: float) -> Tensor:
    return x if factor == 1.0 else x.scale(factor)
