"""Building blocks shared by model graphs. Shapes in ggml order."""
from __future__ import annotations

from ..ggml import Tensor
from ..ggml.ops import ROPE_NORMAL


def rms_norm(x: Tensor, weight: Tensor | None, eps: float) -> Tensor:
    out = x.rms_norm(eps)
    return out.mul(weight) if weight is not None else out


def attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, scale: float, softcap: float = 0.0,
              flash: bool = True) -> Tensor:
    """Fused attention over cache views.

    q [head_dim, n_head, n_tokens]; k, v [head_dim, n_kv, n_head_kv] (views into the cache);
    mask [n_kv, n_tokens] f16 (0 or -inf). Returns [head_dim * n_head, n_tokens].
    """
    head_dim, n_head, n_tokens = q.ne[0], q.ne[1], q.ne[2]
    q = q.permute(0, 2, 1, 3)                                  # [head_dim, n_tokens, n_head]
    if not flash:
        kq = k.mul_mat(q)                                      # [n_kv, n_tokens, n_head]
        if softcap:
            kq = kq.scale(scale / softcap).tanh().scale(softcap)
            scale = 1.0
        kq = kq.soft_max(mask, scale)
        vt = v.permute(1, 0, 2, 3).cont()                      # [n_kv, head_dim, n_head_kv]
        out = vt.mul_mat(kq)                                   # [head_dim, n_tokens, n_head]
        return out.permute(0, 2, 1, 3).cont().reshape(head_dim * n_head, n_tokens)
    out = q.flash_attn(k, v, mask, scale=scale, softcap=softcap).set_prec_f32()  # [head_dim, n_head, n_tokens]
    return out.reshape(head_dim * n_head, n_tokens)


def rope_2d(t: Tensor, pos_a: Tensor, pos_b: Tensor, base: float, freq_scale_b: float = 1.0) -> Tensor:
    """Axial rope of a vision tower's q or k [head_dim, n_head, n]: the first half of each head
    turns with pos_a, the second with pos_b (freq_scale_b on its frequencies), each half's
    rotated pairs adjacent (ROPE_NORMAL)."""
    half, n_head, n = t.ne[0] // 2, t.ne[1], t.ne[2]
    first = t.view((half, n_head, n), (t.nb[0], t.nb[1], t.nb[2]), 0)
    second = t.view((half, n_head, n), (t.nb[0], t.nb[1], t.nb[2]), half * t.nb[0])
    first = first.rope(pos_a, half, ROPE_NORMAL, freq_base=base)
    second = second.rope(pos_b, half, ROPE_NORMAL, freq_base=base, freq_scale=freq_scale_b)
    return first.concat(second, 0)


def patch_embed(kernel: Tensor, pixels: Tensor, patch: int) -> Tensor:
    """Non-overlapping patches through a conv kernel [patch, patch, C_in, C_out]:
    pixels [W, H, C_in, 1] -> [C_out, (W / patch) * (H / patch)], patches in raster order.

    ggml's conv_2d unrolls f32 images into f16 columns (a ~2e-4 error on the first layer);
    unrolled in f32 the result equals a reference f32 convolution."""
    from ..ggml import DType
    cols = kernel.im2col(pixels, patch, patch, 0, 0, 1, 1, True, DType.F32)     # [K, W/p, H/p, N]
    k = cols.ne[0]
    cols = cols.reshape(k, cols.ne[1] * cols.ne[2] * cols.ne[3])                 # [K, n_patches * N]
    return kernel.reshape(k, kernel.ne[3]).mul_mat(cols)                         # [C_out, n_patches * N]


_SQRT_2_OVER_PI_X2 = 1.5957691216057308   # 2 * sqrt(2 / pi): 0.5 * (1 + tanh(z)) = sigmoid(2 z)


def gelu_tanh(x: Tensor, exact: bool) -> Tensor:
    """GELU, tanh approximation (HF's gelu_pytorch_tanh). ggml's own op reads a table indexed
    by the f16-rounded input (~1e-3 relative per value, ~6e-4 in a tiny model's logits); exact
    spells it out in f32 ops (five passes instead of one) for f32 models."""
    if not exact:
        return x.gelu()
    inner = x.mul(x.sqr().scale(0.044715)).add(x)                  # x + 0.044715 x^3
    return x.mul(inner.scale(_SQRT_2_OVER_PI_X2).sigmoid())


def geglu(gate: Tensor, up: Tensor, exact: bool) -> Tensor:
    """gelu_tanh(gate) * up (ggml's fused op shares gelu's table)."""
    return gelu_tanh(gate, True).mul(up) if exact else gate.geglu_split(up)


def with_image_rows(x: Tensor, inp) -> Tensor:
    """Token embeddings [n_embd, n_tokens] with image tokens' rows taken from the projector's
    (unscaled, as HF's masked_scatter puts them): `inp` is the batch's BatchInputs."""
    if inp.image_rows is None:
        return x
    return x.concat(inp.image_rows, 1).get_rows(inp.embd_index).named("inp_embd_img")


def output_rows(x: Tensor, inp, norm: Tensor, eps: float) -> Tensor:
    """The final norm of only the rows whose logits the batch wants."""
    x = x.get_rows(inp.outputs) if inp.n_outputs != inp.n_tokens else x
    return rms_norm(x, norm, eps).named("result_norm")
