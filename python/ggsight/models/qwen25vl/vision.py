"""Qwen2.5-VL vision tower + patch merger as one ggml graph (llama.cpp's mmproj names).

Patches (14 px; a still image through both temporal kernels) -> 2D rope ViT with RMSNorm and
SwiGLU, window attention except on the full-attention layers -> 2x2 merge -> MLP."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ...ggml import Context, DType, Tensor, required
from ...ggml.ops import ROPE_VISION
from ...nn import WeightBinder, patch_embed, rms_norm
from ...nn.tiles import patch_attention
from .windows import PatchLayout, patch_layout, window_mask


@dataclass(frozen=True)
class QwenVisionConfig:
    patch_size: int
    n_embd: int
    n_ff: int
    n_layer: int
    n_head: int
    eps: float
    n_embd_text: int
    merge: int
    window_size: int               # pixels per window side
    full_layers: frozenset         # layers attending over the whole image
    rope_base: float

    @classmethod
    def from_gguf(cls, gguf) -> "QwenVisionConfig":
        def key(name, default=None):
            return required(gguf, f"clip.vision.{name}", default)
        n_layer = int(key("block_count"))
        full = gguf.get("clip.vision.wa_layer_indexes")
        if full is None:   # llama.cpp's files: every n-th layer (when the indexes are evenly spaced)
            pattern = int(key("n_wa_pattern", 0))
            full = [il for il in range(n_layer) if pattern == 0 or (il + 1) % pattern == 0]
        return cls(patch_size=int(key("patch_size")), n_embd=int(key("embedding_length")),
                   n_ff=int(key("feed_forward_length")), n_layer=n_layer, n_head=int(key("attention.head_count")),
                   eps=float(key("attention.layer_norm_epsilon", 1e-6)), n_embd_text=int(key("projection_dim")),
                   merge=int(key("spatial_merge_size", 2)), window_size=int(key("window_size", 112)),
                   full_layers=frozenset(int(i) for i in full), rope_base=float(key("rope.freq_base", 10000.0)))

    @property
    def window_merged(self) -> int:
        """Window side in merged tokens."""
        return self.window_size // self.merge // self.patch_size


class QwenVision:
    """A bf16 mmproj's matmuls (and full-attention layers) run on the CPU's bf16 tile units (AMX)
    where its weights were bound to them at load (load_weights(..., tiles=True))."""

    def __init__(self, gguf, weights):
        self.config = c = QwenVisionConfig.from_gguf(gguf)
        w = self.binder = WeightBinder(weights)
        p = c.patch_size
        self.patch_w = (w("v.patch_embd.weight", (p, p, 3, c.n_embd)), w("v.patch_embd.weight.1", (p, p, 3, c.n_embd)))
        self.layers = []
        for il in range(c.n_layer):
            b = f"v.blk.{il}."
            L = {n: (w(b + n + ".weight"), w(b + n + ".bias"))
                 for n in ("attn_q", "attn_k", "attn_v", "attn_out", "ffn_gate", "ffn_up", "ffn_down")}
            L["ln1"], L["ln2"] = w(b + "ln1.weight", (c.n_embd,)), w(b + "ln2.weight", (c.n_embd,))
            self.layers.append(L)
        self.post_ln = w("v.post_ln.weight", (c.n_embd,))
        n_merged = c.n_embd * c.merge * c.merge
        self.mm0 = (w("mm.0.weight", (n_merged, n_merged)), w("mm.0.bias", (n_merged,)))
        self.mm2 = (w("mm.2.weight", (n_merged, c.n_embd_text)), w("mm.2.bias", (c.n_embd_text,)))
        matrices = [L[n][0] for L in self.layers for n in ("attn_q", "attn_k", "attn_v", "attn_out",
                                                            "ffn_gate", "ffn_up", "ffn_down")]
        # f32 weights ask for exact maths: K/V stay f32 in the fused attention (a little slower)
        self.exact = all(m.dtype == DType.F32 for m in matrices)
        self.flash_attn = True

    def layout(self, height: int, width: int) -> PatchLayout:
        c = self.config
        return patch_layout(height // c.patch_size, width // c.patch_size, c.merge, c.window_merged)

    def build(self, ctx: Context, pixels: Tensor, inp: dict, n: int) -> Tensor:
        """pixels [W, H, 3, 1] -> embeddings [n_embd_text, n / merge^2] in row-major token order."""
        c = self.config
        head_dim = c.n_embd // c.n_head
        with ctx:
            # a still image fills both temporal slots: the 3D kernel acts as the sum of its two slices
            kernel = self.patch_w[0].add(self.patch_w[1])
            x = patch_embed(kernel, pixels, c.patch_size)                          # [n_embd, n] raster order
            x = x.get_rows(inp["order"]).named("v_inp")                            # [n_embd, n] tower order
            for il, L in enumerate(self.layers):
                cur = rms_norm(x, L["ln1"], c.eps)
                q = L["attn_q"][0].mul_mat(cur).add(L["attn_q"][1]).reshape(head_dim, c.n_head, n)
                k = L["attn_k"][0].mul_mat(cur).add(L["attn_k"][1]).reshape(head_dim, c.n_head, n)
                v = L["attn_v"][0].mul_mat(cur).add(L["attn_v"][1]).reshape(head_dim, c.n_head, n)
                sections = [head_dim // 4] * 4
                q = q.rope_multi(inp["pos"], head_dim // 2, sections, ROPE_VISION, freq_base=c.rope_base)
                k = k.rope_multi(inp["pos"], head_dim // 2, sections, ROPE_VISION, freq_base=c.rope_base)
                full = il in c.full_layers
                att = patch_attention(q, k, v, None if full else inp["mask"], 1.0 / math.sqrt(head_dim),
                                      exact=self.exact, flash=self.flash_attn)
                x = x.add(L["attn_out"][0].mul_mat(att).add(L["attn_out"][1])).named(f"v_attn_out-{il}")
                cur = rms_norm(x, L["ln2"], c.eps)
                gate = L["ffn_gate"][0].mul_mat(cur).add(L["ffn_gate"][1])
                cur = gate.swiglu_split(L["ffn_up"][0].mul_mat(cur).add(L["ffn_up"][1]))
                x = x.add(L["ffn_down"][0].mul_mat(cur).add(L["ffn_down"][1])).named(f"v_out-{il}")
            x = rms_norm(x, self.post_ln, c.eps).named("v_post_ln")                # [n_embd, n]
            x = x.reshape(c.n_embd * c.merge * c.merge, n // (c.merge * c.merge))  # a block's patches side by side
            x = self.mm0[0].mul_mat(x).add(self.mm0[1]).gelu_erf()
            x = self.mm2[0].mul_mat(x).add(self.mm2[1])                                # [n_embd_text, n_merged]
            return x.get_rows(inp["restore"]).named("mm_out")

    def encode(self, sched, pixels: np.ndarray) -> np.ndarray:
        """numpy [3, H, W] (H, W multiples of patch * merge) -> [n_tokens, n_embd_text]."""
        c = self.config
        _, height, width = pixels.shape
        lay = self.layout(height, width)
        n = len(lay.order)
        ctx = Context(48 * c.n_layer + 64)
        img = ctx.input("v_pixels", (width, height, 3, 1), DType.F32)
        inp = {"order": ctx.input("v_order", (n,), DType.I32), "pos": ctx.input("v_pos", (4 * n,), DType.I32),
               "mask": ctx.input("v_window_mask", (n, n), DType.F16),
               "restore": ctx.input("v_restore", (len(lay.restore),), DType.I32)}
        out = self.build(ctx, img, inp, n)
        pos = np.concatenate([lay.rows, lay.cols, lay.rows, lay.cols]).astype(np.int32)
        feed = {img: pixels, inp["order"]: lay.order.astype(np.int32), inp["pos"]: pos,
                inp["restore"]: lay.restore.astype(np.int32)}
        if len(c.full_layers) < c.n_layer:
            feed[inp["mask"]] = window_mask(lay.window)
        result, = sched.run(ctx.graph(out), feed)
        return result
