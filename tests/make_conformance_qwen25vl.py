"""Conformance fixtures for Qwen2.5-VL (text + vision), recorded from transformers.

The tiny random Qwen2_5_VLForConditionalGeneration of tests/make_tiny_hf_qwen25vl.py (GQA,
M-RoPE with uneven sections, a ViT whose 56 px windows really window, full attention on an
uneven set of layers) is converted with `ggsight convert` (f32); for each case HF's own
Qwen2_5_VLProcessor (Pillow image processor) writes the token ids and pixels, the model its
float32 logits at every position and its greedy 16 tokens:

  text_only                    text only
  one_image_non_square         a 200x130 image
  portrait_image               a 90x300 image (taller than wide)
  two_images_different_sizes   a 200x130 and a 112x112 image in one prompt

    python tests/make_conformance_qwen25vl.py [OUT_DIR]   (default: tests/data/conformance/qwen25vl)

Needs torch + transformers; tests/test_conformance.py reads the result without them.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from conformance_record import convert, record_cases  # noqa: E402

DEFAULT_OUT = HERE / "data" / "conformance" / "qwen25vl"
IMAGE = "<|vision_start|><|image_pad|><|vision_end|>"
CASES = [
    ("text_only", "hello world, the tiny model reads text and the window", []),
    ("one_image_non_square", f"hello {IMAGE} what is in the image", [(200, 130, 0)]),
    ("portrait_image", f"{IMAGE} the tall one", [(90, 300, 1)]),
    ("two_images_different_sizes", f"compare {IMAGE} and {IMAGE} please", [(200, 130, 2), (112, 112, 3)]),
]


def hf_inputs(hf_dir: Path, prompt: str, images: list) -> dict:
    """What HF's Qwen2_5_VLProcessor returns for a prompt and still images: its image processor
    (Pillow), its own replace_image_token for the expansion, its tokenizer. (The processor
    class itself insists on a video processor, which needs torchvision.)"""
    from types import SimpleNamespace

    import torch
    import transformers
    tok = transformers.PreTrainedTokenizerFast(tokenizer_file=str(hf_dir / "tokenizer.json"))
    out = {}
    text = prompt
    if images:
        image_processor = transformers.Qwen2VLImageProcessorPil()
        out = dict(image_processor(images=images, return_tensors="pt"))
        this = SimpleNamespace(image_processor=image_processor, image_token="<|image_pad|>")
        parts = prompt.split("<|image_pad|>")
        text = parts[0] + "".join(transformers.Qwen2_5_VLProcessor.replace_image_token(this, out, k) + part
                                  for k, part in enumerate(parts[1:]))
    ids = tok(text, return_tensors="pt")["input_ids"]
    out["input_ids"] = ids
    out["mm_token_type_ids"] = (ids == tok.convert_tokens_to_ids("<|image_pad|>")).to(torch.int32)
    return out


def record(out: Path) -> Path:
    """Build, convert and record every case into `out`; returns it."""
    from make_tiny_hf_qwen25vl import make_tiny_hf_qwen25vl
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        hf_dir = Path(tmp) / "hf"
        model = make_tiny_hf_qwen25vl(hf_dir)
        convert(hf_dir, out)

        def inputs(prompt, images):
            got = hf_inputs(hf_dir, prompt, images)
            extra = {k: got[k] for k in ("pixel_values", "image_grid_thw", "mm_token_type_ids") if k in got}
            return got["input_ids"], extra, {"grids": got["image_grid_thw"].tolist() if images else []}
        return record_cases(out, model, CASES, inputs, IMAGE)


if __name__ == "__main__":
    print(record(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT))
