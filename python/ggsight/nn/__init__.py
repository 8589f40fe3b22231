"""Layers and weight binding shared by the models."""
from .binder import WeightBinder
from .decoder import (Attention, DecoderConfig, DecoderLayer, DenseDecoder, Rope, SwiGLU, decoder_hparams, linear,
                      rope_freq_scale)
from .layers import attention, geglu, gelu_tanh, output_rows, patch_embed, rms_norm, rope_2d, with_image_rows

__all__ = ["Attention", "DecoderConfig", "DecoderLayer", "DenseDecoder", "Rope", "SwiGLU", "WeightBinder", "attention", "decoder_hparams", "geglu",
           "gelu_tanh", "linear", "output_rows", "patch_embed", "rms_norm", "rope_2d",
           "rope_freq_scale", "with_image_rows"]
