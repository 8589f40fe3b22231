"""Qwen2.5-VL: Qwen2 text with M-RoPE, a windowed-attention ViT with 2D rope, 2x2 merger."""
from .config import QwenVLConfig
from .images import QwenVLImages
from .text import QwenVLText

MODEL = QwenVLText
IMAGES = QwenVLImages

__all__ = ["IMAGES", "MODEL", "QwenVLConfig", "QwenVLImages", "QwenVLText"]
