"""Convert a Hugging Face checkpoint directory to GGUF in llama.cpp's convention.

    from ggsight.store.convert import convert_hf
    convert_hf("gemma-3-1b-it/", "gemma-3-1b-it-f16.gguf", outtype="f16")

Reads config.json + *.safetensors (+ tokenizer.json or tokenizer.model, tokenizer_config.json),
writes one text GGUF. Tensors are streamed: one is in memory at a time. The safetensors files
are parsed here (8-byte header length + JSON header + raw data), so bf16 checkpoints need
neither torch nor a bf16-aware numpy.

Which checkpoints convert (config.json `architectures`) is what the model folders declare
(ggsight.models: each folder's HF_ARCHITECTURES, CONVERT and CONVERT_MMPROJ). A text mapping has
ARCH, Hparams.from_config, write_metadata, gguf_name (a GGUF name, several for a tensor that is
split, or None), expected_names, fix_tensor(name, data, n_vocab, hp) and write_tokenizer, and may have gguf_shape(name,
hf_shape, hp) (for tensors that are split or transposed), extra_tensors(hp) (tensors computed
from the config, such as rope_freqs) and stacked(hf_name, hp) -> (GGUF name, index) or None (one
slice of a GGUF tensor stacked from several HF tensors, such as one expert of Qwen3-MoE's); an
mmproj writer has convert(hf_dir, config, ckpt, out_path, outtype f32 / f16 / bf16, progress).
The vision tower of a multimodal checkpoint goes to a separate mmproj file (convert_mmproj).
"""
from __future__ import annotations

import json
import re
import struct
import sys
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..models import folder_for_hf, hf_architectures
from ..models.hf_common import ConvertError
from ..models.hf_common import read_json as _read_json
from ..models.writing import out_type, write_tensors

__all__ = ["ConvertError", "convert_hf", "convert_mmproj", "read_safetensors", "add_parser"]

OUTTYPES = ("f32", "f16", "bf16", "q8_0")


def _require_gguf() -> None:
    """gguf is a runtime dependency, but an environment assembled by hand may lack it: one clear
    line instead of a traceback from deep inside a writer."""
    try:
        import gguf  # noqa: F401
    except ImportError as e:
        raise ConvertError(f"converting needs the `gguf` package ({e}): pip install gguf") from None


def _modules(config: dict, where: str):
    """(text mapping, mmproj writer or None) of the model folder that converts this checkpoint."""
    archs = config.get("architectures") or []
    folder = folder_for_hf(archs)
    if folder is None:
        raise ConvertError(f"{where}: unsupported architecture {archs or config.get('model_type')!r}; "
                           f"supported: {', '.join(hf_architectures())}")
    return folder.convert, folder.convert_mmproj


# ---------------------------------------------------------------------------------- safetensors

_ST_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": np.uint16,
              "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8}


def _st_header(path: Path) -> tuple[dict[str, Any], int]:
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise ConvertError(f"{path}: not a safetensors file (too short)")
        (n,) = struct.unpack("<Q", raw)
        try:
            header = json.loads(f.read(n))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ConvertError(f"{path}: not a safetensors file ({e})") from None
    header.pop("__metadata__", None)
    return header, 8 + n


def read_safetensors(path: str | Path) -> Iterator[tuple[str, np.ndarray]]:
    """(name, array) for every tensor of one .safetensors file; BF16 decoded to float32,
    other types as stored (memory-mapped, read on access)."""
    path = Path(path)
    header, start = _st_header(path)
    mm = np.memmap(path, dtype=np.uint8, mode="r")
    for name, info in header.items():
        yield name, _st_array(path, mm, start, name, info)


def _st_array(path: Path, mm: np.ndarray, start: int, name: str, info: dict) -> np.ndarray:
    dtype = _ST_DTYPES.get(info["dtype"])
    if dtype is None:
        raise ConvertError(f"{path}: tensor {name!r} has unsupported dtype {info['dtype']}")
    b, e = info["data_offsets"]
    arr = mm[start + b:start + e].view(dtype).reshape(info["shape"])
    if info["dtype"] == "BF16":   # bf16 is the top half of a float32
        arr = (arr.astype(np.uint32) << 16).view(np.float32)
    return arr


