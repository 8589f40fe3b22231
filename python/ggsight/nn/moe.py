"""Mixture-of-experts pieces shared by the MoE decoders (Llama 4, Qwen3-MoE). Shapes in ggml order.

Experts are stored as llama.cpp stores them: ffn_{gate,up}_exps [n_embd, n_ff_exp, n_expert],
ffn_down_exps [n_ff_exp, n_embd, n_expert], and ggml_mul_mat_id multiplies each token by the
experts its router chose."""
from __future__ import annotations

from ..ggml import Tensor


def experts_swiglu(gate_exps: Tensor, up_exps: Tensor, down_exps: Tensor, x: Tensor, chosen: Tensor) -> Tensor:
    """down(silu(gate(x)) * up(x)) of each chosen expert: x [n_embd, 1 or k, n_tokens] (one row
    per token, broadcast to its k experts, or one per expert slot), chosen [k, n_tokens] i32
    -> [n_embd, k, n_tokens]."""
    gate = gate_exps.mul_mat_id(x, chosen)                                      # [n_ff_exp, k, n_tokens]
    up = up_exps.mul_mat_id(x, chosen)
    return down_exps.mul_mat_id(gate.swiglu_split(up), chosen)                  # [n_embd, k, n_tokens]


def sum_slots(out: Tensor) -> Tensor:
    """[n_embd, k, n_tokens] -> [n_embd, n_tokens]: the k experts' outputs of each token added,
    slot 0 first (as llama.cpp adds them)."""
    n_embd, k, n_tokens = out.ne[0], out.ne[1], out.ne[2]
    total = out.view((n_embd, n_tokens), (out.nb[0], out.nb[2]), 0)
    for j in range(1, k):
        total = total.add(out.view((n_embd, n_tokens), (out.nb[0], out.nb[2]), j * out.nb[1]))
    return total


def top_k_experts(selection: Tensor, k: int) -> Tensor:
    """[n_expert, n_tokens] scores -> [k, n_tokens] i32, the k highest of each token, highest first
    (llama.cpp's ggml_argsort_top_k: a full descending sort, whose CPU kernel keeps equal scores
    in expert order up to 16 experts; see tests/test_qwen3moe_text.py for how torch.topk differs)."""
    order = selection.argsort(descending=True)                                  # [n_expert, n_tokens] i32
    return order.view((k, order.ne[1]), (order.nb[0], order.nb[1]), 0)
