"""Layers and weight binding shared by the models."""
from .binder import WeightBinder
from .layers import attention, patch_embed, rms_norm

__all__ = ["WeightBinder", "attention", "patch_embed", "rms_norm"]
