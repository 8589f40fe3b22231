"""Mistral 3 text (Mistral3ForConditionalGeneration's language model, a MistralModel):
models/llama's mapping on the checkpoint's text_config, written as arch "llama" (the decoder
llama.cpp's older converters wrote for Mistral Small 3.1, and which every reader of GGUF runs).

The language model's tensors sit under model.language_model. (transformers 5) or
language_model.model. (Hub checkpoints of transformers 4), the head at lm_head (5) or
language_model.lm_head (4); the tower and projector go to the mmproj (convert_mmproj.py)."""
from __future__ import annotations

import re
from typing import Any

from ..hf_common import architecture, text_config
from ..llama import convert as llama

ARCH = llama.ARCH
ARCHITECTURES = ("Mistral3ForConditionalGeneration",)

_TEXT = re.compile(r"^(?:model\.language_model\.|language_model\.model\.)(.+)$")
_HEAD = re.compile(r"^(?:language_model\.)?lm_head\.(.+)$")
_VISION = re.compile(r"^(?:model\.)?(?:vision_tower|multi_modal_projector)\.")


class Hparams:
    """What store/convert.py reads hyperparameters with: llama's, of the text_config."""

    @staticmethod
    def from_config(config: dict[str, Any], where: str) -> llama.LlamaHparams:
        architecture(config, ARCHITECTURES, where, "Mistral 3")
        text = {**text_config(config), "architectures": ["MistralForCausalLM"]}
        return llama.LlamaHparams.from_config(text, where)


def causal_lm_name(hf_name: str) -> str | None:
    """The name the tensor has in a MistralForCausalLM checkpoint; None for the vision side."""
    if _VISION.match(hf_name):
        return None
    if m := _TEXT.match(hf_name):
        return "model." + m.group(1)
    if m := _HEAD.match(hf_name):
        return "lm_head." + m.group(1)
    raise ValueError(f"unexpected tensor {hf_name!r}")


def gguf_name(hf_name: str, hp) -> str | None:
    name = causal_lm_name(hf_name)
    return None if name is None else llama.gguf_name(name, hp)


write_metadata = llama.write_metadata
expected_names = llama.expected_names
fix_tensor = llama.fix_tensor
extra_tensors = llama.extra_tensors
write_tokenizer = llama.write_tokenizer
