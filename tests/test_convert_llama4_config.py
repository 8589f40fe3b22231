"""Llama 4 config.json -> converter hyperparameters, without torch: Scout's Hub config, the
llama3 rope factors, and the configs the GGUF layout cannot express (clear ConvertErrors).
The checkpoint itself is converted and checked in test_convert_llama4.py."""
import math

import pytest

from ggsight.models.hf_common import ConvertError
from ggsight.models.hf_decoder import llama3_rope_factors
from ggsight.models.llama4.convert import Llama4Hparams
from ggsight.models.llama4.convert_mmproj import VisionHparams

# Llama-4-Scout-17B-16E-Instruct's config.json as on the Hub (transformers 4.51: rope_scaling +
# rope_theta, an empty no_rope_layers, no layer_types / moe_layers, vision rope_theta)
HUB_SCOUT = {
    "architectures": ["Llama4ForConditionalGeneration"], "boi_token_index": 200080, "eoi_token_index": 200081,
    "image_token_index": 200092, "model_type": "llama4", "tie_word_embeddings": False,
    "text_config": {
        "attention_bias": False, "attention_chunk_size": 8192, "attn_scale": 0.1, "attn_temperature_tuning": True,
        "bos_token_id": 200000, "eos_token_id": [200001, 200007, 200008], "floor_scale": 8192, "head_dim": 128,
        "hidden_act": "silu", "hidden_size": 5120, "interleave_moe_layer_step": 1, "intermediate_size": 8192,
        "intermediate_size_mlp": 16384, "max_position_embeddings": 10485760, "model_type": "llama4_text",
        "no_rope_layers": [], "num_attention_heads": 40, "num_experts_per_tok": 1, "num_hidden_layers": 48,
        "num_key_value_heads": 8, "num_local_experts": 16, "pad_token_id": 200018, "rms_norm_eps": 1e-05,
        "rope_scaling": {"factor": 16.0, "high_freq_factor": 1.0, "low_freq_factor": 1.0,
                         "original_max_position_embeddings": 8192, "rope_type": "llama3"},
        "rope_theta": 500000.0, "use_qk_norm": True, "vocab_size": 202048},
    "vision_config": {
        "hidden_act": "gelu", "hidden_size": 1408, "image_size": 336, "intermediate_size": 5632,
        "model_type": "llama4_vision_model", "multi_modal_projector_bias": False, "norm_eps": 1e-05,
        "num_attention_heads": 16, "num_channels": 3, "num_hidden_layers": 34, "patch_size": 14,
        "pixel_shuffle_ratio": 0.5, "projector_input_dim": 4096, "projector_output_dim": 4096, "rope_theta": 10000,
        "vision_feature_layer": -1, "vision_feature_select_strategy": "default", "vision_output_dim": 4096}}


def _text(**changes):
    return {**HUB_SCOUT, "text_config": {**HUB_SCOUT["text_config"], **changes}}


def _vision(**changes):
    return {**HUB_SCOUT, "vision_config": {**HUB_SCOUT["vision_config"], **changes}}


def test_hub_config_layout():
    hp = Llama4Hparams.from_config(HUB_SCOUT, "scout")
    assert (hp.n_embd, hp.n_layer, hp.n_head, hp.n_head_kv, hp.head_dim) == (5120, 48, 40, 8, 128)
    assert (hp.n_ff, hp.n_ff_exp, hp.n_expert, hp.n_expert_used, hp.moe_step) == (16384, 8192, 16, 1, 1)
    assert all(hp.is_moe(i) for i in range(48))
    assert hp.rope_layers == tuple((i + 1) % 4 != 0 for i in range(48))   # empty list: every 4th is NoPE
    assert (hp.chunk_size, hp.floor_scale, hp.attn_scale, hp.qk_norm, hp.tied) == (8192, 8192, 0.1, True, False)
    assert hp.rope_base == 500000.0 and len(hp.rope_factors) == 64
    # low == high frequency factor: no blend band, each frequency kept or divided by 16
    assert set(hp.rope_factors) == {1.0, 16.0} and hp.rope_factors[0] == 1.0 and hp.rope_factors[-1] == 16.0
    assert Llama4Hparams.from_config(_text(rope_scaling=None), "x").rope_factors is None
    vp = VisionHparams.from_config(HUB_SCOUT, "scout")
    assert (vp.image_size, vp.n_embd, vp.n_ff, vp.n_layer, vp.out_dim, vp.adapter_dim) == \
        (336, 1408, 5632, 34, 5120, 4096)
    assert (vp.rope_theta, vp.scale_factor, vp.n_patches) == (10000.0, 2, 576)


