"""Llama 2 / 3.x and Mistral 7B / Nemo / Small text (llama.cpp's arch "llama"): GQA attention with
adjacent-pair rope (llama3 scaling through rope_freqs.weight), SwiGLU, tied or untied heads, an
optional sliding window."""
from . import convert
from .config import LlamaConfig
from .text import LlamaText

GGUF_ARCHITECTURES = ("llama",)           # general.architecture of the text GGUF
HF_ARCHITECTURES = convert.ARCHITECTURES  # config.json `architectures`
MODEL = LlamaText
IMAGES = None                             # text only (Mistral 3's image glue lives in its own folder)
CONVERT = convert                         # HF -> GGUF (text)
CONVERT_MMPROJ = None

__all__ = ["IMAGES", "LlamaConfig", "LlamaText", "MODEL"]
