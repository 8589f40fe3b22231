"""Layers and weight binding shared by the models."""
from .binder import WeightBinder
from .layers import attention, geglu, gelu_tanh, patch_embed, rms_norm

__all__ = ["WeightBinder", "attention", "geglu", "gelu_tanh", "patch_embed", "rms_norm"]
