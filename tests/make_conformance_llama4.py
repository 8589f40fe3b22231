"""Conformance fixtures for Llama 4 (text + vision), recorded from transformers.

The tiny random Llama4ForConditionalGeneration of tests/make_tiny_hf_llama4.py (mixture of
experts with a shared expert on alternate layers, chunked attention with a chunk of 8, a NoPE
layer with attention-temperature tuning, QK L2-norm, llama3 rope scaling; tiny tiles) is
converted with `ggsight convert` (f32). For each case HF's own Llama4Processor code writes the
prompt layout (its _prompt_split_image, with the tile separators), HF's tokenizer the ids, and
the model its float32 logits at every position and greedy 16 tokens. Pixel values come from
ggsight's processor, which tests/test_llama4_processor.py checks against HF's (HF's needs
torchvision, which the CPU torch here cannot load):

  text_several_chunks          text only, several chunks of 8 long
  image_2x2_grid               an image that takes a 2x2 tile grid (+ the global tile)
  two_images                   a wide (1x2 grid) and a small (one tile) image

    python tests/make_conformance_llama4.py [OUT_DIR]     (default: tests/data/conformance/llama4)
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from conformance_record import convert, record_cases  # noqa: E402

DEFAULT_OUT = HERE / "data" / "conformance" / "llama4"
IMAGE = "<|image|>"
CASES = [
    ("text_several_chunks", "hello world, the tiny model reads text in chunks of eight tokens and the "
                            "window moves on and on", []),
    ("image_2x2_grid", f"hello {IMAGE} what is in the image", [(100, 90, 0)]),
    ("two_images", f"compare {IMAGE} and {IMAGE} please", [(120, 50, 1), (30, 30, 2)]),
]


def case_inputs(model, hf_dir: Path):
    """(hf_inputs, logits_of) for record_cases: HF's prompt layout and tokenizer, ggsight's
    pixels (see the module docstring), the model's logits computed as its forward would."""
    from types import SimpleNamespace

    import numpy as np
    import torch
    import transformers
    from make_tiny_hf_llama4 import hf_logits

    from ggsight.models.llama4.processor import Llama4ImageConfig, preprocess
    tok = transformers.PreTrainedTokenizerFast(tokenizer_file=str(hf_dir / "tokenizer.json"))
    pre = json.loads((hf_dir / "preprocessor_config.json").read_text())
    vc = model.config.vision_config
    cfg = Llama4ImageConfig(tile_size=vc.image_size, max_patches=pre["max_patches"])
    patches_per_tile = int((vc.image_size // vc.patch_size) ** 2 * vc.pixel_shuffle_ratio ** 2)
    this = SimpleNamespace()

    def hf_inputs(prompt, images):
        text, tiles, aspects = prompt, [], []
        for img in images:
            pixels, aspect = preprocess(img, cfg)
            tiles.append(pixels)
            aspects.append(list(aspect))
        parts = prompt.split(IMAGE)
        if images:
            text = parts[0] + "".join(transformers.Llama4Processor._prompt_split_image(this, a, patches_per_tile) + p
                                      for a, p in zip(aspects, parts[1:]))
        ids = tok(text, return_tensors="pt")["input_ids"]
        extra = {"pixel_values": torch.from_numpy(np.concatenate(tiles))} if images else {}
        return ids, extra, {"aspects": aspects}

    def logits_of(ids, extra):   # transformers 5.24's Llama4ForConditionalGeneration.forward fails
        if "pixel_values" in extra:
            return hf_logits(model, ids, extra["pixel_values"])
        return model.language_model(input_ids=ids).logits
    return hf_inputs, logits_of


def record(out: Path) -> Path:
    from make_tiny_hf_llama4 import make_tiny_hf_llama4
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        hf_dir = Path(tmp) / "hf"
        model = make_tiny_hf_llama4(hf_dir)
        convert(hf_dir, out)
        hf_inputs, logits_of = case_inputs(model, hf_dir)
    return record_cases(out, model, CASES, hf_inputs, IMAGE, logits_of=logits_of)


if __name__ == "__main__":
    print(record(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT))
