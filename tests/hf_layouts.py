"""Test helper: a tiny HF checkpoint rewritten under other tensor-name prefixes (the layouts
transformers versions and the Hub disagree on) or with its config / tensors changed, and the pair
of GGUF files converted from one."""
import json

import numpy as np

from ggsight.store.convert import convert_hf, convert_mmproj, read_safetensors


def relayout(d, out, rename: dict, files) -> object:
    """Copy checkpoint folder `d` to `out`, every tensor's name prefix mapped by `rename`
    (each tensor must match one) and the side files `files` copied as they are."""
    from safetensors.numpy import save_file
    out.mkdir(exist_ok=True)
    tensors = {}
    for k, v in read_safetensors(d / "model.safetensors"):
        prefix = next(p for p in rename if k.startswith(p))
        tensors[rename[prefix] + k[len(prefix):]] = np.ascontiguousarray(v)
    save_file(tensors, str(out / "model.safetensors"))
    for name in files:
        (out / name).write_bytes((d / name).read_bytes())
    return out


def convert_pair(src, out) -> tuple:
    """(text GGUF, mmproj GGUF) of an HF folder, both f32."""
    return (convert_hf(src, out / "text.gguf", outtype="f32", progress=False),
            convert_mmproj(src, out / "mmproj.gguf", outtype="f32"))


def variant(d, out, files, config=None, drop=(), extra=None):
    """A copy of checkpoint folder `d` with its config.json passed through `config` (a function),
    the tensors named in `drop` left out and the ones in `extra` added; `files` copied as they are."""
    from safetensors.numpy import save_file
    out.mkdir()
    cfg = json.loads((d / "config.json").read_text())
    (out / "config.json").write_text(json.dumps(config(cfg) if config else cfg))
    for name in files:
        (out / name).write_bytes((d / name).read_bytes())
    tensors = {k: np.ascontiguousarray(v) for k, v in read_safetensors(d / "model.safetensors") if k not in drop}
    save_file({**tensors, **(extra or {})}, str(out / "model.safetensors"))
    return out
