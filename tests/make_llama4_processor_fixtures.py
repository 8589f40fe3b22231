"""Fixtures for tests/test_llama4_processor.py, recorded from HF's Llama4ImageProcessor.

HF's processor needs torchvision, which the main environment lacks; run this in a separate one:

    python -m venv /tmp/venv-tv && /tmp/venv-tv/bin/pip install torch torchvision transformers pillow numpy
    /tmp/venv-tv/bin/python tests/make_llama4_processor_fixtures.py [OUT_DIR]
        (default OUT_DIR: tests/data/llama4_processor)

It imports neither ggsight nor its native library. Each pixel case writes <name>.png (the input,
made here from a seeded numpy rng, so the test reads the very same pixels) and <name>.npz:
pixel_values as bfloat16 bit patterns (uint16), aspect_ratios, the config. Small tiles (28 or
56 px) keep the files small. canvases.npz holds, for the default config (336 px tiles) and for
resize_to_max_canvas, only HF's canvas, aspect ratio and resized size for many image sizes.

torchvision resizes uint8 natively only on CPUs with AVX2/AVX-512 or on ARM; elsewhere it takes
a float path that may differ by a grey level. The CPU capability is stored with the fixtures.
"""
from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image

OUT = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "data" / "llama4_processor"
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# name: (height, width, mode, config overrides); comments say what the case exercises (tile 28)
PIXEL_CASES = {
    "square_100": (100, 100, "RGB", {}),          # 4x4 canvas, no resize (never upscale), padding
    "wide_3to1": (60, 180, "RGB", {}),            # 2x6 canvas, downscaled to 56x168
    "tall_1to3": (180, 60, "RGB", {}),            # 6x2 canvas
    "tiny_20": (20, 20, "RGB", {}),               # upscaled to one tile, no global tile
    "grid_2x2": (50, 54, "RGB", {}),              # 2x2 grid padded, plus the global tile
    "downscale_300x220": (300, 220, "RGB", {}),   # 5x3 canvas, antialiased downscale to 114x84
    "rgba_90x130": (90, 130, "RGBA", {}),         # transparency composited onto white
    "grey_64x200": (64, 200, "L", {}),            # greyscale expanded to RGB
    "max_canvas_40x70": (40, 70, "RGB", {"resize_to_max_canvas": True}),  # upscaled to 80x140
    "square_135": (135, 135, "RGB", {}),          # float32 floor in HF: resized to 112x111
    "clip_norm_56": (90, 150, "RGB", {"tile_size": 56, "max_patches": 4,
                                       "image_mean": CLIP_MEAN, "image_std": CLIP_STD}),
}
SMALL = {"tile_size": 28, "max_patches": 16}

# (height, width) for the default config: squares near tile multiples, phone and camera sizes,
# strips, and squares where HF's float32 arithmetic resizes to 1344x1343
CANVAS_SIZES = [(1, 1), (20, 20), (200, 300), (335, 335), (336, 336), (337, 337), (400, 400),
                (672, 672), (673, 672), (1000, 1000), (1344, 1344), (1345, 1344), (2085, 2085),
                (2096, 2096), (2185, 2185), (480, 640), (768, 1024), (600, 800), (1080, 1920),
                (1920, 1080), (3024, 4032), (4032, 3024), (1, 5000), (5000, 1), (100, 3000),
                (3000, 100), (336, 5376), (5376, 336), (333, 999), (999, 333), (123, 456),
                (2000, 500), (500, 2000), (1500, 1600)]


