"""Write a Mistral 3 mmproj GGUF (Pixtral tower + RMSNorm + patch merger + 2-layer projector) in
llama.cpp's convention, projector type "pixtral".

One value change, llama.cpp's: q_proj/k_proj rows are permuted per head so that the pairs HF's
rotate_half turns together are adjacent (ggml's normal rope; vision.py's 2D rope reads them so).
The [IMG_BREAK] row of the text embedding table is written as v.token_embd.img_break (llama.cpp's
converter means to, but its mmproj pass drops every language_model. tensor of an HF checkpoint
before looking for it, so its files lack the row; the glue then reads the text model's table). Tensors are streamed as in the text conversion."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..hf_common import ConvertError, read_optional_json, require_all, text_config, write_clip_vision
from ..llama.convert import permute_halves_to_pairs as permute_rows   # the text model's q/k permutation
from ..writing import out_type, write_tensors
from .vision import PROJECTOR_NORM_EPS_KEY, PROJECTOR_TYPE

_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
_CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
# PixtralVisionConfig defaults (transformers 5.x) under Mistral3Config's own
_DEFAULTS = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                 num_channels=3, image_size=1540, patch_size=14, hidden_act="gelu")
_NORM_EPS = 1e-5   # PixtralRMSNorm(eps=1e-5) is hard-coded in the tower

_PREFIX = re.compile(r"^(?:model\.)?(vision_tower|multi_modal_projector)\.(.+)$")   # transformers 5 / Hub
_EMBED = re.compile(r"^(?:model\.)?language_model\.(?:model\.)?embed_tokens\.weight$")
_BLOCK = re.compile(r"^transformer\.layers\.(\d+)\.(.+)\.weight$")
_LAYER = {"attention_norm": "ln1", "ffn_norm": "ln2", "attention.q_proj": "attn_q", "attention.k_proj": "attn_k",
          "attention.v_proj": "attn_v", "attention.o_proj": "attn_out", "feed_forward.gate_proj": "ffn_gate",
          "feed_forward.up_proj": "ffn_up", "feed_forward.down_proj": "ffn_down"}
_FIXED = {("vision_tower", "patch_conv.weight"): "v.patch_embd.weight",
          ("vision_tower", "ln_pre.weight"): "v.pre_ln.weight",
          ("multi_modal_projector", "norm.weight"): "mm.input_norm.weight",
          ("multi_modal_projector", "patch_merger.merging_layer.weight"): "mm.patch_merger.weight",
          ("multi_modal_projector", "linear_1.weight"): "mm.1.weight",
          ("multi_modal_projector", "linear_1.bias"): "mm.1.bias",
          ("multi_modal_projector", "linear_2.weight"): "mm.2.weight",
          ("multi_modal_projector", "linear_2.bias"): "mm.2.bias"}
IMG_BREAK_NAME = "v.token_embd.img_break"


@dataclass(frozen=True)
class VisionHparams:
    image_size: int     # the longest edge images are scaled to
    patch_size: int
    in_channels: int
    n_embd: int
    n_ff: int
    n_layer: int
    n_head: int
    merge: int
    silu: bool
    bias: bool          # multimodal_projector_bias
    out_dim: int        # text hidden size
    text_eps: float     # the projector's RMSNorm epsilon (HF: the text config's)
    rope_base: float

    @classmethod
    def from_config(cls, config: dict[str, Any], longest_edge: int | None, where: str) -> "VisionHparams":
        vc = {**_DEFAULTS, **config["vision_config"]}
        act = vc["hidden_act"]
        if act not in ("silu", "gelu"):
            raise ConvertError(f"{where}: vision hidden_act {act!r} is not supported (silu or gelu)")
        if config.get("projector_hidden_act", "gelu") != "gelu":
            raise ConvertError(f"{where}: projector_hidden_act {config['projector_hidden_act']!r} is not supported (gelu)")
        if config.get("vision_feature_layer", -1) != -1:
            raise ConvertError(f"{where}: vision_feature_layer {config['vision_feature_layer']!r} is not supported (-1)")
        rope = vc.get("rope_parameters") or {}
        tc = text_config(config)
        return cls(image_size=int(longest_edge or vc["image_size"]), patch_size=int(vc["patch_size"]),
                   in_channels=int(vc["num_channels"]), n_embd=int(vc["hidden_size"]),
                   n_ff=int(vc["intermediate_size"]), n_layer=int(vc["num_hidden_layers"]),
                   n_head=int(vc["num_attention_heads"]), merge=int(config.get("spatial_merge_size", 2)),
                   silu=act == "silu", bias=bool(config.get("multimodal_projector_bias", False)),
                   out_dim=int(tc["hidden_size"]), text_eps=float(tc.get("rms_norm_eps", 1e-5)),
                   rope_base=float(rope.get("rope_theta", vc.get("rope_theta", 10000.0))))


def plan(hf_names, hp: VisionHparams, where: str) -> dict[str, tuple[str, str | None]]:
    """GGUF name -> (HF name, how: None, "permute" or "img_break")."""
    out: dict[str, tuple[str, str | None]] = {}
    for hf_name in hf_names:
        if _EMBED.match(hf_name):
            out[IMG_BREAK_NAME] = (hf_name, "img_break")
            continue
        m = _PREFIX.match(hf_name)
        if not m:
            continue
        part, rest = m.groups()
        if (part, rest) in _FIXED:
            out[_FIXED[part, rest]] = (hf_name, None)
        elif part == "vision_tower" and (b := _BLOCK.match(rest)) and b.group(2) in _LAYER:
            name = _LAYER[b.group(2)]
            out[f"v.blk.{b.group(1)}.{name}.weight"] = (hf_name, "permute" if name in ("attn_q", "attn_k") else None)
        else:
            raise ConvertError(f"{where}: unexpected vision tensor {hf_name!r}")
    return out


def expected_shapes(hp: VisionHparams) -> dict[str, tuple[int, ...]]:
    """GGUF name -> shape in PyTorch order (ggml's reversed)."""
    d, ff, t = hp.n_embd, hp.n_ff, hp.out_dim
    shapes: dict[str, tuple[int, ...]] = {"v.patch_embd.weight": (d, hp.in_channels, hp.patch_size, hp.patch_size),
                                          "v.pre_ln.weight": (d,)}
    for i in range(hp.n_layer):
        blk = {"ln1": (d,), "ln2": (d,), "attn_q": (d, d), "attn_k": (d, d), "attn_v": (d, d), "attn_out": (d, d),
               "ffn_gate": (ff, d), "ffn_up": (ff, d), "ffn_down": (d, ff)}
        shapes.update({f"v.blk.{i}.{n}.weight": s for n, s in blk.items()})
    shapes.update({"mm.input_norm.weight": (d,), "mm.patch_merger.weight": (d, d * hp.merge ** 2),
                   "mm.1.weight": (t, d), "mm.2.weight": (t, t)})
    if hp.bias:
        shapes.update({"mm.1.bias": (t,), "mm.2.bias": (t,)})
    shapes[IMG_BREAK_NAME] = (t,)
    return shapes


def _img_break_id(hf_dir: Path, where: str) -> int:
    for entry in read_optional_json(hf_dir / "tokenizer.json").get("added_tokens", []):
        if entry.get("content") == "[IMG_BREAK]":
            return int(entry["id"])
    for key, entry in (read_optional_json(hf_dir / "tokenizer_config.json").get("added_tokens_decoder") or {}).items():
        if entry.get("content") == "[IMG_BREAK]":
            return int(key)
    raise ConvertError(f"{where}: the tokenizer has no [IMG_BREAK] token")


def convert(hf_dir: Path, config: dict, ckpt, out_path: Path, outtype: str, progress: bool = False) -> Path:
    """The vision tower + projector of a Mistral3ForConditionalGeneration checkpoint as an mmproj
    GGUF. outtype f32, f16 or bf16 for the matrices (the driver maps q8_0 to f16); norms, the
    [IMG_BREAK] row and the patch kernel stay f32."""
    import gguf

    where = str(hf_dir)
    pre = read_optional_json(hf_dir / "preprocessor_config.json")
    hp = VisionHparams.from_config(config, (pre.get("size") or {}).get("longest_edge"), where)
    todo = plan(ckpt.where, hp, where)
    want = expected_shapes(hp)
    require_all(want, todo, where)
    break_id = _img_break_id(hf_dir, where)
    jobs = []
    for name in want:
        hf_name, how = todo[name]
        shape = ckpt.shape(hf_name)[1:] if how == "img_break" else ckpt.shape(hf_name)
        if shape != want[name]:
            raise ConvertError(f"{where}: {hf_name} gives {name} of shape {list(shape)}, the config "
                               f"implies {list(want[name])}")
        qtype = out_type(name, shape, "f32" if name == "v.patch_embd.weight" else outtype)
        if how == "permute":
            load = lambda h=hf_name: permute_rows(np.asarray(ckpt.load(h), np.float32), hp.n_head)  # noqa: E731
        elif how == "img_break":
            load = lambda h=hf_name: np.asarray(ckpt.load(h)[break_id], np.float32)  # noqa: E731
        else:
            load = lambda h=hf_name: ckpt.load(h)  # noqa: E731
        jobs.append((name, shape, qtype, load))

    w = gguf.GGUFWriter(str(out_path), "clip")
    try:
        write_clip_vision(w, PROJECTOR_TYPE, image_size=hp.image_size, patch_size=hp.patch_size, n_embd=hp.n_embd,
                          n_ff=hp.n_ff, n_layer=hp.n_layer, n_head=hp.n_head, eps=_NORM_EPS,
                          projection_dim=hp.out_dim, mean=pre.get("image_mean", _CLIP_MEAN),
                          std=pre.get("image_std", _CLIP_STD))
        w.add_uint32("clip.vision.spatial_merge_size", hp.merge)
        w.add_bool("clip.use_silu" if hp.silu else "clip.use_gelu", True)
        w.add_float32("clip.vision.rope.freq_base", hp.rope_base)
        w.add_float32(PROJECTOR_NORM_EPS_KEY, hp.text_eps)
        write_tensors(w, jobs, progress)
    finally:
        w.close()
    return out_path
