#!/usr/bin/env python3
"""Realistic-shape GGUFs with random weights, for bench/bench_text.py (issue 15 §5): a `llama`
file shaped like Llama 3.2 1B and a `qwen2` file shaped like Qwen2.5 1.5B, written in f16 with
llama.cpp's tensor names and keys, then quantized to Q4_K_M by llama.cpp's own `llama-quantize`
(built from the pinned sdist), so both engines read exactly the same bytes.

    python bench/make_random_gguf.py --out /tmp/bench-models --llama-quantize PATH/llama-quantize
    python bench/bench_text.py --model /tmp/bench-models/llama-1b-q4_k_m.gguf
    python bench/bench_text.py --model /tmp/bench-models/qwen2-1.5b-q4_k_m.gguf

The vocabulary is a byte-level BPE of the real size (256 byte tokens, a few merges, fillers up to
n_vocab): speed depends on its size, not on what it says. Weights are N(0, 0.02) as an untrained
checkpoint; logits are meaningless, the work per token is real.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Shape:
    name: str
    arch: str
    n_vocab: int
    n_embd: int
    n_layer: int
    n_head: int
    n_head_kv: int
    n_ff: int
    rope_base: float
    qkv_bias: bool
    tied: bool


SHAPES = [
    Shape("llama-1b", "llama", 128256, 2048, 16, 32, 8, 8192, 500000.0, False, True),
    Shape("qwen2-1.5b", "qwen2", 151936, 1536, 28, 12, 2, 8960, 1000000.0, True, True),
]


def byte_tokens() -> list[str]:
    """GPT-2's printable stand-ins for the 256 bytes, in byte order."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = {}, 0
    for b in range(256):
        if b in keep:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in range(256)]


def vocabulary(n_vocab: int) -> tuple[list[str], list[str]]:
    tokens = byte_tokens()
    merges = []
    for a, b in (("Ġ", "t"), ("Ġ", "a"), ("h", "e"), ("i", "n"), ("Ġt", "he")):
        merges.append(f"{a} {b}")
        tokens.append(a + b)
    specials = ["<|begin_of_text|>", "<|end_of_text|>"]
    fillers = [f"<|filler_{i}|>" for i in range(n_vocab - len(tokens) - len(specials))]
    return tokens + fillers + specials, merges


def write_f16(shape: Shape, path: Path) -> None:
    import gguf
    rng = np.random.default_rng(0)
    hd = shape.n_embd // shape.n_head
    w = gguf.GGUFWriter(str(path), shape.arch)
    a = shape.arch
    w.add_name(shape.name)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    w.add_uint32(f"{a}.context_length", 8192)
    w.add_uint32(f"{a}.embedding_length", shape.n_embd)
    w.add_uint32(f"{a}.block_count", shape.n_layer)
    w.add_uint32(f"{a}.feed_forward_length", shape.n_ff)
    w.add_uint32(f"{a}.attention.head_count", shape.n_head)
    w.add_uint32(f"{a}.attention.head_count_kv", shape.n_head_kv)
    w.add_uint32(f"{a}.rope.dimension_count", hd)
    w.add_float32(f"{a}.rope.freq_base", shape.rope_base)
    w.add_float32(f"{a}.attention.layer_norm_rms_epsilon", 1e-6 if shape.qkv_bias else 1e-5)
    w.add_uint32(f"{a}.vocab_size", shape.n_vocab)
    tokens, merges = vocabulary(shape.n_vocab)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types([1] * (len(tokens) - 2) + [3, 3])
    w.add_token_merges(merges)
    w.add_bos_token_id(len(tokens) - 2)
    w.add_eos_token_id(len(tokens) - 1)

    def rand(*dims):
        return (rng.standard_normal(dims, dtype=np.float32) * 0.02).astype(np.float16)

    ones = lambda n: np.ones(n, np.float32)  # noqa: E731
    w.add_tensor("token_embd.weight", rand(shape.n_vocab, shape.n_embd))
    w.add_tensor("output_norm.weight", ones(shape.n_embd))
    if not shape.tied:
        w.add_tensor("output.weight", rand(shape.n_vocab, shape.n_embd))
    kv = shape.n_head_kv * hd
    for il in range(shape.n_layer):
        p = f"blk.{il}."
        w.add_tensor(p + "attn_norm.weight", ones(shape.n_embd))
        w.add_tensor(p + "attn_q.weight", rand(shape.n_embd, shape.n_embd))
        w.add_tensor(p + "attn_k.weight", rand(kv, shape.n_embd))
        w.add_tensor(p + "attn_v.weight", rand(kv, shape.n_embd))
        if shape.qkv_bias:
            w.add_tensor(p + "attn_q.bias", np.zeros(shape.n_embd, np.float32))
            w.add_tensor(p + "attn_k.bias", np.zeros(kv, np.float32))
            w.add_tensor(p + "attn_v.bias", np.zeros(kv, np.float32))
        w.add_tensor(p + "attn_output.weight", rand(shape.n_embd, shape.n_embd))
        w.add_tensor(p + "ffn_norm.weight", ones(shape.n_embd))
        w.add_tensor(p + "ffn_gate.weight", rand(shape.n_ff, shape.n_embd))
        w.add_tensor(p + "ffn_up.weight", rand(shape.n_ff, shape.n_embd))
        w.add_tensor(p + "ffn_down.weight", rand(shape.n_embd, shape.n_ff))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file(progress=True)
    w.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--llama-quantize", required=True, help="llama-quantize built from the pinned sdist")
    ap.add_argument("--only", choices=[s.name for s in SHAPES])
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for shape in SHAPES:
        if args.only and shape.name != args.only:
            continue
        f16 = args.out / f"{shape.name}-f16.gguf"
        q4 = args.out / f"{shape.name}-q4_k_m.gguf"
        if not q4.exists():
            write_f16(shape, f16)
            subprocess.run([args.llama_quantize, str(f16), str(q4), "Q4_K_M"], check=True)
            f16.unlink()
        print(q4)
    return 0


if __name__ == "__main__":
    sys.exit(main())
