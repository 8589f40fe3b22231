"""HF Qwen2.5-VL checkpoint -> ggsight's converter -> text GGUF (arch qwen2vl) + mmproj GGUF
(projector qwen2.5vl_merger), checked against the HF model tensor by tensor: every expected
name, shape, type and value, nothing left over, the metadata, and the vocabulary (ggsight's
tokenizer on the converted file == the HF tokenizer.json)."""
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
gguf = pytest.importorskip("gguf")

from ggsight.ggml import GGUFFile  # noqa: E402
from ggsight.store.convert import (ConvertError, add_parser, convert_hf, convert_mmproj,  # noqa: E402
                                   read_safetensors)
from ggsight.models.qwen25vl.convert import Qwen25VLHparams  # noqa: E402
from ggsight.models.qwen25vl.convert_mmproj import VisionHparams, wa_pattern  # noqa: E402

from hf_layouts import convert_pair, relayout, variant  # noqa: E402
from make_tiny_hf_qwen25vl import make_tiny_hf_qwen25vl  # noqa: E402

pytestmark = pytest.mark.torch

N_LAYER, DEPTH, V_EMBD = 4, 4, 32


@pytest.fixture(scope="module")
def hf(tmp_path_factory):
    d = tmp_path_factory.mktemp("hf_qwen25vl")
    model = make_tiny_hf_qwen25vl(d, seed=0)
    return d, model, {k: v.detach().numpy() for k, v in model.state_dict().items()}


def relayout_v5(d, out):
    """The checkpoint with transformers 5's in-memory names (model.language_model.*,
    model.visual.*); save_pretrained writes the Hub's (model.*, visual.*)."""
    rename = {"model.": "model.language_model.", "visual.": "model.visual.", "lm_head.": "lm_head."}
    return relayout(d, out, rename, ("config.json", "tokenizer.json", "tokenizer_config.json"))


@pytest.fixture(scope="module", params=["hub", "v5"])
def converted(request, hf, tmp_path_factory):
    d, model, sd = hf
    out = tmp_path_factory.mktemp(f"gguf_{request.param}")
    src = d if request.param == "hub" else relayout_v5(d, out / "hf")
    return (d, model, sd, *convert_pair(src, out))


def expected_text(sd, tied=False):
    """GGUF name -> HF array, from the HF model's own parameter names."""
    p = "model.language_model."
    e = {"token_embd.weight": sd[p + "embed_tokens.weight"], "output_norm.weight": sd[p + "norm.weight"]}
    if not tied:
        e["output.weight"] = sd["lm_head.weight"]
    pairs = [("input_layernorm.weight", "attn_norm.weight"), ("post_attention_layernorm.weight", "ffn_norm.weight"),
             ("self_attn.o_proj.weight", "attn_output.weight"), ("mlp.gate_proj.weight", "ffn_gate.weight"),
             ("mlp.up_proj.weight", "ffn_up.weight"), ("mlp.down_proj.weight", "ffn_down.weight")]
    pairs += [(f"self_attn.{x}_proj.{kind}", f"attn_{x}.{kind}") for x in "qkv" for kind in ("weight", "bias")]
    for i in range(N_LAYER):
        for hf_name, name in pairs:
            e[f"blk.{i}.{name}"] = sd[f"{p}layers.{i}.{hf_name}"]
    return e