def test_transformers5_config_fields():
    """transformers 5 writes rope_parameters, layer_types, moe_layers and a full no_rope_layers;
    a null attention_chunk_size means no chunked layer (and all-full layer_types)."""
    text = {k: v for k, v in HUB_SCOUT["text_config"].items() if k not in ("rope_scaling", "rope_theta")}
    cfg = {**HUB_SCOUT, "text_config": {
        **text, "num_hidden_layers": 4, "interleave_moe_layer_step": 2, "moe_layers": [1, 3],
        "no_rope_layers": [1, 0, 1, 1],
        "layer_types": ["chunked_attention", "full_attention", "chunked_attention", "chunked_attention"],
        "rope_parameters": {"rope_type": "default", "rope_theta": 1000.0}}}
    hp = Llama4Hparams.from_config(cfg, "x")
    assert (hp.moe_step, hp.rope_layers, hp.chunk_size, hp.rope_base, hp.rope_factors) == \
        (2, (True, False, True, True), 8192, 1000.0, None)
    assert [hp.is_moe(i) for i in range(4)] == [False, True, False, True]
    cfg["text_config"].update(attention_chunk_size=None, layer_types=["full_attention"] * 4)
    assert Llama4Hparams.from_config(cfg, "x").chunk_size is None
    # MobileLLM-style: a chunk size, but every layer full attention
    cfg["text_config"].update(attention_chunk_size=8192)
    assert Llama4Hparams.from_config(cfg, "x").chunk_size is None
    # null head_dim / num_key_value_heads: derived as Llama4TextConfig does
    cfg["text_config"].update(head_dim=None, num_key_value_heads=None, num_attention_heads=32)
    hp = Llama4Hparams.from_config(cfg, "x")
    assert (hp.head_dim, hp.n_head_kv) == (160, 32)


@pytest.mark.parametrize("factor,low,high,old_ctx", [(8.0, 1.0, 4.0, 32), (8.0, 1.0, 4.0, 8192), (16.0, 1.0, 1.0, 8192)])
def test_llama3_rope_factors(factor, low, high, old_ctx):
    """Against transformers' _compute_llama3_parameters, written out: inv_freq / factor above
    old_ctx / low wavelength, kept below old_ctx / high, blended between."""
    base, dim = 10_000.0, 16
    got = llama3_rope_factors(base, dim, factor, low, high, old_ctx)
    for i, f in enumerate(got):
        inv = base ** (-2 * i / dim)
        wavelen = 2 * math.pi / inv
        if wavelen < old_ctx / high:
            want = inv
        elif wavelen > old_ctx / low:
            want = inv / factor
        else:
            smooth = (old_ctx / wavelen - low) / (high - low)
            want = (1 - smooth) * inv / factor + smooth * inv
        assert inv / f == pytest.approx(want, rel=1e-6), i


@pytest.mark.parametrize("config,match", [
    (_text(rope_scaling={"rope_type": "yarn", "factor": 4.0}), "rope type 'yarn'"),
    (_text(moe_layers=[0, 3]), r"moe_layers \[0, 3\] is not every interleave_moe_layer_step-th layer"),
    (_text(no_rope_layers=[1, 0]), "no_rope_layers has 2 entries for 48 layers"),
    (_text(layer_types=["chunked_attention"] * 48), "must chunk exactly the RoPE layers"),
    (_text(layer_types=["sliding_attention"] * 48), "must give chunked_attention or full_attention"),
    (_text(attention_bias=True), "attention_bias is not supported"),
    (_text(hidden_act="gelu"), "hidden_act 'gelu'"),
    (_text(interleave_moe_layer_step=0), "at least 1"),
    ({**HUB_SCOUT, "architectures": ["Llama4ForCausalLM"]}, r"unsupported architecture \['Llama4ForCausalLM'\]"),
])
def test_bad_text_configs(config, match):
    with pytest.raises(ConvertError, match=match):
        Llama4Hparams.from_config(config, "x")


@pytest.mark.parametrize("config,match", [
    (_vision(intermediate_size=4096), r"intermediate_size 4096 must be hidden_size / pixel_shuffle_ratio\^2 = 5632"),
    (_vision(pixel_shuffle_ratio=0.4), "must be 1/n"),
    (_vision(image_size=350), "25 patches per side do not shuffle by 2"),
    (_vision(projector_output_dim=2048), "must be equal"),
    (_vision(hidden_act="silu"), "hidden_act 'silu'"),
    (_vision(patch_size=[14, 16]), "non-square"),
])
def test_bad_vision_configs(config, match):
    with pytest.raises(ConvertError, match=match):
        VisionHparams.from_config(config, "x")
