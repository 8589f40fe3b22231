"""Python objects over ggml: Tensor/Context/Graph, Backend/Device/Scheduler, GGUF reader."""
from .backend import (Backend, Buffer, Device, Scheduler, cpu_device, default_threads, device_alignment,
                      device_alloc_size, devices)
from .dtypes import DType, row_bytes, traits
from .gguf import GGUFError, GGUFFile, TensorInfo, required
from .plugins import load_backends
from .quant import dequantize, quantize
from . import rpc
from .system import system_info
from .tensor import Context, Graph, Tensor
from .weights import Weights, load_weights, merge_weights

__all__ = ["Backend", "Buffer", "Context", "DType", "Device", "GGUFError", "GGUFFile", "Graph", "Scheduler",
           "Tensor", "TensorInfo", "Weights", "cpu_device", "default_threads", "dequantize", "device_alignment",
           "device_alloc_size", "devices", "load_backends", "load_weights", "merge_weights", "quantize", "required",
           "row_bytes", "rpc", "system_info", "traits"]

load_backends()  # before any device is listed: with dynamic backends, none exists until then