def expected_vision(sd):
    v, d = "model.visual.", V_EMBD
    kernel = sd[v + "patch_embed.proj.weight"]                 # Conv3d [out, in, t=2, p, p]
    e = {"v.patch_embd.weight": kernel[:, :, 0], "v.patch_embd.weight.1": kernel[:, :, 1],
         "v.post_ln.weight": sd[v + "merger.ln_q.weight"]}
    for j in (0, 2):
        for kind in ("weight", "bias"):
            e[f"mm.{j}.{kind}"] = sd[f"{v}merger.mlp.{j}.{kind}"]
    for i in range(DEPTH):
        b = f"{v}blocks.{i}."
        e[f"v.blk.{i}.ln1.weight"], e[f"v.blk.{i}.ln2.weight"] = sd[b + "norm1.weight"], sd[b + "norm2.weight"]
        for kind in ("weight", "bias"):
            qkv = sd[f"{b}attn.qkv.{kind}"]                    # rows: q, then k, then v
            for k, x in enumerate("qkv"):
                e[f"v.blk.{i}.attn_{x}.{kind}"] = qkv[k * d:(k + 1) * d]
            e[f"v.blk.{i}.attn_out.{kind}"] = sd[f"{b}attn.proj.{kind}"]
            for ffn in ("gate", "up", "down"):
                e[f"v.blk.{i}.ffn_{ffn}.{kind}"] = sd[f"{b}mlp.{ffn}_proj.{kind}"]
    return e


def check_tensors(path, expected, types=lambda name, ndim: "F32", atol=0.0):
    tensors = {t.name: t for t in gguf.GGUFReader(str(path)).tensors}
    assert sorted(tensors) == sorted(expected), set(tensors) ^ set(expected)
    for name, ref in expected.items():
        t = tensors[name]
        assert list(t.shape) == list(reversed(ref.shape)), name       # ggml order
        assert t.tensor_type.name == types(name, ref.ndim), name
        got = gguf.quants.dequantize(t.data, t.tensor_type).reshape(ref.shape)
        assert np.abs(got - ref).max() <= atol * np.abs(ref).max(), name


def test_text_tensors(converted):
    _, _, sd, text, _ = converted
    check_tensors(text, expected_text(sd))


def test_mmproj_tensors(converted):
    _, _, sd, _, mmproj = converted
    check_tensors(mmproj, expected_vision(sd))


def test_nothing_left_over(converted):
    """Both files together hold every parameter of the checkpoint once (splits keep counts)."""
    d, _, _, text, mmproj = converted
    n_hf = sum(v.size for _, v in read_safetensors(d / "model.safetensors"))
    n_gguf = sum(int(t.n_elements) for p in (text, mmproj) for t in gguf.GGUFReader(str(p)).tensors)
    assert n_gguf == n_hf


def test_text_metadata(converted):
    _, model, _, text, _ = converted
    f = GGUFFile.open(text)
    assert f.arch == "qwen2vl"
    want = {"context_length": 1024, "embedding_length": 64, "block_count": 4, "feed_forward_length": 96,
            "attention.head_count": 4, "attention.head_count_kv": 2, "rope.freq_base": 10_000.0}
    assert {k: f.get(f"qwen2vl.{k}") for k in want} == want
    assert f.get("qwen2vl.attention.layer_norm_rms_epsilon") == pytest.approx(1e-6)
    assert list(f.get("qwen2vl.rope.dimension_sections")) == [2, 3, 3, 0]

    tj = json.loads((converted[0] / "tokenizer.json").read_text())
    tokens = f.get("tokenizer.ggml.tokens")
    assert len(tokens) == model.config.text_config.vocab_size          # padded, as llama.cpp pads
    assert all(tokens[i] == t for t, i in tj["model"]["vocab"].items())
    assert all(tokens[t["id"]] == t["content"] for t in tj["added_tokens"])
    assert tokens[-1] == f"[PAD{len(tokens) - 1}]"
    assert list(f.get("tokenizer.ggml.merges")) == tj["model"]["merges"]
    assert (f.get("tokenizer.ggml.model"), f.get("tokenizer.ggml.pre")) == ("gpt2", "qwen2")
    types = list(f.get("tokenizer.ggml.token_type"))
    kind = {t: types[tokens.index(t)] for t in ("Ġimage", "<|im_start|>", "<|image_pad|>", "<tool_call>",
                                                "<|fim_prefix|>")}
    # special added tokens are control; non-special ones user-defined, unless they look like <|...|>
    assert kind == {"Ġimage": 1, "<|im_start|>": 3, "<|image_pad|>": 3, "<tool_call>": 4, "<|fim_prefix|>": 3}
    assert types[-1] == 5
    c = model.config
    assert tokens[c.image_token_id] == "<|image_pad|>" and tokens[c.vision_start_token_id] == "<|vision_start|>"
    ids = [f.get(f"tokenizer.ggml.{k}_token_id") for k in ("bos", "eos", "padding")]
    assert [tokens[i] for i in ids] == ["<|endoftext|>", "<|im_end|>", "<|endoftext|>"]
    assert f.get("tokenizer.ggml.add_bos_token") is False
    assert "<|vision_start|><|image_pad|><|vision_end|>" in f.get("tokenizer.chat_template")


