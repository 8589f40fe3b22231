#!/usr/bin/env python3
"""Gemma-3-4B-sized vision tower (random weights): one 896 px image, ggsight vs transformers.

    python bench/bench_vision.py [--threads 2] [--layers 27] [--no-transformers]

Builds the tower in transformers (SigLIP 27 x 1152, 16 heads, MLP 4304, patch 14, 896 px ->
4096 patches -> 256 tokens), writes its mmproj GGUF with ggsight's writer (f32), then times
encoding the same pixels in both and reports the max relative difference.
llama.cpp's llama-mtmd-cli needs a matching text model; it is not driven from here yet.
"""
from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--layers", type=int, default=27)
    ap.add_argument("--no-transformers", action="store_true")
    ap.add_argument("--no-flash", action="store_true", help="ggsight: f32 attention instead of flash attention")
    args = ap.parse_args()
    import torch
    import transformers

    from ggsight.ggml import Backend, GGUFFile, Scheduler, load_weights
    from ggsight.models.gemma3.vision import Gemma3Vision
    from ggsight.store.mmproj_gemma3 import write_mmproj

    torch.set_num_threads(args.threads)
    cfg = transformers.Gemma3Config(
        text_config=dict(vocab_size=512, hidden_size=2560, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=8, num_key_value_heads=4, head_dim=256),
        vision_config=dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=args.layers,
                           num_attention_heads=16, image_size=896, patch_size=14),
        mm_tokens_per_image=256)
    torch.manual_seed(0)
    model = transformers.Gemma3ForConditionalGeneration(cfg).eval()
    with torch.no_grad():
        model.model.multi_modal_projector.mm_input_projection_weight.normal_(0, 0.02)
    pixels = np.random.default_rng(0).uniform(-1, 1, (1, 3, 896, 896)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        state = {k: v.detach().numpy() for k, v in model.state_dict().items()
                 if "vision_tower" in k or "multi_modal_projector" in k}
        path = write_mmproj(f"{tmp}/mmproj.gguf", state, model.config.to_dict())
        f = GGUFFile.open(path)
        vision = Gemma3Vision(f, load_weights(f))
        vision.flash_attn = not args.no_flash
        sched = Scheduler(Backend(n_threads=args.threads))
        t0 = time.perf_counter()
        ours = vision.encode(sched, pixels[0])
        t_ours = time.perf_counter() - t0
        print(f"ggsight:      {t_ours:6.1f} s  ({args.threads} threads, f32 weights)", flush=True)
        if not args.no_transformers:
            t0 = time.perf_counter()
            with torch.no_grad():
                ref = model.model.get_image_features(pixel_values=torch.from_numpy(pixels)).pooler_output[0].numpy()
            t_hf = time.perf_counter() - t0
            err = np.abs(ours - ref).max() / np.abs(ref).max()
            print(f"transformers: {t_hf:6.1f} s  (torch {torch.__version__}, f32)   ratio {t_hf / t_ours:.2f}x")
            print(f"max |diff| / max |ref| = {err:.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
