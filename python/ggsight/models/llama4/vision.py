"""Llama 4 vision: a ViT over one tile (+ class token, learned positions, 2D rope on
interleaved pairs), pixel shuffle, the two-layer GELU adapter and the projector into the text
width - one ggml graph per tile (llama.cpp's mmproj names)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ...ggml import Context, DType, Tensor, required
from ...nn import WeightBinder, patch_embed, rope_2d
from ...nn.tiles import patch_attention

_LAYER_NORM_EPS = 1e-5   # HF builds its LayerNorms with the default eps, whatever the config says


@dataclass(frozen=True)
class Llama4VisionConfig:
    tile_size: int
    patch_size: int
    n_embd: int
    n_ff: int
    n_layer: int
    n_head: int
    n_embd_text: int
    shuffle_ratio: float
    rope_base: float

    @classmethod
    def from_gguf(cls, gguf) -> "Llama4VisionConfig":
        def key(name, default=None):
            return required(gguf, f"clip.vision.{name}", default)
        scale = int(key("projector.scale_factor", 2))
        return cls(tile_size=int(key("image_size")), patch_size=int(key("patch_size")),
                   n_embd=int(key("embedding_length")), n_ff=int(key("feed_forward_length")),
                   n_layer=int(key("block_count")), n_head=int(key("attention.head_count")),
                   n_embd_text=int(key("projection_dim")),
                   shuffle_ratio=float(key("pixel_shuffle_ratio", 1.0 / scale)),
                   rope_base=float(key("rope.freq_base", 10000.0)))

    @property
    def side(self) -> int:
        return self.tile_size // self.patch_size

    @property
    def tokens_per_tile(self) -> int:
        return int(round(self.side * self.side * self.shuffle_ratio ** 2))


def _layer_norm(x: Tensor, wb: tuple) -> Tensor:
    return x.norm(_LAYER_NORM_EPS).mul(wb[0]).add(wb[1])


def _pixel_shuffle(x: Tensor, side: int, ratio: float) -> Tensor:
    """HF's pixel_shuffle on one tile: [C, side * side] -> [C / ratio^2, (side * ratio)^2].
    (HF's shapes [h, w, C] are ggml's (C, w, h); each HF permute(0, 2, 1, 3) swaps ne1, ne2.)"""
    c = x.ne[0]
    r_side = int(round(side * ratio))
    x = x.reshape(int(round(c / ratio)), r_side, side)                            # HF [h, w*r, C/r]
    x = x.permute(0, 2, 1, 3).cont()                                              # HF [w*r, h, C/r]
    x = x.reshape(int(round(c / ratio ** 2)), r_side, r_side)                     # HF [h*r, w*r, C/r^2]
    x = x.permute(0, 2, 1, 3).cont()                                              # HF [w*r, h*r, C/r^2]
    return x.reshape(x.ne[0], r_side * r_side)


class Llama4Vision:
    """A bf16 mmproj's matmuls and attention run on the CPU's bf16 tile units (AMX) where its
    weights were bound to them at load (load_weights(..., tiles=True))."""

    def __init__(self, gguf, weights):
        self.config = c = Llama4VisionConfig.from_gguf(gguf)
        w = self.binder = WeightBinder(weights)
        p = c.patch_size
        self.patch_w = w("v.patch_embd.weight")                     # [3 * p * p, n_embd] (HF's unfold + linear)
        self.class_embd = w("v.class_embd", (c.n_embd,))
        self.pos = w("v.position_embd.weight", (c.n_embd, c.side * c.side + 1))
        self.pre_ln = (w("v.pre_ln.weight", (c.n_embd,)), w("v.pre_ln.bias", (c.n_embd,)))
        self.post_ln = (w("v.post_ln.weight", (c.n_embd,)), w("v.post_ln.bias", (c.n_embd,)))
        self.layers = []
        for il in range(c.n_layer):
            b = f"v.blk.{il}."
            L = {n: (w(b + n + ".weight"), w(b + n + ".bias"))
                 for n in ("ln1", "attn_q", "attn_k", "attn_v", "attn_out", "ffn_up", "ffn_down")}
            L["ln2"] = self._pre_ffn_norm(w, b, c.n_embd)
            self.layers.append(L)
        self.mlp1 = w("mm.model.mlp.1.weight")
        self.mlp2 = w("mm.model.mlp.2.weight")
        self.proj = w("mm.model.fc.weight", (self.mlp2.ne[1], c.n_embd_text))
        if self.patch_w.ne[0] != 3 * p * p:
            raise ValueError(f"{gguf.path}: v.patch_embd.weight has {self.patch_w.ne[0]} inputs, expected {3 * p * p}")
        matrices = [L[n][0] for L in self.layers for n in ("attn_q", "attn_k", "attn_v", "attn_out", "ffn_up", "ffn_down")]
        self.exact = all(m.dtype == DType.F32 for m in matrices)

    @staticmethod
    def _pre_ffn_norm(w: WeightBinder, b: str, n_embd: int) -> tuple:
        """HF's post_attention_layernorm, the norm before the MLP: v.blk.N.ln2 (what clip.cpp
        reads), or v.blk.N.attn_post_norm in files from llama.cpp's converter (llama-cpp-python
        0.3.36), whose name table also maps that HF name for Gemma 4, and the later entry wins.
        A Llama 4 block has no norm after attention, so the name can mean nothing else here
        (clip.cpp itself would apply it after attention and skip the pre-MLP norm)."""
        for name in ("ln2", "attn_post_norm"):
            weight = w.optional(f"{b}{name}.weight", (n_embd,))
            if weight is not None:
                return weight, w(f"{b}{name}.bias", (n_embd,))
        return w(f"{b}ln2.weight", (n_embd,)), None   # reports the missing tensor by clip.cpp's name

    def build(self, ctx: Context, pixels: Tensor, pos_x: Tensor, pos_y: Tensor) -> Tensor:
        """One tile [S, S, 3, 1] -> [n_embd_text, tokens_per_tile]."""
        c = self.config
        hd = c.n_embd // c.n_head
        n = c.side * c.side + 1
        with ctx:
            kernel = self.patch_w.reshape(c.patch_size, c.patch_size, 3, c.n_embd)
            x = patch_embed(kernel, pixels, c.patch_size)                         # [n_embd, side * side]
            x = x.concat(self.class_embd.reshape(c.n_embd, 1), 1)                  # class token last
            x = _layer_norm(x.add(self.pos), self.pre_ln).named("v_pre_ln")       # [n_embd, n]
            for il, L in enumerate(self.layers):
                cur = _layer_norm(x, L["ln1"])
                q = L["attn_q"][0].mul_mat(cur).add(L["attn_q"][1]).reshape(hd, c.n_head, n)
                k = L["attn_k"][0].mul_mat(cur).add(L["attn_k"][1]).reshape(hd, c.n_head, n)
                v = L["attn_v"][0].mul_mat(cur).add(L["attn_v"][1]).reshape(hd, c.n_head, n)
                # HF's complex rotation of interleaved pairs: half of each head turns with the patch
                # column, half with the row (positions 1-based; the class token's 0 = none)
                q, k = rope_2d(q, pos_x, pos_y, c.rope_base), rope_2d(k, pos_x, pos_y, c.rope_base)
                att = patch_attention(q, k, v, None, 1.0 / math.sqrt(hd), exact=self.exact)
                x = x.add(L["attn_out"][0].mul_mat(att).add(L["attn_out"][1])).named(f"v_attn_out-{il}")
                cur = L["ffn_up"][0].mul_mat(_layer_norm(x, L["ln2"])).add(L["ffn_up"][1]).gelu_erf()
                x = x.add(L["ffn_down"][0].mul_mat(cur).add(L["ffn_down"][1])).named(f"v_out-{il}")
            x = _layer_norm(x, self.post_ln)
            x = x.view((c.n_embd, n - 1), (x.nb[0], x.nb[1]), 0).cont()             # drop the class token
            x = _pixel_shuffle(x, c.side, c.shuffle_ratio)                          # [n_embd / r^2, tokens]
            x = self.mlp1.mul_mat(x).gelu_erf()
            x = self.mlp2.mul_mat(x).gelu_erf()
            return self.proj.mul_mat(x).named("mm_out")                                 # [n_embd_text, tokens]

    def encode(self, sched, tile: np.ndarray) -> np.ndarray:
        """numpy [3, S, S] -> [tokens_per_tile, n_embd_text]."""
        c = self.config
        n = c.side * c.side + 1
        ctx = Context(40 * c.n_layer + 64)
        img = ctx.input("v_pixels", (c.tile_size, c.tile_size, 3, 1), DType.F32)
        pos_x, pos_y = ctx.input("v_pos_x", (n,), DType.I32), ctx.input("v_pos_y", (n,), DType.I32)
        out = self.build(ctx, img, pos_x, pos_y)
        idx = np.arange(c.side * c.side)
        px = np.append(idx % c.side + 1, 0).astype(np.int32)
        py = np.append(idx // c.side + 1, 0).astype(np.int32)
        result, = sched.run(ctx.graph(out), {img: tile, pos_x: px, pos_y: py})
        return result