def test_mmproj_metadata(converted):
    f = GGUFFile.open(converted[4])
    assert f.arch == "clip"
    assert f.get("clip.projector_type") == "qwen2.5vl_merger"
    want = {"image_size": 560, "patch_size": 14, "embedding_length": 32, "feed_forward_length": 64,
            "block_count": 4, "attention.head_count": 4, "projection_dim": 64, "spatial_merge_size": 2,
            "window_size": 56, "temporal_patch_size": 2}
    assert {k: f.get(f"clip.vision.{k}") for k in want} == want
    assert f.get("clip.has_vision_encoder") is True
    assert f.get("clip.use_silu") is True and f.get("clip.vision.use_silu") is True
    assert f.get("clip.vision.attention.layer_norm_epsilon") == pytest.approx(1e-6)
    assert list(f.get("clip.vision.wa_layer_indexes")) == [1, 2]
    assert f.get("clip.vision.n_wa_pattern") is None       # [1, 2] is not every N-th block
    np.testing.assert_allclose(f.get("clip.vision.image_mean"), [0.48145466, 0.4578275, 0.40821073], rtol=1e-6)
    np.testing.assert_allclose(f.get("clip.vision.image_std"), [0.26862954, 0.26130258, 0.27577711], rtol=1e-6)
    field = gguf.GGUFReader(str(converted[4])).fields["clip.vision.wa_layer_indexes"]
    assert field.types == [gguf.GGUFValueType.ARRAY, gguf.GGUFValueType.UINT32]


def test_tokenizer_matches_hf(converted):
    from tokenizers import Tokenizer as HFTokenizer

    from ggsight.text.tokenizer import Tokenizer
    d, _, _, text, _ = converted
    ours = Tokenizer.from_gguf(GGUFFile.open(text))
    theirs = HFTokenizer.from_file(str(d / "tokenizer.json"))
    assert len(theirs.encode("Hello world").ids) == 2           # the merges make whole words
    for s in ["Hello world", "The user shows the model an image.", "你好，世界！这是一张图片。",
              "digits 1234567890, 3.14 and 2025年", "I've been told he's there, 'RE you sure?",
              "<|im_start|>user\n<|vision_start|><|image_pad|><|image_pad|><|vision_end|>Describe this image."
              "<|im_end|>\n<|im_start|>assistant\n", "<tool_call>{\"a\": 1}</tool_call><|endoftext|>",
              "  double  spaces\n\n\tand tabs  ", "Zürich €5 🚀"]:
        assert ours.encode(s) == theirs.encode(s).ids, s
        assert ours.decode(ours.encode(s)) == s


@pytest.mark.parametrize("outtype,want,atol", [("f16", "F16", 1e-3), ("bf16", "BF16", 1e-2), ("q8_0", "Q8_0", 1e-2)])
def test_outtypes(hf, tmp_path, outtype, want, atol):
    """Matrices in the outtype (the tower: q8_0 -> f16), 1-D tensors and patch kernels f32."""
    d, _, sd = hf
    check_tensors(convert_hf(d, tmp_path / "t.gguf", outtype=outtype, progress=False), expected_text(sd),
                  lambda name, ndim: want if ndim > 1 else "F32", atol)
    tower = "F16" if outtype == "q8_0" else want
    check_tensors(convert_mmproj(d, tmp_path / "m.gguf", outtype=outtype), expected_vision(sd),
                  lambda name, ndim: "F32" if ndim == 1 or "patch_embd" in name else tower, atol)


