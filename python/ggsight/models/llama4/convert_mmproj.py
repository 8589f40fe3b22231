"""Write a Llama 4 mmproj GGUF (ViT with a class token and 2D rope, pixel-shuffle MLP, linear
projector) in llama.cpp's convention, projector type "llama4".

No value changes: the patch embedding stays the 2-D linear of HF's Llama4UnfoldConvolution
[n_embd, channels * p * p] (llama.cpp reshapes it to a conv kernel at run time), the class
embedding keeps its name without ".weight" (v.class_embd, as llama.cpp's converter leaves it).
Tensors are streamed as in the text conversion."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..hf_common import ConvertError, read_optional_json, require_all, square, write_clip_vision
from ..writing import out_type, write_tensors

PROJECTOR_TYPE = "llama4"
_MEAN = _STD = [0.5, 0.5, 0.5]   # Llama4ImageProcessor's defaults
# Llama4VisionConfig defaults (transformers 5.x)
_DEFAULTS = dict(hidden_size=768, hidden_act="gelu", num_hidden_layers=34, num_attention_heads=16, num_channels=3,
                 intermediate_size=5632, vision_output_dim=7680, image_size=448, patch_size=14, norm_eps=1e-5,
                 pixel_shuffle_ratio=0.5, projector_input_dim=4096, projector_output_dim=4096, rope_theta=10_000.0)

# transformers 5 save / Hub layout, and the layout with the base model under model.
_TOWER = re.compile(r"^(?:model\.)?vision_model\.(.+)$")
_PROJECTOR = re.compile(r"^(?:model\.)?multi_modal_projector\.(.+)$")
_BLOCK = re.compile(r"^model\.layers\.(\d+)\.(.+)\.(weight|bias)$")
_LAYER = {"input_layernorm": "ln1", "post_attention_layernorm": "ln2", "self_attn.q_proj": "attn_q",
          "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_out",
          "mlp.fc1": "ffn_up", "mlp.fc2": "ffn_down"}
_FIXED = {"patch_embedding.linear.weight": "v.patch_embd.weight", "class_embedding": "v.class_embd",
          "positional_embedding_vlm": "v.position_embd.weight",
          "layernorm_pre.weight": "v.pre_ln.weight", "layernorm_pre.bias": "v.pre_ln.bias",
          "layernorm_post.weight": "v.post_ln.weight", "layernorm_post.bias": "v.post_ln.bias",
          "vision_adapter.mlp.fc1.weight": "mm.model.mlp.1.weight",
          "vision_adapter.mlp.fc2.weight": "mm.model.mlp.2.weight"}
_PROJ = {"linear_1.weight": "mm.model.fc.weight"}   # one linear layer, despite the number
# always f32, as llama.cpp writes the position embedding; the patch embedding f32 as ggsight's
# other towers (llama.cpp: f16 in an f16 file)
_F32 = ("v.patch_embd.weight", "v.position_embd.weight")


@dataclass(frozen=True)
class VisionHparams:
    image_size: int
    patch_size: int
    in_channels: int
    n_embd: int
    n_ff: int
    n_layer: int
    n_head: int
    norm_eps: float
    rope_theta: float
    shuffle_ratio: float       # pixel_shuffle_ratio: (1/r x 1/r) patches -> one token
    adapter_dim: int           # projector_input_dim = projector_output_dim: the pixel-shuffle MLP's width
    out_dim: int               # text hidden_size

    @classmethod
    def from_config(cls, config: dict[str, Any], where: str) -> "VisionHparams":
        vc = {**_DEFAULTS, **config["vision_config"]}
        if vc["hidden_act"] != "gelu":
            raise ConvertError(f"{where}: vision hidden_act {vc['hidden_act']!r} is not supported (gelu)")
        rope = vc.get("rope_parameters") or {}
        text = config.get("text_config") or {}
        hp = cls(image_size=square(vc["image_size"], where), patch_size=square(vc["patch_size"], where),
                 in_channels=int(vc["num_channels"]), n_embd=int(vc["hidden_size"]),
                 n_ff=int(vc["intermediate_size"]), n_layer=int(vc["num_hidden_layers"]),
                 n_head=int(vc["num_attention_heads"]), norm_eps=float(vc["norm_eps"]),
                 rope_theta=float(rope.get("rope_theta", vc["rope_theta"])),
                 shuffle_ratio=float(vc["pixel_shuffle_ratio"]), adapter_dim=int(vc["projector_output_dim"]),
                 out_dim=int(text.get("hidden_size", config.get("hidden_size", 5120))))
        scale = hp.scale_factor
        if not 0 < hp.shuffle_ratio < 1 or abs(1 / hp.shuffle_ratio - scale) > 1e-6:
            raise ConvertError(f"{where}: pixel_shuffle_ratio {hp.shuffle_ratio} must be 1/n for an integer n > 1")
        if (hp.image_size // hp.patch_size) % scale:
            raise ConvertError(f"{where}: {hp.image_size // hp.patch_size} patches per side do not shuffle by "
                               f"{scale} (image_size {hp.image_size}, patch_size {hp.patch_size})")
        # HF's adapter: the shuffled patches (n_embd * scale^2 wide) go into fc1 (intermediate_size
        # wide), fc1's output (projector_input_dim) into fc2 (projector_output_dim, square), fc2's
        # into the projector (vision_output_dim)
        if hp.n_embd * scale ** 2 != hp.n_ff:
            raise ConvertError(f"{where}: vision intermediate_size {hp.n_ff} must be hidden_size / "
                               f"pixel_shuffle_ratio^2 = {hp.n_embd * scale ** 2} (the pixel-shuffle MLP's input)")
        dims = {k: int(vc[k]) for k in ("projector_input_dim", "projector_output_dim", "vision_output_dim")}
        if len(set(dims.values())) != 1:
            raise ConvertError(f"{where}: {dims} must be equal (the pixel-shuffle MLP feeds the projector)")
        return hp

    @property
    def scale_factor(self) -> int:
        return round(1 / self.shuffle_ratio)

    @property
    def n_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2


def plan(hf_names, where: str) -> dict[str, str]:
    """GGUF name -> HF name for every vision tower and projector tensor (each must map)."""
    out: dict[str, str] = {}
    for hf_name in hf_names:
        if m := _PROJECTOR.match(hf_name):
            name = _PROJ.get(m.group(1))
        elif m := _TOWER.match(hf_name):
            rest, b = m.group(1), _BLOCK.match(m.group(1))
            name = _FIXED.get(rest) or (f"v.blk.{b.group(1)}.{_LAYER[b.group(2)]}.{b.group(3)}"
                                        if b and b.group(2) in _LAYER else None)
        else:
            continue
        if name is None:
            raise ConvertError(f"{where}: unexpected vision tensor {hf_name!r}")
        if name in out:
            raise ConvertError(f"{where}: {hf_name!r} and {out[name]!r} both map to {name}")
        out[name] = hf_name
    return out


def expected_shapes(hp: VisionHparams) -> dict[str, tuple[int, ...]]:
    """GGUF name -> shape in PyTorch order (ggml's reversed), in file order."""
    d, ff, p = hp.n_embd, hp.n_ff, hp.patch_size
    shapes = {"v.patch_embd.weight": (d, hp.in_channels * p * p), "v.class_embd": (d,),
              "v.position_embd.weight": (hp.n_patches + 1, d), "v.pre_ln.weight": (d,), "v.pre_ln.bias": (d,)}
    for i in range(hp.n_layer):
        blk = {"ln1": (d,), "attn_q": (d, d), "attn_k": (d, d), "attn_v": (d, d), "attn_out": (d, d),
               "ln2": (d,), "ffn_up": (ff, d), "ffn_down": (d, ff)}
        for name, shape in blk.items():
            shapes[f"v.blk.{i}.{name}.weight"] = shape
            shapes[f"v.blk.{i}.{name}.bias"] = shape[:1]
    shapes.update({"v.post_ln.weight": (d,), "v.post_ln.bias": (d,),
                   "mm.model.mlp.1.weight": (hp.adapter_dim, ff),
                   "mm.model.mlp.2.weight": (hp.adapter_dim, hp.adapter_dim),
                   "mm.model.fc.weight": (hp.out_dim, hp.adapter_dim)})
    return shapes


def convert(hf_dir: Path, config: dict, ckpt, out_path: Path, outtype: str, progress: bool = False) -> Path:
    """The vision tower + adapter + projector of a Llama 4 checkpoint as an mmproj GGUF.

    outtype f32, f16 or bf16 for the matrices (the driver maps q8_0 to f16);
    norms, biases, the class, patch and position embeddings stay f32."""
    import gguf

    where = str(hf_dir)
    hp = VisionHparams.from_config(config, where)
    todo = plan(ckpt.where, where)
    want = expected_shapes(hp)
    require_all(want, todo, where)
    jobs = []
    for name, shape in want.items():
        hf_name = todo[name]
        if ckpt.shape(hf_name) != shape:
            raise ConvertError(f"{where}: {hf_name} gives {name} of shape {list(ckpt.shape(hf_name))}, the "
                               f"config implies {list(shape)}")
        qtype = out_type(name, shape, "f32" if name in _F32 else outtype)
        jobs.append((name, shape, qtype, lambda h=hf_name: ckpt.load(h)))

    pre = read_optional_json(hf_dir / "preprocessor_config.json")
    w = gguf.GGUFWriter(str(out_path), "clip")
    try:
        write_clip_vision(w, PROJECTOR_TYPE, image_size=hp.image_size, patch_size=hp.patch_size, n_embd=hp.n_embd,
                          n_ff=hp.n_ff, n_layer=hp.n_layer, n_head=hp.n_head, eps=hp.norm_eps,
                          projection_dim=hp.out_dim, mean=pre.get("image_mean", _MEAN), std=pre.get("image_std", _STD))
        w.add_uint32("clip.vision.projector.scale_factor", hp.scale_factor)
        # llama.cpp reads clip.use_gelu; the per-modality spelling is written too
        w.add_bool("clip.use_gelu", True)
        w.add_bool("clip.vision.use_gelu", True)
        # ggsight's keys, which llama.cpp hard-codes (rope theta 10000) or does not have
        w.add_float32("clip.vision.rope.freq_base", hp.rope_theta)
        w.add_float32("clip.vision.pixel_shuffle_ratio", hp.shuffle_ratio)
        if pre.get("max_patches") is not None:   # the tile budget (HF's class default: 16)
            w.add_uint32("clip.vision.max_patches", int(pre["max_patches"]))
        write_tensors(w, jobs, progress)
    finally:
        w.close()
    return out_path
