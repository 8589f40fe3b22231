"""Pixtral vision tower + Mistral 3's projector as one ggml graph (llama.cpp's mmproj names,
projector type "pixtral").

Patches (14 px, any image size that is a multiple of patch x merge) -> RMSNorm -> ViT blocks
with 2D rope (row on the first half of each head, column on the second), RMSNorm and a gated
MLP (SiLU in Mistral Small 3.1) -> the projector: RMSNorm, the 2x2 patch merger (a learned
linear over each block's 4 patches), linear_1, GELU, linear_2. Pixtral 12B's tower (no merger)
is the same graph without the norm and the merger."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ...ggml import Context, DType, Tensor, required
from ...nn import WeightBinder, attention, patch_embed, rms_norm, rope_2d

PROJECTOR_TYPE = "pixtral"
# ggsight's key for the projector's RMSNorm epsilon, which HF takes from the text config
# (llama.cpp applies the tower's epsilon; the two are equal in released checkpoints)
PROJECTOR_NORM_EPS_KEY = "clip.vision.projector.rms_norm_epsilon"


@dataclass(frozen=True)
class PixtralVisionConfig:
    image_size: int       # longest edge in pixels (HF's size["longest_edge"])
    patch_size: int
    n_embd: int
    n_ff: int
    n_layer: int
    n_head: int
    eps: float
    n_embd_text: int
    merge: int            # spatial_merge_size (1: no patch merger, Pixtral 12B)
    rope_base: float
    silu: bool            # the MLP's gate activation: SiLU, else GELU (erf)
    projector_eps: float

    @classmethod
    def from_gguf(cls, gguf, has_merger: bool = True) -> "PixtralVisionConfig":
        def key(name, default=None):
            return required(gguf, f"clip.vision.{name}", default)
        eps = float(key("attention.layer_norm_epsilon", 1e-5))
        gelu = bool(gguf.get("clip.use_gelu", False))
        return cls(image_size=int(key("image_size")), patch_size=int(key("patch_size")),
                   n_embd=int(key("embedding_length")), n_ff=int(key("feed_forward_length")),
                   n_layer=int(key("block_count")), n_head=int(key("attention.head_count")), eps=eps,
                   n_embd_text=int(key("projection_dim")),
                   merge=int(key("spatial_merge_size", 2)) if has_merger else 1,
                   # clip.cpp fixes 10000 for this projector; ggsight's files say it, and llama.cpp's
                   # from Mistral's own checkpoint format under clip.rope.freq_base
                   rope_base=float(key("rope.freq_base", gguf.get("clip.rope.freq_base", 10000.0))),
                   silu=bool(gguf.get("clip.use_silu", not gelu)),
                   projector_eps=float(gguf.get(PROJECTOR_NORM_EPS_KEY, eps)))

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def factor(self) -> int:
        """Pixels per side of one output token."""
        return self.patch_size * self.merge


class PixtralVision:
    def __init__(self, gguf, weights):
        w = self.binder = WeightBinder(weights)
        has_merger = "mm.patch_merger.weight" in weights
        self.config = c = PixtralVisionConfig.from_gguf(gguf, has_merger)
        p, d = c.patch_size, c.n_embd
        self.patch_w = w("v.patch_embd.weight", (p, p, 3, d))
        self.pre_ln = w("v.pre_ln.weight", (d,))
        self.layers = []
        for il in range(c.n_layer):
            b = f"v.blk.{il}."
            L = {n: w(b + n + ".weight", (d, d)) for n in ("attn_q", "attn_k", "attn_v", "attn_out")}
            L.update({n: w(b + n + ".weight", (d, c.n_ff)) for n in ("ffn_gate", "ffn_up")})
            L["ffn_down"] = w(b + "ffn_down.weight", (c.n_ff, d))
            L["ln1"], L["ln2"] = w(b + "ln1.weight", (d,)), w(b + "ln2.weight", (d,))
            self.layers.append(L)
        self.input_norm = w("mm.input_norm.weight", (d,)) if has_merger else None
        self.merger = w("mm.patch_merger.weight", (d * c.merge ** 2, d)) if has_merger else None
        self.mm1 = (w("mm.1.weight", (d, c.n_embd_text)), w.optional("mm.1.bias", (c.n_embd_text,)))
        self.mm2 = (w("mm.2.weight", (c.n_embd_text, c.n_embd_text)), w.optional("mm.2.bias", (c.n_embd_text,)))
        # the [IMG_BREAK] embedding, when the file carries it (llama.cpp's converter may not)
        self.img_break = w.optional("v.token_embd.img_break", (c.n_embd_text,))
        matrices = [L[n] for L in self.layers for n in ("attn_q", "attn_k", "attn_v", "attn_out")]
        # f32 weights ask for exact maths: K/V stay f32 in the fused attention
        self.exact = all(m.dtype == DType.F32 for m in matrices)
        # HF's axial rope, q/k rows permuted as llama.cpp's converter writes them (rotated pairs
        # adjacent): the first half of a head turns with the patch row at the even inverse
        # frequencies, the second with the column at the odd ones, i.e. the same frequencies
        # scaled by base^(-2 / head_dim)
        self.col_freq_scale = c.rope_base ** (-2.0 / c.head_dim)

    def _mlp(self, L: dict, x: Tensor) -> Tensor:
        gate, up = L["ffn_gate"].mul_mat(x), L["ffn_up"].mul_mat(x)
        act = gate.swiglu_split(up) if self.config.silu else gate.gelu_erf().mul(up)
        return L["ffn_down"].mul_mat(act)

    def build(self, ctx: Context, pixels: Tensor, pos_h: Tensor, pos_w: Tensor, nx: int, ny: int) -> Tensor:
        """pixels [W, H, 3, 1] -> [n_embd_text, (nx / merge) * (ny / merge)], tokens row-major."""
        c = self.config
        hd, n = c.head_dim, nx * ny
        with ctx:
            x = patch_embed(self.patch_w, pixels, c.patch_size)                    # [n_embd, n] raster order
            x = rms_norm(x, self.pre_ln, c.eps).named("v_pre_ln")
            for il, L in enumerate(self.layers):
                cur = rms_norm(x, L["ln1"], c.eps)
                q = L["attn_q"].mul_mat(cur).reshape(hd, c.n_head, n)
                k = L["attn_k"].mul_mat(cur).reshape(hd, c.n_head, n)
                v = L["attn_v"].mul_mat(cur).reshape(hd, c.n_head, n)
                q = rope_2d(q, pos_h, pos_w, c.rope_base, self.col_freq_scale)
                k = rope_2d(k, pos_h, pos_w, c.rope_base, self.col_freq_scale)
                att = self._attention(q, k, v, 1.0 / math.sqrt(hd))
                x = x.add(L["attn_out"].mul_mat(att)).named(f"v_attn_out-{il}")
                x = x.add(self._mlp(L, rms_norm(x, L["ln2"], c.eps))).named(f"v_out-{il}")
            if self.merger is not None:
                x = rms_norm(x, self.input_norm, c.projector_eps)
                x = x.transpose().cont().reshape(nx, ny, c.n_embd)                # [nx, ny, n_embd]
                # each merge x merge block side by side as HF's unfold lays it out: column within
                # the block fastest, then row, then channel (im2col's kernel order)
                kernel = x.view((c.merge, c.merge, c.n_embd), (x.nb[0], x.nb[1], x.nb[2]), 0)
                x = kernel.im2col(x, c.merge, c.merge, 0, 0, 1, 1, True, DType.F32)  # [m*m*n_embd, nx/m, ny/m]
                x = x.reshape(x.ne[0], x.ne[1] * x.ne[2])
                x = self.merger.mul_mat(x).named("v_merged")                      # [n_embd, n_merged]
            x = _linear(self.mm1, x).gelu_erf()
            return _linear(self.mm2, x).named("mm_out")                           # [n_embd_text, n_merged]

    def _attention(self, q: Tensor, k: Tensor, v: Tensor, scale: float) -> Tensor:
        k, v = k.permute(0, 2, 1, 3), v.permute(0, 2, 1, 3)                       # [head_dim, n, n_head]
        if not self.exact:
            k, v = k.cast(DType.F16), v.cast(DType.F16)
        return attention(q, k, v, None, scale)

    def encode(self, sched, pixels: np.ndarray) -> np.ndarray | None:
        """numpy [3, H, W] (H, W multiples of patch * merge) -> [n_tokens, n_embd_text], tokens
        row-major (None when `sched` only reserves memory)."""
        c = self.config
        _, height, width = pixels.shape
        if height % c.factor or width % c.factor:
            raise ValueError(f"a {width}x{height} image: both sides must be multiples of {c.factor}")
        nx, ny = width // c.patch_size, height // c.patch_size
        ctx = Context(32 * c.n_layer + 64)
        img = ctx.input("v_pixels", (width, height, 3, 1), DType.F32)
        pos_h = ctx.input("v_pos_h", (nx * ny,), DType.I32)
        pos_w = ctx.input("v_pos_w", (nx * ny,), DType.I32)
        out = self.build(ctx, img, pos_h, pos_w, nx, ny)
        idx = np.arange(nx * ny, dtype=np.int32)
        result, = sched.run(ctx.graph(out), {img: pixels, pos_h: idx // nx, pos_w: idx % nx})
        return result


def _linear(wb: tuple, x: Tensor) -> Tensor:
    y = wb[0].mul_mat(x)
    return y.add(wb[1]) if wb[1] is not None else y