def test_tied_embeddings(tmp_path):
    """tie_word_embeddings: no lm_head in the checkpoint, no output.weight in the GGUF."""
    model = make_tiny_hf_qwen25vl(tmp_path / "hf", seed=1, tied=True)
    assert not any(k.startswith("lm_head") for k, _ in read_safetensors(tmp_path / "hf" / "model.safetensors"))
    sd = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    check_tensors(convert_hf(tmp_path / "hf", tmp_path / "t.gguf", progress=False), expected_text(sd, tied=True))


def test_cli(hf, tmp_path):
    import argparse
    ap = argparse.ArgumentParser()
    add_parser(ap.add_subparsers())
    d, _, _ = hf
    args = ap.parse_args(["convert", str(d), "-o", str(tmp_path / "t.gguf"), "--mmproj", str(tmp_path / "m.gguf"),
                          "--outtype", "bf16", "--quiet"])
    assert args.func(args) == 0
    assert GGUFFile.open(tmp_path / "m.gguf").get("clip.projector_type") == "qwen2.5vl_merger"


def _copy(d, out, config=None, drop=(), extra=None):
    return variant(d, out, ("tokenizer.json", "tokenizer_config.json"), config, drop, extra)


def test_clear_errors(hf, tmp_path):
    d, _, _ = hf
    text_only = _copy(d, tmp_path / "text_only", lambda c: {k: v for k, v in c.items() if k != "vision_config"})
    with pytest.raises(ConvertError, match="no vision_config"):
        convert_mmproj(text_only, tmp_path / "m.gguf")
    llama = _copy(d, tmp_path / "llama", lambda c: {**c, "architectures": ["FalconForCausalLM"]})
    for convert in (lambda: convert_hf(llama, tmp_path / "t.gguf", progress=False),
                    lambda: convert_mmproj(llama, tmp_path / "m.gguf")):
        with pytest.raises(ConvertError, match=r"unsupported architecture \['FalconForCausalLM'\].*Qwen2_5_VL"):
            convert()
    missing = _copy(d, tmp_path / "missing", drop={"visual.blocks.2.mlp.up_proj.bias"})
    with pytest.raises(ConvertError, match=r"v\.blk\.2\.ffn_up\.bias"):
        convert_mmproj(missing, tmp_path / "m.gguf")
    unknown = _copy(d, tmp_path / "unknown", extra={"visual.blocks.0.attn.q_norm.weight": np.ones(32)})
    with pytest.raises(ConvertError, match="unexpected vision tensor 'visual.blocks.0.attn.q_norm.weight'"):
        convert_mmproj(unknown, tmp_path / "m.gguf")
    unknown = _copy(d, tmp_path / "unknown_text", extra={"model.layers.0.self_attn.q_norm.weight": np.ones(16)})
    with pytest.raises(ConvertError, match="unexpected tensor 'model.layers.0.self_attn.q_norm.weight'"):
        convert_hf(unknown, tmp_path / "t.gguf", progress=False)
    wide = _copy(d, tmp_path / "wide", lambda c: {**c, "vision_config": {**c["vision_config"], "hidden_size": 48}})
    with pytest.raises(ConvertError, match="config implies"):
        convert_mmproj(wide, tmp_path / "m.gguf")


@pytest.mark.parametrize("fullatt,depth,pattern", [
    ([7, 15, 23, 31], 32, 8), ([1, 3], 4, 2), ([3], 4, 4), ([0, 1, 2, 3], 4, 1),
    ([1, 2], 4, None), ([1, 3], 6, None), ([3, 7], 12, None), ([], 4, None)])
def test_wa_pattern(fullatt, depth, pattern):
    """n_wa_pattern only where llama.cpp's rule (i + 1) % p == 0 gives exactly these blocks."""
    assert wa_pattern(tuple(fullatt), depth) == pattern