class _Checkpoint:
    """The tensors of all *.safetensors files of a directory, by name, loaded on demand."""

    def __init__(self, hf_dir: Path):
        files = sorted(hf_dir.glob("*.safetensors"))
        if not files:
            raise ConvertError(f"{hf_dir}: no *.safetensors files (other weight formats are not supported)")
        self.where: dict[str, tuple[Path, int, dict]] = {}
        for path in files:
            header, start = _st_header(path)
            for name, info in header.items():
                self.where[name] = (path, start, info)
        self._maps: dict[Path, np.ndarray] = {}

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.where[name][2]["shape"])

    def load(self, name: str) -> np.ndarray:
        path, start, info = self.where[name]
        if path not in self._maps:
            self._maps[path] = np.memmap(path, dtype=np.uint8, mode="r")
        return _st_array(path, self._maps[path], start, name, info)


# ------------------------------------------------------------------------------------- tensors

def _load(ckpt: _Checkpoint, hf_names: str | tuple[str, ...]) -> np.ndarray:
    """One HF tensor, or several stacked on a new first axis (see `stacked`)."""
    if isinstance(hf_names, str):
        return ckpt.load(hf_names)
    return np.stack([ckpt.load(h) for h in hf_names])


def _sort_key(name: str) -> tuple:
    m = re.match(r"blk\.(\d+)\.", name)
    return (1, int(m.group(1)), name) if m else (0 if name.startswith("token_embd") else 2, 0, name)


