"""Qwen2.5-VL: Qwen2 text with M-RoPE, a windowed-attention ViT with 2D rope, 2x2 merger."""
from . import convert, convert_mmproj
from .config import QwenVLConfig
from .images import QwenVLImages
from .text import QwenVLText

GGUF_ARCHITECTURES = ("qwen2vl",)  # general.architecture of the text GGUF
HF_ARCHITECTURES = convert.ARCHITECTURES  # config.json `architectures`
MODEL = QwenVLText
IMAGES = QwenVLImages
PROJECTOR_TYPES = (convert_mmproj.PROJECTOR_TYPE,)  # clip.projector_type of its mmproj files
CONVERT = convert                # HF -> GGUF (text)
CONVERT_MMPROJ = convert_mmproj  # HF -> mmproj GGUF

__all__ = ["IMAGES", "MODEL", "QwenVLConfig", "QwenVLImages", "QwenVLText"]
