"""Layers and weight binding shared by the models."""
from .binder import WeightBinder
from .layers import attention, geglu, gelu_tanh, output_rows, patch_embed, rms_norm, with_image_rows

__all__ = ["WeightBinder", "attention", "geglu", "gelu_tanh", "output_rows", "patch_embed", "rms_norm", "with_image_rows"]
