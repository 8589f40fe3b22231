"""Layers and weight binding shared by the models."""
from .binder import WeightBinder
from .layers import attention, rms_norm

__all__ = ["WeightBinder", "attention", "rms_norm"]
