"""Gemma 3 vision: SigLIP tower + average-pool projector as one ggml graph (mmproj GGUF names)."""
from __future__ import annotations

import math
from dataclasses import dataclass

from ...ggml import Context, DType, Tensor, required
from ...nn import WeightBinder, gelu_tanh, patch_embed, rms_norm
from ...nn.tiles import patch_attention

_DEFAULT_POOL = 4   # clip.cpp's n_merge for PROJECTOR_TYPE_GEMMA3


@dataclass(frozen=True)
class Gemma3VisionConfig:
    image_size: int
    patch_size: int
    n_embd: int
    n_ff: int
    n_layer: int
    n_head: int
    eps: float
    n_embd_text: int
    pool: int              # average-pool kernel: patches per side / tokens per side
    proj_eps: float

    @classmethod
    def from_gguf(cls, gguf) -> "Gemma3VisionConfig":
        def key(name, default=None):
            return required(gguf, f"clip.vision.{name}", default)
        image_size, patch = int(key("image_size")), int(key("patch_size"))
        side = image_size // patch
        # llama.cpp's converter writes the pooling kernel only where it is not 4 (every released
        # size pools 64 -> 16 per side) and clip.cpp then uses 4; ggsight's earlier files said
        # mm_tokens_per_image instead
        pool = gguf.get("clip.vision.projector.scale_factor")
        if pool is None and gguf.get("clip.vision.mm_tokens_per_image") is not None:
            pool = side // math.isqrt(int(gguf.get("clip.vision.mm_tokens_per_image")))
        pool = int(_DEFAULT_POOL if pool is None else pool)
        if not 0 < pool <= side:
            raise ValueError(f"{gguf.path}: pooling kernel {pool} for {side} patches per side")
        eps = float(key("attention.layer_norm_epsilon", 1e-6))
        return cls(image_size=image_size, patch_size=patch, n_embd=int(key("embedding_length")),
                   n_ff=int(key("feed_forward_length")), n_layer=int(key("block_count")),
                   n_head=int(key("attention.head_count")), eps=eps,
                   n_embd_text=int(key("projection_dim")), pool=pool, proj_eps=eps)

    @property
    def n_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    @property
    def n_tokens(self) -> int:
        return (self.image_size // self.patch_size // self.pool) ** 2


def _norm(x: Tensor, w: Tensor, b: Tensor, eps: float) -> Tensor:
    return x.norm(eps).mul(w).add(b)


class Gemma3Vision:
    """SigLIP over one image; a bf16 mmproj's matmuls and attention run on the CPU's tile units
    (AMX) where its weights were bound to them at load (load_weights(..., tiles=True))."""

    def __init__(self, gguf, weights):
        self.config = c = Gemma3VisionConfig.from_gguf(gguf)
        w = self.binder = WeightBinder(weights)
        self.patch_w = w("v.patch_embd.weight", (c.patch_size, c.patch_size, 3, c.n_embd))
        self.patch_b = w("v.patch_embd.bias", (c.n_embd,))
        self.pos = w("v.position_embd.weight", (c.n_embd, c.n_patches))
        self.layers = []
        for il in range(c.n_layer):
            p = f"v.blk.{il}."
            names = ["ln1", "attn_q", "attn_k", "attn_v", "attn_out", "ln2", "ffn_up", "ffn_down"]
            self.layers.append({n: (w(p + n + ".weight"), w(p + n + ".bias")) for n in names})
        self.post_ln = (w("v.post_ln.weight", (c.n_embd,)), w("v.post_ln.bias", (c.n_embd,)))
        self.soft_emb_norm = w("mm.soft_emb_norm.weight", (c.n_embd,))
        self.proj = w("mm.input_projection.weight", (c.n_embd_text, c.n_embd))  # [n_embd_text, n_embd]
        self.flash_attn = True
        matrices = [L[n][0] for L in self.layers for n in ("attn_q", "attn_k", "attn_v", "attn_out", "ffn_up", "ffn_down")]
        # f32 weights ask for exact maths: f32 K/V in the fused attention, GELU in f32 ops
        self.exact = all(m.dtype == DType.F32 for m in matrices)

    def build(self, ctx: Context, pixels: Tensor) -> Tensor:
        """pixels [size, size, 3, 1] f32 -> image embeddings [n_embd_text, n_tokens]."""
        c = self.config
        side = c.image_size // c.patch_size
        with ctx:
            x = patch_embed(self.patch_w, pixels, c.patch_size)                    # [n_embd, n_patches]
            x = x.add(self.patch_b).add(self.pos).named("v_inp")
            head_dim = c.n_embd // c.n_head
            for il, L in enumerate(self.layers):
                cur = _norm(x, *L["ln1"], c.eps)
                q = L["attn_q"][0].mul_mat(cur).add(L["attn_q"][1]).reshape(head_dim, c.n_head, c.n_patches)
                k = L["attn_k"][0].mul_mat(cur).add(L["attn_k"][1]).reshape(head_dim, c.n_head, c.n_patches)
                v = L["attn_v"][0].mul_mat(cur).add(L["attn_v"][1]).reshape(head_dim, c.n_head, c.n_patches)
                # bidirectional over the patches (no mask)
                att = patch_attention(q, k, v, None, 1.0 / math.sqrt(head_dim), exact=self.exact,
                                      flash=self.flash_attn)                        # [n_embd, n_patches]
                x = x.add(L["attn_out"][0].mul_mat(att).add(L["attn_out"][1])).named(f"v_attn_out-{il}")
                cur = _norm(x, *L["ln2"], c.eps)
                cur = gelu_tanh(L["ffn_up"][0].mul_mat(cur).add(L["ffn_up"][1]), self.exact)
                cur = L["ffn_down"][0].mul_mat(cur).add(L["ffn_down"][1])
                x = x.add(cur).named(f"v_out-{il}")
            x = _norm(x, *self.post_ln, c.eps).named("v_post_ln")                 # [n_embd, n_patches]
            # average-pool side x side patches down to (side / pool)^2 tokens
            x = x.transpose().cont().reshape(side, side, c.n_embd)                # [side, side, n_embd]
            x = x.pool_2d(1, c.pool, c.pool, c.pool, c.pool)                      # [side/pool, side/pool, n_embd]
            x = x.reshape(c.n_tokens, c.n_embd).transpose().cont()               # [n_embd, n_tokens]
            x = rms_norm(x, self.soft_emb_norm, c.proj_eps)
            # llama.cpp's files keep HF's [n_embd, n_embd_text] matrix as is: transpose it here.
            # Its converter writes this matrix f16 even in an f32 file; an f32 tower widens it
            # again, since ggml would otherwise round the activations to f16 for the product
            proj = self.proj.cast(DType.F32) if self.exact and self.proj.dtype != DType.F32 else self.proj
            proj = proj.transpose().cont()                                         # [n_embd, n_embd_text]
            return proj.mul_mat(x).named("mm_out")                                 # [n_embd_text, n_tokens]

    def encode(self, sched, pixels) -> "object":
        """numpy [3, size, size] -> numpy [n_tokens, n_embd_text]."""
        c = self.config
        ctx = Context(40 * c.n_layer + 64)
        inp = ctx.input("v_pixels", (c.image_size, c.image_size, 3, 1), DType.F32)
        out = self.build(ctx, inp)
        result, = sched.run(ctx.graph(out), {inp: pixels})
        return result