def convert_hf(hf_dir: str | Path, out_path: str | Path, outtype: str = "f32",
               progress: bool = True) -> Path:
    """Convert the HF checkpoint in `hf_dir` to a GGUF file at `out_path`; returns out_path.

    outtype: "f32", "f16", "bf16" (2-D weights in that type, 1-D norms f32) or "q8_0" (2-D
    weights whose rows are a multiple of 32 in Q8_0, the rest f16/f32)."""
    _require_gguf()
    import gguf
    hf_dir, out_path = Path(hf_dir), Path(out_path)
    if outtype not in OUTTYPES:
        raise ValueError(f"outtype {outtype!r}: expected one of {', '.join(OUTTYPES)}")
    cfg_path = hf_dir / "config.json"
    if not cfg_path.is_file():
        raise ConvertError(f"{cfg_path}: missing (not a Hugging Face checkpoint directory?)")
    config = _read_json(cfg_path)
    mod, _ = _modules(config, str(cfg_path))
    hp = mod.Hparams.from_config(config, str(cfg_path))
    ckpt = _Checkpoint(hf_dir)

    plan: dict[str, str] = {}   # gguf name -> hf name
    shapes: dict[str, tuple[int, ...]] = {}   # gguf name -> shape in PyTorch order
    gguf_shape = getattr(mod, "gguf_shape", None)
    slices: dict[str, dict[int, str]] = {}   # stacked gguf name -> index -> hf name
    for hf_name in ckpt.where:
        part = mod.stacked(hf_name, hp) if hasattr(mod, "stacked") else None
        if part is not None:
            slices.setdefault(part[0], {})[part[1]] = hf_name
            continue
        try:
            names = mod.gguf_name(hf_name, hp)
            names = (names,) if isinstance(names, str) else names or ()
            for name in names:
                shapes[name] = gguf_shape(name, ckpt.shape(hf_name), hp) if gguf_shape else ckpt.shape(hf_name)
        except ValueError as e:
            raise ConvertError(f"{hf_dir}: {e}") from None
        for name in names:
            if name in plan:
                raise ConvertError(f"{hf_dir}: {hf_name!r} and {plan[name]!r} both map to {name}")
            plan[name] = hf_name
    for name, parts in slices.items():   # every index 0..n-1, of one shape, stacked on a new first axis
        order = [parts[i] for i in sorted(parts)]
        if sorted(parts) != list(range(len(parts))) or len({ckpt.shape(h) for h in order}) != 1:
            raise ConvertError(f"{hf_dir}: the parts of {name} ({', '.join(order[:4])} ...) are not "
                               f"slices 0..{len(parts) - 1} of one shape")
        if name in plan:
            raise ConvertError(f"{hf_dir}: {plan[name]!r} and {order[0]!r} both map to {name}")
        plan[name], shape = tuple(order), (len(order), *ckpt.shape(order[0]))
        try:
            shapes[name] = gguf_shape(name, shape, hp) if gguf_shape else shape
        except ValueError as e:
            raise ConvertError(f"{hf_dir}: {e}") from None
    extra = mod.extra_tensors(hp) if hasattr(mod, "extra_tensors") else {}
    for name, data in extra.items():
        if name in plan:
            raise ConvertError(f"{hf_dir}: {name} is computed from config.json, but {plan[name]!r} maps to it")
        shapes[name] = data.shape
    missing = sorted(mod.expected_names(hp) - plan.keys(), key=_sort_key)
    if missing:
        raise ConvertError(f"{hf_dir}: missing tensors for {', '.join(missing[:8])}"
                           f"{' ...' if len(missing) > 8 else ''} ({len(missing)} in all)")

    out_path.parent.mkdir(parents=True, exist_ok=True)
    w = gguf.GGUFWriter(str(out_path), mod.ARCH)
    try:
        w.add_name(hf_dir.name)
        w.add_file_type({"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
                         "bf16": gguf.LlamaFileType.MOSTLY_BF16,
                         "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[outtype])
        w.add_quantization_version(gguf.GGML_QUANT_VERSION)
        mod.write_metadata(w, hp)
        n_vocab = mod.write_tokenizer(w, hf_dir, config)

        jobs = []
        for name in sorted(shapes, key=_sort_key):
            shape = shapes[name]
            if name in ("token_embd.weight", "output.weight") and n_vocab < shape[0]:
                shape = (n_vocab, *shape[1:])
            elif name == "token_embd.weight" and n_vocab > shape[0]:
                raise ConvertError(f"{hf_dir}: the tokenizer has {n_vocab} tokens, the embedding "
                                   f"only {shape[0]} rows")
            load = ((lambda n=name: extra[n]) if name in extra else
                    (lambda n=name: mod.fix_tensor(n, _load(ckpt, plan[n]), n_vocab, hp)))
            jobs.append((name, shape, out_type(name, shape, outtype), load))
        write_tensors(w, jobs, progress)
    finally:
        w.close()
    return out_path


# -------------------------------------------------------------------------------------- CLI

def add_parser(subparsers) -> None:
    """`ggsight convert HF_DIR OUT.gguf [--outtype f16]`."""
    p = subparsers.add_parser("convert", help="convert a Hugging Face checkpoint directory to GGUF")
    p.add_argument("hf_dir", help="directory with config.json, *.safetensors and the tokenizer")
    p.add_argument("out", nargs="?", help="output .gguf path (or -o)")
    p.add_argument("-o", "--output", dest="out_opt", default=None, metavar="OUT.gguf", help="output .gguf path")
    p.add_argument("--outtype", choices=OUTTYPES, default="f16", help="weight type (default f16)")
    p.add_argument("--mmproj", default=None, metavar="MMPROJ.gguf",
                   help="also write the vision tower + projector file (multimodal checkpoints), in --outtype "
                        "(q8_0: f16)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cli_convert)


def convert_mmproj(hf_dir: str | Path, out_path: str | Path, outtype: str = "f32",
                   progress: bool = False) -> Path:
    """The vision tower + projector of a multimodal checkpoint as an mmproj GGUF (llama.cpp's
    names), by config.json `architectures`.

    outtype f32, f16 or bf16 for the matrices (q8_0 writes f16: the tower stays unquantized).
    A bf16 mmproj keeps a bf16 checkpoint's values exactly and runs on AMX tiles where the CPU
    has them."""
    _require_gguf()
    hf_dir, out_path = Path(hf_dir), Path(out_path)
    if outtype not in OUTTYPES:
        raise ValueError(f"outtype {outtype!r}: expected one of {', '.join(OUTTYPES)}")
    config = _read_json(hf_dir / "config.json")
    _, mm = _modules(config, str(hf_dir / "config.json"))
    if "vision_config" not in config or mm is None:
        raise ConvertError(f"{hf_dir}: config.json has no vision_config (a text-only model has no mmproj)")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    outtype = "f16" if outtype == "q8_0" else outtype   # the tower stays unquantized
    return Path(mm.convert(hf_dir, config, _Checkpoint(hf_dir), out_path, outtype, progress))


def _cli_convert(args) -> int:
    args.out = args.out_opt or args.out
    if not args.out:
        print("error: give the output path (-o OUT.gguf)", file=sys.stderr)
        return 2
    try:
        path = convert_hf(args.hf_dir, args.out, args.outtype, progress=not args.quiet)
        if args.mmproj:
            print(convert_mmproj(args.hf_dir, args.mmproj, args.outtype, progress=not args.quiet))
    except ConvertError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(path)
    return 0
