"""Tiny Hugging Face checkpoints written with numpy alone (no torch, no safetensors package), so
the converter can be tested in an environment that has only ggsight's runtime dependencies.

The Gemma 3 text checkpoint has the shapes and config of tests/make_tiny_hf_gemma3.py (the one
transformers builds and checks), with weights drawn by numpy instead of torch."""
from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

from make_tiny_hf_gemma3 import CHAT_TEMPLATE, tiny_tokenizer_json

_LAYER = ("input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
          "post_feedforward_layernorm", "self_attn.q_norm", "self_attn.k_norm")


def write_safetensors(path: Path, tensors: dict[str, np.ndarray], bf16: bool = False) -> None:
    """The safetensors layout (8-byte header length, JSON header, raw little-endian data);
    bf16=True stores float32 arrays as BF16 (their top 16 bits, i.e. truncated)."""
    header, chunks, offset = {}, [], 0
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr, np.float32)
        raw = (arr.view(np.uint32) >> 16).astype(np.uint16).tobytes() if bf16 else arr.tobytes()
        header[name] = {"dtype": "BF16" if bf16 else "F32", "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    head = json.dumps(header).encode()
    head += b" " * (-len(head) % 8)   # the format aligns the data to 8 bytes
    Path(path).write_bytes(struct.pack("<Q", len(head)) + head + b"".join(chunks))


def gemma3_text_config(n_vocab: int, softcap: float | None = 30.0) -> dict:
    rope = {"sliding_attention": {"rope_type": "default", "rope_theta": 10_000.0},
            "full_attention": {"rope_type": "linear", "factor": 2.0, "rope_theta": 1_000_000.0}}
    return {"architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text", "vocab_size": n_vocab,
            "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 6, "num_attention_heads": 4,
            "num_key_value_heads": 2, "head_dim": 16, "max_position_embeddings": 512, "sliding_window": 8,
            "sliding_window_pattern": 6, "rope_parameters": rope, "query_pre_attn_scalar": 24,
            "final_logit_softcapping": softcap, "attn_logit_softcapping": None, "rms_norm_eps": 1e-6,
            "pad_token_id": 0, "eos_token_id": 1, "bos_token_id": 2, "tie_word_embeddings": True}


def gemma3_text_tensors(config: dict, seed: int = 0) -> dict[str, np.ndarray]:
    """HF names -> float32 weights, drawn as make_tiny_hf_gemma3 draws them (norm weights
    around 0, i.e. (1 + w) around 1; a large final norm so the softcap bends the logits)."""
    rng = np.random.default_rng(seed)
    d, ff, hd = config["hidden_size"], config["intermediate_size"], config["head_dim"]
    nh, nkv = config["num_attention_heads"], config["num_key_value_heads"]

    def mat(rows, cols):
        return (rng.standard_normal((rows, cols)) / cols ** 0.5).astype(np.float32)

    out = {"model.embed_tokens.weight": (0.1 * rng.standard_normal((config["vocab_size"], d))).astype(np.float32)}
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."
        for name in _LAYER:
            n = hd if name.endswith(("q_norm", "k_norm")) else d
            out[p + name + ".weight"] = (0.3 * rng.standard_normal(n)).astype(np.float32)
        out[p + "self_attn.q_proj.weight"] = mat(nh * hd, d)
        out[p + "self_attn.k_proj.weight"] = mat(nkv * hd, d)
        out[p + "self_attn.v_proj.weight"] = mat(nkv * hd, d)
        out[p + "self_attn.o_proj.weight"] = mat(d, nh * hd)
        out[p + "mlp.gate_proj.weight"] = mat(ff, d)
        out[p + "mlp.up_proj.weight"] = mat(ff, d)
        out[p + "mlp.down_proj.weight"] = mat(d, ff)
    out["model.norm.weight"] = (5.0 + 0.3 * rng.standard_normal(d)).astype(np.float32)
    return out


def write_gemma3_text(out_dir: Path, *, seed: int = 0, softcap: float | None = 30.0, bf16: bool = False,
                      tokenizer_json: bool = True) -> dict[str, np.ndarray]:
    """A Gemma3ForCausalLM checkpoint in out_dir (config, weights, tokenizer files); returns
    the weights by HF name. tokenizer_json=False leaves the tokenizer to the caller (e.g. a
    tokenizer.model)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tj = tiny_tokenizer_json()
    config = gemma3_text_config(len(tj["model"]["vocab"]), softcap)
    tensors = gemma3_text_tensors(config, seed)
    write_safetensors(out_dir / "model.safetensors", tensors, bf16=bf16)
    (out_dir / "config.json").write_text(json.dumps(config), encoding="utf-8")
    if tokenizer_json:
        (out_dir / "tokenizer.json").write_text(json.dumps(tj, ensure_ascii=False), encoding="utf-8")
    (out_dir / "tokenizer_config.json").write_text(json.dumps({
        "bos_token": "<bos>", "eos_token": "<eos>", "unk_token": "<unk>", "pad_token": "<pad>",
        "add_bos_token": True, "add_eos_token": False, "chat_template": CHAT_TEMPLATE}), encoding="utf-8")
    return tensors
