"""Write a tiny random Gemma 3 GGUF (F32) with every structural feature of the text model on:
5 sliding-window layers + 1 global, GQA, QK-norm, a window (8) far shorter than test prompts."""
from __future__ import annotations

import numpy as np


def write_tiny_gemma3(path, *, n_layer=6, n_embd=64, n_head=4, n_head_kv=2, head_dim=16, n_ff=96, n_vocab=320,
                      window=8, seed=0) -> str:
    import gguf
    rng = np.random.default_rng(seed)
    w = gguf.GGUFWriter(str(path), "gemma3")
    w.add_context_length(512)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head_kv)
    w.add_key_length(head_dim)
    w.add_value_length(head_dim)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_rope_freq_base(1_000_000.0)
    w.add_sliding_window(window)
    tokens = ["<pad>", "<eos>", "<bos>", "<unk>"] + [f"t{i}" for i in range(n_vocab - 4)]
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores([0.0] * n_vocab)
    w.add_token_types([3, 3, 3, 2] + [1] * (n_vocab - 4))
    w.add_bos_token_id(2)
    w.add_eos_token_id(1)
    w.add_add_space_prefix(False)

    def t(name, *np_shape, scale=0.2, around=0.0):
        w.add_tensor(name, (around + scale * rng.standard_normal(np_shape)).astype(np.float32))

    t("token_embd.weight", n_vocab, n_embd, scale=1.0)
    t("output_norm.weight", n_embd, around=1.0)
    for il in range(n_layer):
        p = f"blk.{il}."
        t(p + "attn_norm.weight", n_embd, around=1.0)
        t(p + "attn_q.weight", n_head * head_dim, n_embd)
        t(p + "attn_k.weight", n_head_kv * head_dim, n_embd)
        t(p + "attn_v.weight", n_head_kv * head_dim, n_embd)
        t(p + "attn_q_norm.weight", head_dim, around=1.0)
        t(p + "attn_k_norm.weight", head_dim, around=1.0)
        t(p + "attn_output.weight", n_embd, n_head * head_dim)
        t(p + "post_attention_norm.weight", n_embd, around=1.0)
        t(p + "ffn_norm.weight", n_embd, around=1.0)
        t(p + "ffn_gate.weight", n_ff, n_embd)
        t(p + "ffn_up.weight", n_ff, n_embd)
        t(p + "ffn_down.weight", n_embd, n_ff)
        t(p + "post_ffw_norm.weight", n_embd, around=1.0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return str(path)