def make_image(rng: np.random.Generator, height: int, width: int, mode: str) -> Image.Image:
    """Smooth waves (compress well as PNG), sharp-edged boxes (stress the filter), mild noise
    (exercise rounding); alpha, when asked for, has opaque, clear and partly clear regions."""
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    img = np.empty((height, width, 4))
    for c in range(4):
        fy, fx, phase = rng.uniform(0.5, 4.0), rng.uniform(0.5, 4.0), rng.uniform(0, 2 * np.pi)
        img[..., c] = 127.5 + 110 * np.sin(2 * np.pi * (fy * y + fx * x) + phase)
    for _ in range(4):
        y0, x0 = rng.integers(0, height), rng.integers(0, width)
        img[y0:y0 + rng.integers(1, height // 2 + 2), x0:x0 + rng.integers(1, width // 2 + 2)] = rng.uniform(0, 255, 4)
    img[..., :3] += rng.normal(0, 4, (height, width, 3))
    arr = np.clip(np.round(img), 0, 255).astype(np.uint8)
    if mode == "L":
        return Image.fromarray(arr[..., 0], "L")
    return Image.fromarray(np.ascontiguousarray(arr[..., :4 if mode == "RGBA" else 3]), mode)


def hf_processor(tile_size=336, max_patches=16, resize_to_max_canvas=False, image_mean=None, image_std=None):
    import transformers
    kwargs = {"image_mean": list(image_mean), "image_std": list(image_std)} if image_mean else {}
    return transformers.Llama4ImageProcessor(size={"height": tile_size, "width": tile_size}, max_patches=max_patches,
                                             resize_to_max_canvas=resize_to_max_canvas, **kwargs)


def run(processor, image: Image.Image):
    import torch
    out = processor(images=image, return_tensors="pt")
    pixels = out["pixel_values"]
    assert pixels.dtype == torch.bfloat16 and pixels.ndim == 4, (pixels.dtype, pixels.shape)
    bits = pixels.contiguous().view(torch.int16).numpy().view(np.uint16)
    return bits, np.asarray(out["aspect_ratios"]).reshape(2).astype(np.int64)


def resized_extent(bits: np.ndarray, aspect: np.ndarray, tile: int) -> tuple[int, int]:
    """(height, width) of the resized image inside the canvas: a constant grey image is never
    -1 after normalising (bf16 0xBF80), the black padding always is."""
    rows, cols = (int(x) for x in aspect)
    tiles = bits[:rows * cols, 0].reshape(rows, cols, tile, tile).transpose(0, 2, 1, 3)
    image = tiles.reshape(rows * tile, cols * tile) != np.uint16(0xBF80)
    return int(image.any(axis=1).sum()), int(image.any(axis=0).sum())


def main() -> None:
    import torch
    import torchvision
    import transformers
    from transformers.image_utils import SizeDict
    from transformers.models.llama4.image_processing_llama4 import find_supported_resolutions
    OUT.mkdir(parents=True, exist_ok=True)
    versions = np.array(f"transformers {transformers.__version__}, torch {torch.__version__}, torchvision "
                        f"{torchvision.__version__}, cpu {torch.backends.cpu.get_cpu_capability()}")
    rng = np.random.default_rng(20250412)
    for name, (height, width, mode, overrides) in PIXEL_CASES.items():
        cfg = {**SMALL, **overrides}
        buf = io.BytesIO()
        make_image(rng, height, width, mode).save(buf, format="PNG", optimize=True)
        (OUT / f"{name}.png").write_bytes(buf.getvalue())
        bits, aspect = run(hf_processor(**cfg), Image.open(io.BytesIO(buf.getvalue())))
        np.savez_compressed(OUT / f"{name}.npz", pixel_bits=bits, aspect_ratios=aspect, versions=versions,
                            tile_size=cfg["tile_size"], max_patches=cfg["max_patches"],
                            resize_to_max_canvas=cfg.get("resize_to_max_canvas", False),
                            mean=np.array(cfg.get("image_mean", (0.5,) * 3)),
                            std=np.array(cfg.get("image_std", (0.5,) * 3)))
        print(f"{name}: {height}x{width} {mode} -> pixels {bits.shape}, aspect {aspect.tolist()}")

    tables = {}
    for key, max_canvas in (("default", False), ("max_canvas", True)):
        processor, rows = hf_processor(resize_to_max_canvas=max_canvas), []
        for height, width in CANVAS_SIZES:
            bits, aspect = run(processor, Image.new("RGB", (width, height), (200, 200, 200)))
            resized = resized_extent(bits, aspect, 336)
            rows.append([height, width, *(aspect * 336), *aspect, *resized])
            print(f"{key} {height}x{width}: aspect {aspect.tolist()} resized {resized}")
        tables[key] = np.array(rows, np.int64)   # [n, 8]: h, w, canvas h, w, rows, cols, resized h, w
    find_supported_resolutions.cache_clear()
    supported = np.array(find_supported_resolutions(16, SizeDict(height=336, width=336)), np.int64)
    np.savez_compressed(OUT / "canvases.npz", supported_16_336=supported, versions=versions, **tables)
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"wrote {len(list(OUT.iterdir()))} files, {total / 1024:.0f} KiB, to {OUT}")


if __name__ == "__main__":
    main()
