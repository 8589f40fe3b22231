"""Write a Gemma 3 mmproj GGUF (SigLIP tower + projector) in llama.cpp's convention."""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Mapping

import numpy as np

from ..hf_common import write_clip_vision
from ..writing import out_type, write_tensors

# HF name (after the vision-tower prefix) -> GGUF name; N is the layer number
_LAYER = {
    "layer_norm1": "ln1", "layer_norm2": "ln2", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v", "self_attn.out_proj": "attn_out", "mlp.fc1": "ffn_up", "mlp.fc2": "ffn_down",
}
_TOWER = re.compile(r"^(?:model\.)?vision_tower\.(?:vision_model\.)?(.+)$")
_PROJ = re.compile(r"^(?:model\.)?multi_modal_projector\.(.+)$")


def vision_tensor_name(hf_name: str) -> str | None:
    """GGUF name of a Gemma 3 vision/projector tensor; None for anything else.

    Accepts Hub checkpoints (`vision_tower.vision_model.…`) and transformers 5 saves, which
    drop the inner `vision_model.`."""
    m = _TOWER.match(hf_name)
    if m:
        rest = m.group(1)
        fixed = {"embeddings.patch_embedding.weight": "v.patch_embd.weight",
                 "embeddings.patch_embedding.bias": "v.patch_embd.bias",
                 "embeddings.position_embedding.weight": "v.position_embd.weight",
                 "post_layernorm.weight": "v.post_ln.weight", "post_layernorm.bias": "v.post_ln.bias"}
        if rest in fixed:
            return fixed[rest]
        lm = re.match(r"^encoder\.layers\.(\d+)\.(.+)\.(weight|bias)$", rest)
        if lm and lm.group(2) in _LAYER:
            return f"v.blk.{lm.group(1)}.{_LAYER[lm.group(2)]}.{lm.group(3)}"
        return None
    m = _PROJ.match(hf_name)
    if m:
        return {"mm_soft_emb_norm.weight": "mm.soft_emb_norm.weight",
                "mm_input_projection_weight": "mm.input_projection.weight"}.get(m.group(1))
    return None


# kept f32 whatever the outtype: the conv kernel and the added position table are small, and
# ggml's CPU im2col/add paths take them in f32 without conversion
_KEEP_F32 = {"v.patch_embd.weight", "v.position_embd.weight"}


def convert(hf_dir: Path, config: dict, ckpt, out_path: Path, outtype: str, progress: bool = False) -> Path:
    """The `ggsight convert --mmproj` entry (store/convert.py): the tower of a checkpoint directory."""
    tensors = {n: ckpt.load(n) for n in ckpt.where if vision_tensor_name(n)}
    vc = dict(config["vision_config"])
    for key, default in (("image_size", 896), ("patch_size", 14), ("hidden_size", 1152),
                         ("intermediate_size", 4304), ("num_hidden_layers", 27), ("num_attention_heads", 16)):
        vc.setdefault(key, default)  # Hub configs leave SigLIP's defaults out
    return Path(write_mmproj(out_path, tensors, dict(config, vision_config=vc), outtype, progress))


def _value(name: str, data) -> np.ndarray:
    data = np.asarray(data, dtype=np.float32)
    if name == "mm.soft_emb_norm.weight":
        data = data + 1.0  # Gemma's RMSNorm scales by (1 + weight); GGUF stores the sum
    return data


def write_mmproj(path, tensors: Mapping[str, np.ndarray], config: dict, outtype: str = "f32",
                 progress: bool = False) -> str:
    """`tensors`: HF names -> float arrays; `config`: HF Gemma3Config as a dict.

    outtype: "f32", "f16" or "bf16" for the 2-D matrices of the tower and projector (norms,
    biases, the patch kernel and position table stay f32), as llama.cpp's converter does."""
    import gguf
    if outtype not in ("f32", "f16", "bf16"):
        raise ValueError(f"mmproj outtype {outtype!r}: expected f32, f16 or bf16")
    vc = config["vision_config"]
    tc = config.get("text_config", {})
    tokens = int(config.get("mm_tokens_per_image", 256))
    pool = (vc["image_size"] // vc["patch_size"]) // math.isqrt(tokens)
    if pool <= 0:
        raise ValueError(f"mm_tokens_per_image {tokens}: more tokens than the {vc['image_size'] // vc['patch_size']} "
                         f"patches per side give")
    jobs = []
    for hf_name, data in tensors.items():
        name = vision_tensor_name(hf_name)
        if name is not None:
            shape = tuple(data.shape)
            jobs.append((name, shape, out_type(name, shape, "f32" if name in _KEEP_F32 else outtype),
                         lambda n=name, d=data: _value(n, d)))
    if not jobs:
        raise ValueError("no Gemma 3 vision tensors found (expected vision_tower.* / multi_modal_projector.*)")
    w = gguf.GGUFWriter(str(path), "clip")
    try:
        write_clip_vision(w, "gemma3", image_size=vc["image_size"], patch_size=vc["patch_size"],
                          n_embd=vc["hidden_size"], n_ff=vc["intermediate_size"], n_layer=vc["num_hidden_layers"],
                          n_head=vc["num_attention_heads"], eps=vc.get("layer_norm_eps", 1e-6),
                          projection_dim=tc.get("hidden_size", config.get("hidden_size", 0)),
                          mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
        # llama.cpp's keys: the pooling kernel (written here even where it is clip.cpp's default 4)
        # and the GELU flag; mm_tokens_per_image is ggsight's (what earlier ggsight files carried)
        w.add_uint32("clip.vision.projector.scale_factor", pool)
        w.add_bool("clip.use_gelu", True)
        w.add_uint32("clip.vision.mm_tokens_per_image", tokens)
        write_tensors(w, jobs, progress)
    finally:
        w.close()
    return str(path)
