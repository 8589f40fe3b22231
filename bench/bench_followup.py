#!/usr/bin/env python3
"""Time to first token of a follow-up question about the same image, relative to the first turn.

    python bench/bench_followup.py [--threads 2] [--outtype bf16] [--layers 27]

The tiny Gemma 3 text model of the conformance fixtures (tests/data/conformance/gemma3: its
vocabulary has Gemma's image tokens, which the 270M's lacks) with a Gemma-3-4B-sized SigLIP mmproj
(random weights: 27 x 1152, 896 px, projecting to its 32-wide embeddings). Turn 1
asks about an image (vision tower + prefill); turn 2 asks a follow-up in the same chat (the image
embedding cache and the reused KV prefix leave only the new tokens); turn 3 starts a new chat
with the same image (the embedding is cached, the prompt differs from the start)."""
from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np


def write_tower(path: str, layers: int, outtype: str, width: int) -> str:
    from ggsight.models.gemma3.convert_mmproj import write_mmproj
    rng = np.random.default_rng(0)
    d, f, pre = 1152, 4304, "model.vision_tower.vision_model."
    st = {pre + "embeddings.patch_embedding.weight": rng.normal(0, .02, (d, 3, 14, 14)),
          pre + "embeddings.patch_embedding.bias": np.zeros(d),
          pre + "embeddings.position_embedding.weight": rng.normal(0, .02, (4096, d)),
          pre + "post_layernorm.weight": np.ones(d), pre + "post_layernorm.bias": np.zeros(d),
          "model.multi_modal_projector.mm_soft_emb_norm.weight": np.zeros(d),
          "model.multi_modal_projector.mm_input_projection_weight": rng.normal(0, .02, (d, width))}
    for i in range(layers):
        p = f"{pre}encoder.layers.{i}."
        for n, shape in [("self_attn.q_proj", (d, d)), ("self_attn.k_proj", (d, d)), ("self_attn.v_proj", (d, d)),
                         ("self_attn.out_proj", (d, d)), ("mlp.fc1", (f, d)), ("mlp.fc2", (d, f))]:
            st[p + n + ".weight"], st[p + n + ".bias"] = rng.normal(0, .02, shape), np.zeros(shape[0])
        for n in ("layer_norm1", "layer_norm2"):
            st[p + n + ".weight"], st[p + n + ".bias"] = np.ones(d), np.zeros(d)
    cfg = dict(vision_config=dict(image_size=896, patch_size=14, hidden_size=d, intermediate_size=f,
                                  num_hidden_layers=layers, num_attention_heads=16),
               text_config=dict(hidden_size=width), mm_tokens_per_image=256)
    return write_mmproj(path, st, cfg, outtype=outtype)


def first_token_seconds(model, messages) -> float:
    t0 = time.perf_counter()
    for _ in model.chat(messages, stream=True, options={"temperature": 0, "num_predict": 1}):
        return time.perf_counter() - t0
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--layers", type=int, default=27)
    ap.add_argument("--outtype", default="bf16", choices=["f32", "f16", "bf16"])
    args = ap.parse_args()
    from pathlib import Path

    from PIL import Image

    import ggsight
    text = Path(__file__).parent.parent / "tests" / "data" / "conformance" / "gemma3" / "text.gguf"
    with tempfile.TemporaryDirectory() as tmp:
        mmproj = write_tower(f"{tmp}/mmproj.gguf", args.layers, args.outtype, width=32)
        img = f"{tmp}/cat.png"
        Image.fromarray(np.random.default_rng(1).integers(0, 256, (600, 800, 3), dtype=np.uint8)).save(img)
        m = ggsight.load(text, mmproj=mmproj, n_ctx=2048, n_threads=args.threads)
        first = [{"role": "user", "content": "What is in this picture?", "images": [img]}]
        t1 = first_token_seconds(m, first)
        follow = first + [{"role": "assistant", "content": "A cat on a sofa."},
                          {"role": "user", "content": "What colour is the sofa?"}]
        t2 = first_token_seconds(m, follow)
        reused = m.last_reused
        t3 = first_token_seconds(m, [{"role": "user", "content": "Describe the image in detail.", "images": [img]}])
    print(f"tiny Gemma 3 text + Gemma-3-4B-sized tower ({args.layers} layers, {args.outtype} mmproj), {args.threads} threads\n")
    print("| turn | time to first token | vs first turn |")
    print("|---|---:|---:|")
    print(f"| 1: question about a new image | {t1 * 1000:8.0f} ms | 100 % |")
    print(f"| 2: follow-up, same chat ({reused} tokens reused) | {t2 * 1000:8.0f} ms | {t2 / t1:.1%} |")
    print(f"| 3: new chat, same image (embedding cached) | {t3 * 1000:8.0f} ms | {t3 / t1:.1%} |")
    print(f"\nvision tower runs: {m.image_encodes}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
