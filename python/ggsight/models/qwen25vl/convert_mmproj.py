"""Write a Qwen2.5-VL mmproj GGUF (window-attention ViT + patch merger) in llama.cpp's
convention, projector type "qwen2.5vl_merger".

Two value changes, both llama.cpp's: the Conv3d patch kernel [out, in, 2, p, p] becomes two
Conv2d kernels (v.patch_embd.weight for frame 0, .weight.1 for frame 1; a still image is the
same frame twice, so their sum is applied to it), and the fused attn.qkv rows are split into
q, k, v. Tensors are streamed as in the text conversion."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..hf_common import ConvertError, read_optional_json, require_all, square, write_clip_vision
from ..writing import out_type, write_tensors

PROJECTOR_TYPE = "qwen2.5vl_merger"
# transformers' OPENAI_CLIP_MEAN / STD, which Qwen2VLImageProcessor uses by default
_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
_CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
# Qwen2_5_VLVisionConfig defaults (transformers 5.x); image_size is llama.cpp's default
_DEFAULTS = dict(depth=32, hidden_size=3584, intermediate_size=3420, num_heads=16, patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=112,
                 out_hidden_size=3584, fullatt_block_indexes=[7, 15, 23, 31], hidden_act="silu",
                 image_size=560)
_NORM_EPS = 1e-6   # Qwen2_5_VLRMSNorm(eps=1e-6) is hard-coded in the tower

_TOWER = re.compile(r"^(?:model\.)?visual\.(.+)$")   # transformers 5 / Hub layout
_BLOCK = re.compile(r"^blocks\.(\d+)\.(.+)\.(weight|bias)$")
_LAYER = {"norm1": "ln1", "norm2": "ln2", "attn.proj": "attn_out",
          "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
_FIXED = {"merger.ln_q.weight": "v.post_ln.weight",
          "merger.mlp.0.weight": "mm.0.weight", "merger.mlp.0.bias": "mm.0.bias",
          "merger.mlp.2.weight": "mm.2.weight", "merger.mlp.2.bias": "mm.2.bias"}
_PATCH = ("v.patch_embd.weight", "v.patch_embd.weight.1")   # temporal frames 0 and 1


@dataclass(frozen=True)
class VisionHparams:
    image_size: int
    patch_size: int
    temporal_patch_size: int
    in_channels: int
    n_embd: int
    n_ff: int
    n_layer: int
    n_head: int
    merge: int                 # spatial_merge_size: merge x merge patches -> one token
    window_size: int           # pixels (HF window_size)
    fullatt: tuple[int, ...]   # blocks with full attention; the others attend within windows
    out_dim: int               # out_hidden_size = text embedding width

    @classmethod
    def from_config(cls, config: dict[str, Any], where: str) -> "VisionHparams":
        vc = {**_DEFAULTS, **config["vision_config"]}
        vc.setdefault("in_channels", vc.get("in_chans", 3))   # Hub configs spell it in_chans
        if vc["hidden_act"] != "silu":
            raise ConvertError(f"{where}: vision hidden_act {vc['hidden_act']!r} is not supported (silu)")
        hp = cls(image_size=int(vc["image_size"]), patch_size=square(vc["patch_size"], where),
                 temporal_patch_size=square(vc["temporal_patch_size"], where),
                 in_channels=int(vc["in_channels"]), n_embd=int(vc["hidden_size"]),
                 n_ff=int(vc["intermediate_size"]), n_layer=int(vc["depth"]), n_head=int(vc["num_heads"]),
                 merge=int(vc["spatial_merge_size"]), window_size=int(vc["window_size"]),
                 fullatt=tuple(sorted(int(i) for i in vc["fullatt_block_indexes"])),
                 out_dim=int(vc["out_hidden_size"]))
        if hp.temporal_patch_size != 2:   # the GGUF layout has exactly two patch kernels
            raise ConvertError(f"{where}: temporal_patch_size {hp.temporal_patch_size} is not supported (2)")
        if any(not 0 <= i < hp.n_layer for i in hp.fullatt):
            raise ConvertError(f"{where}: fullatt_block_indexes {list(hp.fullatt)} outside 0..{hp.n_layer - 1}")
        text_width = (config.get("text_config") or {}).get("hidden_size", config.get("hidden_size"))
        if text_width is not None and int(text_width) != hp.out_dim:
            raise ConvertError(f"{where}: vision out_hidden_size {hp.out_dim} != text hidden_size {text_width}")
        return hp


def wa_pattern(fullatt: tuple[int, ...], n_layer: int) -> int | None:
    """llama.cpp's clip.vision.n_wa_pattern p: block i has full attention iff (i + 1) % p == 0.
    None when the full-attention blocks are not exactly that set (llama.cpp cannot run such a
    tower; clip.vision.wa_layer_indexes still describes it)."""
    if not fullatt:
        return None
    p = fullatt[0] + 1
    return p if list(fullatt) == list(range(p - 1, n_layer, p)) else None


def plan(hf_names, hp: VisionHparams, where: str) -> dict[str, tuple[str, tuple | None]]:
    """GGUF name -> (HF name, part): part ("qkv", k) takes the k-th third of the rows,
    ("frame", t) the t-th temporal slice of the patch kernel. Every vision tensor must map."""
    out: dict[str, tuple[str, tuple | None]] = {}
    for hf_name in hf_names:
        m = _TOWER.match(hf_name)
        if not m:
            continue
        rest = m.group(1)
        if rest == "patch_embed.proj.weight":
            out.update({name: (hf_name, ("frame", t)) for t, name in enumerate(_PATCH)})
        elif rest in _FIXED:
            out[_FIXED[rest]] = (hf_name, None)
        elif (b := _BLOCK.match(rest)) and b.group(2) == "attn.qkv":
            for k, qkv in enumerate(("attn_q", "attn_k", "attn_v")):
                out[f"v.blk.{b.group(1)}.{qkv}.{b.group(3)}"] = (hf_name, ("qkv", k))
        elif b and b.group(2) in _LAYER and (b.group(3) == "weight" or b.group(2) not in ("norm1", "norm2")):
            out[f"v.blk.{b.group(1)}.{_LAYER[b.group(2)]}.{b.group(3)}"] = (hf_name, None)
        else:
            raise ConvertError(f"{where}: unexpected vision tensor {hf_name!r}")
    return out


def expected_shapes(hp: VisionHparams) -> dict[str, tuple[int, ...]]:
    """GGUF name -> shape in PyTorch order (ggml's reversed)."""
    d, ff, merged = hp.n_embd, hp.n_ff, hp.n_embd * hp.merge ** 2
    shapes = {name: (d, hp.in_channels, hp.patch_size, hp.patch_size) for name in _PATCH}
    for i in range(hp.n_layer):
        blk = {"attn_q": (d, d), "attn_k": (d, d), "attn_v": (d, d), "attn_out": (d, d),
               "ffn_gate": (ff, d), "ffn_up": (ff, d), "ffn_down": (d, ff)}
        for name, shape in blk.items():
            shapes[f"v.blk.{i}.{name}.weight"] = shape
            shapes[f"v.blk.{i}.{name}.bias"] = shape[:1]
        shapes[f"v.blk.{i}.ln1.weight"] = shapes[f"v.blk.{i}.ln2.weight"] = (d,)
    shapes.update({"v.post_ln.weight": (d,), "mm.0.weight": (merged, merged), "mm.0.bias": (merged,),
                   "mm.2.weight": (hp.out_dim, merged), "mm.2.bias": (hp.out_dim,)})
    return shapes


def _part_shape(shape: tuple[int, ...], part: tuple | None) -> tuple[int, ...]:
    if part is None:
        return shape
    if part[0] == "qkv":
        return (shape[0] // 3, *shape[1:])
    return (*shape[:2], *shape[3:])


def _extract(data: np.ndarray, part: tuple | None) -> np.ndarray:
    if part is None:
        return data
    if part[0] == "qkv":
        n = data.shape[0] // 3
        return data[part[1] * n:(part[1] + 1) * n]
    return data[:, :, part[1]]


def convert(hf_dir: Path, config: dict, ckpt, out_path: Path, outtype: str, progress: bool = False) -> Path:
    """The vision tower + merger of a Qwen2.5-VL checkpoint as an mmproj GGUF.

    outtype f32, f16 or bf16 for the matrices (the driver maps q8_0 to f16);
    norms, biases and the two patch kernels stay f32 (llama.cpp writes the kernels f16 in an f16
    file; kept f32 here, as for Gemma 3, since ggml's CPU im2col then needs no conversion)."""
    import gguf

    where = str(hf_dir)
    hp = VisionHparams.from_config(config, where)
    todo = plan(ckpt.where, hp, where)
    want = expected_shapes(hp)
    require_all(want, todo, where)
    jobs = []
    for name in want:   # expected_shapes lists them in file order
        hf_name, part = todo[name]
        shape = _part_shape(ckpt.shape(hf_name), part)
        if shape != want[name]:
            raise ConvertError(f"{where}: {hf_name} gives {name} of shape {list(shape)}, the config "
                               f"implies {list(want[name])}")
        qtype = out_type(name, shape, "f32" if name in _PATCH else outtype)
        jobs.append((name, shape, qtype, lambda h=hf_name, p=part: _extract(ckpt.load(h), p)))

    pre = read_optional_json(hf_dir / "preprocessor_config.json")
    w = gguf.GGUFWriter(str(out_path), "clip")
    try:
        write_clip_vision(w, PROJECTOR_TYPE, image_size=hp.image_size, patch_size=hp.patch_size, n_embd=hp.n_embd,
                          n_ff=hp.n_ff, n_layer=hp.n_layer, n_head=hp.n_head, eps=_NORM_EPS,
                          projection_dim=hp.out_dim, mean=pre.get("image_mean", _CLIP_MEAN),
                          std=pre.get("image_std", _CLIP_STD))
        w.add_uint32("clip.vision.spatial_merge_size", hp.merge)
        w.add_uint32("clip.vision.temporal_patch_size", hp.temporal_patch_size)
        w.add_uint32("clip.vision.window_size", hp.window_size)
        w.add_key_value("clip.vision.wa_layer_indexes", list(hp.fullatt), gguf.GGUFValueType.ARRAY,
                        sub_type=gguf.GGUFValueType.UINT32)
        if (pattern := wa_pattern(hp.fullatt, hp.n_layer)) is not None:
            w.add_uint32("clip.vision.n_wa_pattern", pattern)
        # llama.cpp reads clip.use_silu; the per-modality spelling is written too
        w.add_bool("clip.use_silu", True)
        w.add_bool("clip.vision.use_silu", True)
        # the checkpoint's own pixel budget (released Qwen2.5-VL: up to 12.8 MP, not HF's class
        # default of 1 MP), under llama.cpp's key names (its Qwen2.5-VL path fixes the budget
        # itself and ignores them)
        for key, size_key in (("min_pixels", "shortest_edge"), ("max_pixels", "longest_edge")):
            value = pre.get(key, (pre.get("size") or {}).get(size_key))
            if value is not None:
                w.add_uint32(f"clip.vision.image_{key}", int(value))
        write_tensors(w, jobs, progress)
    finally:
        w.close()
    return out_path
