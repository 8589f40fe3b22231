"""Writing GGUF tensors, for the converter driver (store/convert.py) and each model folder's mmproj
writer: the type a tensor is stored as, its encoding, and streaming tensors to the file."""
from __future__ import annotations

import sys

import numpy as np


def out_type(name: str, shape: tuple[int, ...], outtype: str):
    """The GGML type a tensor is written as: 1-D tensors (norms) stay f32, and so do MoE routers,
    as llama.cpp keeps them (the top-k choice of experts is sensitive to rounding)."""
    import gguf
    T = gguf.GGMLQuantizationType
    if len(shape) < 2 or outtype == "f32" or name.endswith("ffn_gate_inp.weight"):
        return T.F32
    if outtype == "f16":
        return T.F16
    if outtype == "bf16":
        return T.BF16
    return T.Q8_0 if shape[-1] % 32 == 0 else T.F16


def encode(data: np.ndarray, qtype) -> np.ndarray:
    import gguf
    T = gguf.GGMLQuantizationType
    data = np.ascontiguousarray(data, dtype=np.float32)
    if qtype == T.F32:
        return data
    if qtype == T.F16:
        return data.astype(np.float16)
    return gguf.quants.quantize(data, qtype)


def byte_shape(shape: tuple[int, ...], qtype) -> tuple[tuple[int, ...], np.dtype, int]:
    """(numpy shape, numpy dtype, nbytes) of the encoded array, without encoding it."""
    import gguf
    T = gguf.GGMLQuantizationType
    if qtype in (T.F32, T.F16):
        dt = np.dtype(np.float32 if qtype == T.F32 else np.float16)
        return shape, dt, int(np.prod(shape)) * dt.itemsize
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    bshape = (*shape[:-1], shape[-1] // block * size)
    return bshape, np.dtype(np.uint8), int(np.prod(bshape))


class Progress:
    def __init__(self, total: int, enabled: bool):
        self.bar = None
        self.total, self.done, self.enabled = total, 0, enabled
        if enabled:
            try:
                from tqdm import tqdm
                self.bar = tqdm(total=total, unit="B", unit_scale=True, desc="convert", file=sys.stderr)
            except ImportError:
                pass

    def update(self, nbytes: int, name: str) -> None:
        self.done += nbytes
        if self.bar is not None:
            self.bar.set_postfix_str(name, refresh=False)
            self.bar.update(nbytes)
        elif self.enabled:
            print(f"\rconvert {100 * self.done / max(self.total, 1):5.1f}% {name:<40}",
                  end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.enabled:
            print(file=sys.stderr)


def write_tensors(w, jobs, progress: bool) -> None:
    """Header, metadata and tensor infos, then the tensor data one tensor at a time.
    jobs: (GGUF name, shape in PyTorch order, GGML type, () -> float array)."""
    infos = []
    for name, shape, qtype, _ in jobs:
        bshape, dt, nbytes = byte_shape(shape, qtype)
        w.add_tensor_info(name, bshape, dt, nbytes, raw_dtype=None if dt != np.uint8 else qtype)
        infos.append(nbytes)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    bar = Progress(sum(infos), progress)
    for (name, _, qtype, load), nbytes in zip(jobs, infos):
        w.write_tensor_data(encode(load(), qtype))
        bar.update(nbytes, name)
    bar.close()
