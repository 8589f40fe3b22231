"""Conformance fixtures for Mistral 3 (text + Pixtral vision), recorded from transformers.

The tiny random Mistral3ForConditionalGeneration of tests/make_tiny_hf_mistral3.py (GQA, an
untied head, a 3-layer Pixtral tower with 2D rope and a SiLU-gated MLP, the 2x2 patch merger)
is converted with `ggsight convert` (f32); for each case HF's own processor logic (the Pillow
PixtralImageProcessorPil at patch x merge = 28 px, as PixtralProcessor drives it, and
PixtralProcessor's replace_image_token) writes the token ids and pixels, the model its float32
logits at every position and its greedy 16 tokens:

  text_only                    text only
  one_image_non_square         a 200x130 image: scaled down to the 168 px longest edge (168x109),
                               then each side rounded up to whole tokens: 168x112, 4 rows of 6
  two_images_different_sizes   a 200x130 and a 60x90 image (rounded up to 84x112: 4 rows of 3)

    python tests/make_conformance_mistral3.py [OUT_DIR]   (default: tests/data/conformance/mistral3)

Needs torch + transformers; tests/test_conformance.py reads the result without them.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from conformance_record import convert, record_cases  # noqa: E402

DEFAULT_OUT = HERE / "data" / "conformance" / "mistral3"
IMAGE = "[IMG]"
CASES = [
    ("text_only", "[INST]hello world, the tiny model reads text[/INST]", []),
    ("one_image_non_square", f"[INST]hello {IMAGE} what is in the image[/INST]", [(200, 130, 0)]),
    ("two_images_different_sizes", f"[INST]compare {IMAGE} and {IMAGE} please[/INST]", [(200, 130, 2), (60, 90, 3)]),
]


def pixtral_processor_class():
    """transformers' PixtralProcessor class. Its module imports the torchvision image processor
    for one function, get_resize_output_image_size, which the Pillow module has too (the same
    code): without torchvision, that module stands in for the other one."""
    import importlib
    import sys
    try:
        import torchvision  # noqa: F401
    except ImportError:
        name = "transformers.models.pixtral.image_processing_pixtral"
        sys.modules.setdefault(name, importlib.import_module(name.replace("processing_", "processing_pil_")))
    return importlib.import_module("transformers.models.pixtral.processing_pixtral").PixtralProcessor


def hf_processor_parts(hf_dir: Path):
    """(tokenizer, image processor, processor stand-in) of the checkpoint: the Pillow image
    processor and the attributes PixtralProcessor.replace_image_token reads (instantiating the
    processor class needs torchvision)."""
    import json
    from types import SimpleNamespace

    import transformers
    tok = transformers.PreTrainedTokenizerFast.from_pretrained(str(hf_dir))
    image_processor = transformers.PixtralImageProcessorPil.from_pretrained(str(hf_dir))
    pc = json.loads((hf_dir / "processor_config.json").read_text())
    this = SimpleNamespace(patch_size=pc["patch_size"], spatial_merge_size=pc["spatial_merge_size"],
                           image_token=pc["image_token"], image_break_token=pc["image_break_token"],
                           image_end_token=pc["image_end_token"])
    return tok, image_processor, this


def hf_inputs(hf_dir: Path, prompt: str, images: list) -> dict:
    """What HF's PixtralProcessor returns for a prompt and images (input_ids, pixel_values,
    image_sizes)."""
    tok, image_processor, this = hf_processor_parts(hf_dir)
    out = {}
    text = prompt
    if images:
        out = dict(image_processor(images=images, patch_size=this.patch_size * this.spatial_merge_size,
                                   return_tensors="pt"))
        parts = prompt.split(this.image_token)
        text = parts[0] + "".join(pixtral_processor_class().replace_image_token(this, out, k) + part
                                  for k, part in enumerate(parts[1:]))
    out["input_ids"] = tok(text, return_tensors="pt")["input_ids"]
    return out


def case_inputs(hf_dir: Path):
    def inputs(prompt, images):
        got = hf_inputs(hf_dir, prompt, images)
        extra = {k: got[k] for k in ("pixel_values", "image_sizes") if k in got}
        return got["input_ids"], extra, {"image_sizes": got["image_sizes"].tolist() if images else []}
    return inputs


def record(out: Path) -> Path:
    """Build, convert and record every case into `out`; returns it."""
    from make_tiny_hf_mistral3 import make_tiny_hf_mistral3
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        hf_dir = Path(tmp) / "hf"
        model = make_tiny_hf_mistral3(hf_dir)
        convert(hf_dir, out)
        return record_cases(out, model, CASES, case_inputs(hf_dir), IMAGE)


if __name__ == "__main__":
    print(record(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT))