# Qwen2.5-VL-3B-Instruct's config.json as on the Hub (transformers 4.x layout: text fields at the
# top level, rope_scaling with the M-RoPE sections, in_chans)
HUB_3B = {
    "architectures": ["Qwen2_5_VLForConditionalGeneration"], "model_type": "qwen2_5_vl", "bos_token_id": 151643,
    "eos_token_id": 151645, "image_token_id": 151655, "hidden_size": 2048, "intermediate_size": 11008,
    "max_position_embeddings": 128000, "max_window_layers": 70, "num_attention_heads": 16,
    "num_hidden_layers": 36, "num_key_value_heads": 2, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
    "sliding_window": 32768, "tie_word_embeddings": True, "use_sliding_window": False, "vocab_size": 151936,
    "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]},
    "vision_config": {"depth": 32, "hidden_act": "silu", "hidden_size": 1280, "intermediate_size": 3420,
                      "num_heads": 16, "in_chans": 3, "out_hidden_size": 2048, "patch_size": 14,
                      "spatial_merge_size": 2, "spatial_patch_size": 14, "window_size": 112,
                      "fullatt_block_indexes": [7, 15, 23, 31], "tokens_per_second": 2, "temporal_patch_size": 2}}


def test_hub_config_layout():
    hp = Qwen25VLHparams.from_config(HUB_3B, "3b")
    assert (hp.n_embd, hp.n_layer, hp.n_head, hp.n_head_kv, hp.n_ff, hp.n_ctx) == (2048, 36, 16, 2, 11008, 128000)
    assert (hp.rope_base, hp.rope_sections, hp.tied, hp.n_vocab) == (1e6, (16, 24, 24, 0), True, 151936)
    vp = VisionHparams.from_config(HUB_3B, "3b")
    assert (vp.n_embd, vp.n_layer, vp.in_channels, vp.image_size, vp.out_dim) == (1280, 32, 3, 560, 2048)
    assert wa_pattern(vp.fullatt, vp.n_layer) == 8
    grey = {**HUB_3B, "vision_config": {**HUB_3B["vision_config"], "in_chans": 1}}
    assert VisionHparams.from_config(grey, "x").in_channels == 1
    with pytest.raises(ConvertError, match="mrope_section"):
        Qwen25VLHparams.from_config({**HUB_3B, "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 16]}},
                                    "x")
    with pytest.raises(ConvertError, match="rope type 'yarn'"):
        Qwen25VLHparams.from_config({**HUB_3B, "rope_scaling": {"type": "yarn", "factor": 4.0}}, "x")
    with pytest.raises(ConvertError, match="sliding-window"):
        Qwen25VLHparams.from_config({**HUB_3B, "use_sliding_window": True}, "x")


def test_the_checkpoints_pixel_budget_is_carried_over(hf, tmp_path):
    """Released checkpoints set their own min/max pixels (preprocessor_config.json); the mmproj
    keeps them and the image processor uses them instead of HF's class defaults."""
    from ggsight.models.qwen25vl.processor import QwenImageConfig
    d, _, _ = hf
    src = _copy(d, tmp_path / "hf")
    (src / "preprocessor_config.json").write_text(json.dumps({"min_pixels": 3136, "max_pixels": 12845056}))
    f = GGUFFile.open(convert_mmproj(src, tmp_path / "mm.gguf", progress=False))
    assert f.get("clip.vision.image_min_pixels") == 3136 and f.get("clip.vision.image_max_pixels") == 12845056
    cfg = QwenImageConfig.from_gguf(f)
    assert (cfg.min_pixels, cfg.max_pixels) == (3136, 12845056)
    (src / "preprocessor_config.json").write_text(json.dumps({"size": {"shortest_edge": 1000, "longest_edge": 90000}}))
    f = GGUFFile.open(convert_mmproj(src, tmp_path / "mm2.gguf", progress=False))
    assert f.get("clip.vision.image_max_pixels") == 90000
