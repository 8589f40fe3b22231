"""HF Llama 4 checkpoint -> ggsight's converter -> text GGUF (arch llama4) + mmproj GGUF
(projector llama4), checked against the HF model tensor by tensor: every expected name, shape,
type and value (the experts' split and orientation by what ggml computes with them), nothing
left over, the metadata (ggsight's keys too), and the vocabulary (ggsight's tokenizer on the
converted file == the HF tokenizer.json)."""
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
gguf = pytest.importorskip("gguf")

from ggsight.ggml import GGUFFile  # noqa: E402
from ggsight.store.convert import (ConvertError, add_parser, convert_hf, convert_mmproj,  # noqa: E402
                                   read_safetensors)

from hf_layouts import convert_pair, relayout, variant  # noqa: E402
from make_tiny_hf_llama4 import hf_logits, make_tiny_hf_llama4  # noqa: E402

pytestmark = pytest.mark.torch

N_LAYER, DEPTH, N_EXPERT, N_FF_EXP = 4, 2, 4, 32
MOE = (1, 3)
FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "preprocessor_config.json")


@pytest.fixture(scope="module")
def hf(tmp_path_factory):
    d = tmp_path_factory.mktemp("hf_llama4")
    model = make_tiny_hf_llama4(d, seed=0)
    return d, model, {k: v.detach().numpy() for k, v in model.state_dict().items()}


def relayout_v5(d, out):
    """The checkpoint with the layout transformers 5 gives its other VLMs (base model under
    model.: model.language_model.*, model.vision_model.*, lm_head); Llama 4's own save and the
    Hub use language_model.model.*, language_model.lm_head, vision_model.*."""
    rename = {"language_model.model.": "model.language_model.", "language_model.lm_head.": "lm_head.",
              "vision_model.": "model.vision_model.", "multi_modal_projector.": "model.multi_modal_projector."}
    return relayout(d, out, rename, FILES)


@pytest.fixture(scope="module", params=["hub", "v5"])
def converted(request, hf, tmp_path_factory):
    d, model, sd = hf
    out = tmp_path_factory.mktemp(f"gguf_{request.param}")
    src = d if request.param == "hub" else relayout_v5(d, out / "hf")
    return (d, model, sd, *convert_pair(src, out))


def expected_text(sd, model, tied=False):
    """GGUF name -> reference array, from the HF model's own parameter names."""
    p = "language_model.model."
    # llama3 scaling as what each default frequency is divided by, from HF's own inv_freq
    default = 1.0 / 10_000.0 ** (torch.arange(0, 16, 2, dtype=torch.float32) / 16)
    e = {"token_embd.weight": sd[p + "embed_tokens.weight"], "output_norm.weight": sd[p + "norm.weight"],
         "rope_freqs.weight": (default / model.language_model.model.rotary_emb.inv_freq).numpy()}
    if not tied:
        e["output.weight"] = sd["language_model.lm_head.weight"]
    attn = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm", "self_attn.q_proj": "attn_q",
            "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output"}
    for i in range(N_LAYER):
        b = f"{p}layers.{i}."
        for hf_name, name in attn.items():
            e[f"blk.{i}.{name}.weight"] = sd[f"{b}{hf_name}.weight"]
        if i not in MOE:
            for x in ("gate", "up", "down"):
                e[f"blk.{i}.ffn_{x}.weight"] = sd[f"{b}feed_forward.{x}_proj.weight"]
            continue
        e[f"blk.{i}.ffn_gate_inp.weight"] = sd[f"{b}feed_forward.router.weight"]
        for x in ("gate", "up", "down"):
            e[f"blk.{i}.ffn_{x}_shexp.weight"] = sd[f"{b}feed_forward.shared_expert.{x}_proj.weight"]
        gate_up = sd[f"{b}feed_forward.experts.gate_up_proj"]            # [E, n_embd, 2 * n_ff]: x @ w
        e[f"blk.{i}.ffn_gate_exps.weight"] = gate_up[:, :, :N_FF_EXP].transpose(0, 2, 1)
        e[f"blk.{i}.ffn_up_exps.weight"] = gate_up[:, :, N_FF_EXP:].transpose(0, 2, 1)
        e[f"blk.{i}.ffn_down_exps.weight"] = sd[f"{b}feed_forward.experts.down_proj"].transpose(0, 2, 1)
    return e


def expected_vision(sd):
    v, proj = "vision_model.", "multi_modal_projector."
    e = {"v.patch_embd.weight": sd[v + "patch_embedding.linear.weight"], "v.class_embd": sd[v + "class_embedding"],
         "v.position_embd.weight": sd[v + "positional_embedding_vlm"],
         "mm.model.mlp.1.weight": sd[v + "vision_adapter.mlp.fc1.weight"],
         "mm.model.mlp.2.weight": sd[v + "vision_adapter.mlp.fc2.weight"],
         "mm.model.fc.weight": sd[proj + "linear_1.weight"]}
    for kind in ("weight", "bias"):
        e[f"v.pre_ln.{kind}"], e[f"v.post_ln.{kind}"] = sd[f"{v}layernorm_pre.{kind}"], sd[f"{v}layernorm_post.{kind}"]
    layer = {"input_layernorm": "ln1", "post_attention_layernorm": "ln2", "self_attn.q_proj": "attn_q",
             "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_out",
             "mlp.fc1": "ffn_up", "mlp.fc2": "ffn_down"}
    for i in range(DEPTH):
        for hf_name, name in layer.items():
            for kind in ("weight", "bias"):
                e[f"v.blk.{i}.{name}.{kind}"] = sd[f"{v}model.layers.{i}.{hf_name}.{kind}"]
    return e


def check_tensors(path, expected, types=lambda name, ndim: "F32", atol=0.0):
    tensors = {t.name: t for t in gguf.GGUFReader(str(path)).tensors}
    assert sorted(tensors) == sorted(expected), set(tensors) ^ set(expected)
    for name, ref in expected.items():
        t = tensors[name]
        assert list(t.shape) == list(reversed(ref.shape)), name       # ggml order
        assert t.tensor_type.name == types(name, ref.ndim), name
        got = gguf.quants.dequantize(t.data, t.tensor_type).reshape(ref.shape)
        # rope_freqs: computed (llama.cpp's way) vs HF's inv_freq, so only to float32 rounding
        tol = max(atol, 1e-6 if name == "rope_freqs.weight" else 0.0)
        assert np.abs(got - ref).max() <= tol * np.abs(ref).max(), name


def test_text_tensors(converted):
    _, model, sd, text, _ = converted
    check_tensors(text, expected_text(sd, model))


def test_mmproj_tensors(converted):
    _, _, sd, _, mmproj = converted
    check_tensors(mmproj, expected_vision(sd))


def test_experts_compute_what_hf_computes(converted):
    """Each expert with the GGUF tensors as ggml_mul_mat_id uses them (ggml [n_embd, n_ff, E]:
    row j of expert e is a PyTorch row, out[j] = row . x) equals HF's Llama4TextExperts."""
    _, model, _, text, _ = converted
    t = {t.name: t for t in gguf.GGUFReader(str(text)).tensors}
    x = torch.randn(3, 64)
    for i in MOE:
        gate, up, down = (np.asarray(t[f"blk.{i}.ffn_{k}_exps.weight"].data) for k in ("gate", "up", "down"))
        assert gate.shape == up.shape == (N_EXPERT, N_FF_EXP, 64) and down.shape == (N_EXPERT, 64, N_FF_EXP)
        with torch.no_grad():   # the experts take every token once per expert, expert-major
            ref = model.language_model.model.layers[i].feed_forward.experts(x.repeat(N_EXPERT, 1))
        ref = ref.view(N_EXPERT, 3, 64).numpy()
        xs = x.numpy()
        for e in range(N_EXPERT):
            g, u = xs @ gate[e].T, xs @ up[e].T
            h = g / (1 + np.exp(-g)) * u
            np.testing.assert_allclose(h @ down[e].T, ref[e], rtol=1e-4, atol=1e-5)


def test_nothing_left_over(converted):
    """Both files together hold every parameter of the checkpoint once (the split keeps the
    count), plus the computed rope_freqs (head_dim / 2)."""
    d, _, _, text, mmproj = converted
    n_hf = sum(v.size for _, v in read_safetensors(d / "model.safetensors"))
    n_gguf = sum(int(t.n_elements) for p in (text, mmproj) for t in gguf.GGUFReader(str(p)).tensors)
    assert n_gguf == n_hf + 8


def test_text_metadata(converted):
    d, model, _, text, _ = converted
    f = GGUFFile.open(text)
    assert f.arch == "llama4"
    want = {"context_length": 1024, "embedding_length": 64, "block_count": 4, "feed_forward_length": 64,
            "expert_feed_forward_length": 32, "expert_count": 4, "expert_used_count": 1,
            "interleave_moe_layer_step": 2, "vocab_size": 576, "attention.head_count": 4,
            "attention.head_count_kv": 2, "attention.key_length": 16, "attention.value_length": 16,
            "rope.dimension_count": 16, "rope.freq_base": 10_000.0,
            # ggsight's keys
            "attention.chunk_size": 8, "attention.temperature_tuning": True, "attention.floor_scale": 8,
            "attention.attn_scale": 0.5, "attention.qk_l2_norm": True}
    assert {k: f.get(f"llama4.{k}") for k in want} == want
    assert f.get("llama4.attention.layer_norm_rms_epsilon") == pytest.approx(1e-5)
    assert list(f.get("llama4.attention.rope_layers")) == [True, True, True, False]
    assert list(f.get("llama4.attention.rope_layers")) == [bool(x) for x in model.config.text_config.no_rope_layers]
    assert f.get("llama4.attention.sliding_window") is None and f.get("llama4.rope.scaling.type") is None
    fields = gguf.GGUFReader(str(text)).fields
    assert fields["llama4.attention.rope_layers"].types == [gguf.GGUFValueType.ARRAY, gguf.GGUFValueType.BOOL]
    assert fields["llama4.attention.attn_scale"].types == [gguf.GGUFValueType.FLOAT32]

    tj = json.loads((d / "tokenizer.json").read_text())
    tokens = f.get("tokenizer.ggml.tokens")
    assert len(tokens) == model.config.text_config.vocab_size          # padded, as llama.cpp pads
    assert all(tokens[i] == t for t, i in tj["model"]["vocab"].items())
    assert all(tokens[t["id"]] == t["content"] for t in tj["added_tokens"])
    assert tokens[-1] == f"[PAD{len(tokens) - 1}]"
    assert list(f.get("tokenizer.ggml.merges")) == [" ".join(m) for m in tj["model"]["merges"]]
    assert (f.get("tokenizer.ggml.model"), f.get("tokenizer.ggml.pre")) == ("gpt2", "llama4")
    types = list(f.get("tokenizer.ggml.token_type"))
    assert [types[tokens.index(t)] for t in ("Ġimage", "<|eot|>", "<|patch|>")] == [1, 3, 3] and types[-1] == 5
    c = model.config
    assert [tokens[i] for i in (c.image_token_id, c.boi_token_id, c.eoi_token_id)] == \
        ["<|patch|>", "<|image_start|>", "<|image_end|>"]
    ids = [f.get(f"tokenizer.ggml.{k}_token_id") for k in ("bos", "eos", "padding", "eom")]
    assert [tokens[i] for i in ids] == ["<|begin_of_text|>", "<|eot|>", "<|finetune_right_pad|>", "<|eom|>"]
    assert f.get("tokenizer.ggml.add_bos_token") is True                # the TemplateProcessing's BOS
    assert "<|header_start|>" in f.get("tokenizer.chat_template")


def test_mmproj_metadata(converted):
    f = GGUFFile.open(converted[4])
    assert f.arch == "clip"
    assert f.get("clip.projector_type") == "llama4"
    want = {"image_size": 56, "patch_size": 14, "embedding_length": 32, "feed_forward_length": 128,
            "block_count": 2, "attention.head_count": 4, "projection_dim": 64, "projector.scale_factor": 2,
            "max_patches": 4, "rope.freq_base": 1000.0, "pixel_shuffle_ratio": 0.5}
    assert {k: f.get(f"clip.vision.{k}") for k in want} == want
    assert f.get("clip.has_vision_encoder") is True
    assert f.get("clip.use_gelu") is True and f.get("clip.vision.use_gelu") is True
    assert f.get("clip.vision.attention.layer_norm_epsilon") == pytest.approx(1e-5)
    np.testing.assert_allclose(f.get("clip.vision.image_mean"), [0.5] * 3)
    np.testing.assert_allclose(f.get("clip.vision.image_std"), [0.5] * 3)


TEXTS = ["Hello world", "The user shows the model an image.", "你好，世界！这是一张图片。",
         "digits 1234567890, 3.14 and 2025年", "I've been told he's there, 'RE you sure? IT'S HelloWorld",
         "<|begin_of_text|><|header_start|>user<|header_end|>\n\n<|image_start|><|patch|><|patch|>"
         "<|tile_x_separator|><|patch|><|tile_y_separator|><|image|><|patch|><|image_end|>Describe this image."
         "<|eot|><|header_start|>assistant<|header_end|>\n\n",
         "<|python_start|>{\"a\": 1}<|python_end|><|eom|><|end_of_text|><|finetune_right_pad|>",
         "  double  spaces\n\n\tand tabs  ", "Zürich €5 🚀", "path/to/file\n/x"]


def test_tokenizer_matches_hf(converted):
    from tokenizers import Tokenizer as HFTokenizer

    from ggsight.text.tokenizer import Tokenizer
    d, _, _, text, _ = converted
    ours = Tokenizer.from_gguf(GGUFFile.open(text))
    theirs = HFTokenizer.from_file(str(d / "tokenizer.json"))
    assert len(theirs.encode("Hello world", add_special_tokens=False).ids) == 2   # the merges make words
    for s in TEXTS:
        assert ours.encode(s, add_bos=False) == theirs.encode(s, add_special_tokens=False).ids, s
        assert ours.decode(ours.encode(s, add_bos=False)) == s
    assert ours.encode("Hello world") == theirs.encode("Hello world").ids        # both add the BOS
    names = {ours.vocab.tokens[i] for i in ours.eog_ids}
    assert {"<|eot|>", "<|eom|>", "<|end_of_text|>"} <= names


@pytest.mark.parametrize("outtype,want,atol", [("f16", "F16", 1e-3), ("bf16", "BF16", 1e-2), ("q8_0", "Q8_0", 1e-2)])
def test_outtypes(hf, tmp_path, outtype, want, atol):
    """Matrices in the outtype (the tower: q8_0 -> f16); 1-D tensors, the router and the patch
    and position embeddings f32."""
    d, model, sd = hf
    check_tensors(convert_hf(d, tmp_path / "t.gguf", outtype=outtype, progress=False), expected_text(sd, model),
                  lambda name, ndim: want if ndim > 1 and "ffn_gate_inp" not in name else "F32", atol)
    tower = "F16" if outtype == "q8_0" else want
    check_tensors(convert_mmproj(d, tmp_path / "m.gguf", outtype=outtype), expected_vision(sd),
                  lambda name, ndim: "F32" if ndim == 1 or "_embd" in name else tower, atol)


def test_tied_embeddings(tmp_path):
    """tie_word_embeddings: no lm_head in the checkpoint, no output.weight in the GGUF."""
    model = make_tiny_hf_llama4(tmp_path / "hf", seed=1, tied=True)
    assert not any("lm_head" in k for k, _ in read_safetensors(tmp_path / "hf" / "model.safetensors"))
    sd = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    check_tensors(convert_hf(tmp_path / "hf", tmp_path / "t.gguf", progress=False),
                  expected_text(sd, model, tied=True))


def test_hf_forward_with_two_tiles(hf):
    """The tiny config is one HF runs: two 56x56 tiles -> 2 x 4 image tokens."""
    _, model, _ = hf
    patch = model.config.image_token_id
    ids = torch.tensor([[5, 6] + [patch] * 8 + [7]])
    logits = hf_logits(model, ids, torch.randn(2, 3, 56, 56))
    assert logits.shape == (1, 11, 576) and torch.isfinite(logits).all()
    assert not torch.allclose(logits, hf_logits(model, ids, torch.randn(2, 3, 56, 56)))


def test_cli(hf, tmp_path):
    import argparse
    ap = argparse.ArgumentParser()
    add_parser(ap.add_subparsers())
    d, _, _ = hf
    args = ap.parse_args(["convert", str(d), "-o", str(tmp_path / "t.gguf"), "--mmproj", str(tmp_path / "m.gguf"),
                          "--outtype", "q8_0", "--quiet"])
    assert args.func(args) == 0
    assert GGUFFile.open(tmp_path / "t.gguf").arch == "llama4"
    assert GGUFFile.open(tmp_path / "m.gguf").get("clip.projector_type") == "llama4"


def _copy(d, out, config=None, drop=(), extra=None):
    return variant(d, out, FILES[1:3], config, drop, extra)


def _text(**changes):
    return lambda c: {**c, "text_config": {**c["text_config"], **changes}}


def _vision(**changes):
    return lambda c: {**c, "vision_config": {**c["vision_config"], **changes}}


def test_clear_errors(hf, tmp_path):
    d, _, _ = hf
    L = "language_model.model.layers"
    text_only = _copy(d, tmp_path / "text_only", lambda c: {k: v for k, v in c.items() if k != "vision_config"})
    with pytest.raises(ConvertError, match="no vision_config"):
        convert_mmproj(text_only, tmp_path / "m.gguf")
    llama = _copy(d, tmp_path / "llama", lambda c: {**c, "architectures": ["FalconForCausalLM"]})
    with pytest.raises(ConvertError, match=r"unsupported architecture \['FalconForCausalLM'\].*Llama4ForCond"):
        convert_hf(llama, tmp_path / "t.gguf", progress=False)
    missing = _copy(d, tmp_path / "missing", drop={f"{L}.3.feed_forward.experts.gate_up_proj"})
    with pytest.raises(ConvertError, match=r"blk\.3\.ffn_gate_exps\.weight, blk\.3\.ffn_up_exps\.weight"):
        convert_hf(missing, tmp_path / "t.gguf", progress=False)
    biased = _copy(d, tmp_path / "biased", extra={f"{L}.0.self_attn.q_proj.bias": np.ones(64, np.float32)})
    with pytest.raises(ConvertError, match=f"unexpected tensor '{L}.0.self_attn.q_proj.bias'"):
        convert_hf(biased, tmp_path / "t.gguf", progress=False)
    # every layer MoE by the config, but layer 0 holds a dense MLP
    all_moe = _copy(d, tmp_path / "all_moe", _text(interleave_moe_layer_step=1, moe_layers=None))
    with pytest.raises(ConvertError, match=f"unexpected tensor '{L}.0.feed_forward.down_proj.weight'"):
        convert_hf(all_moe, tmp_path / "t.gguf", progress=False)
    narrow = _copy(d, tmp_path / "narrow", _text(intermediate_size=16))
    with pytest.raises(ConvertError, match=r"(gate_up|down)_proj of blk\.1\.ffn_\w+_exps\.weight has shape "
                                           r"\[4, (64, 64|32, 64)\], the config implies \[4, (64, 32|16, 64)\]"):
        convert_hf(narrow, tmp_path / "t.gguf", progress=False)
    unknown = _copy(d, tmp_path / "unknown", extra={"vision_model.model.layers.0.self_attn.q_norm.weight": np.ones(8)})
    with pytest.raises(ConvertError, match="unexpected vision tensor 'vision_model.model.layers.0.self_attn.q_norm"):
        convert_mmproj(unknown, tmp_path / "m.gguf")
    wide = _copy(d, tmp_path / "wide", _vision(projector_input_dim=64, projector_output_dim=64, vision_output_dim=64))
    with pytest.raises(ConvertError, match="config implies"):
        convert_mmproj(wide, tmp_path / "m.gguf")


def test_no_chunking_and_no_preprocessor_config(hf, tmp_path):
    """attention_chunk_size null (layer_types all full, as HF then derives them): no chunk_size,
    and llama.cpp's sliding_window 0; no preprocessor_config.json: no max_patches, HF's mean/std."""
    d, _, _ = hf
    src = _copy(d, tmp_path / "hf", _text(attention_chunk_size=None, layer_types=["full_attention"] * 4))
    f = GGUFFile.open(convert_hf(src, tmp_path / "t.gguf", progress=False))
    assert f.get("llama4.attention.chunk_size") is None and f.get("llama4.attention.sliding_window") == 0
    assert list(f.get("llama4.attention.rope_layers")) == [True, True, True, False]
    m = GGUFFile.open(convert_mmproj(src, tmp_path / "m.gguf"))
    assert m.get("clip.vision.max_patches") is None
    np.testing.assert_allclose(m.get("clip.vision.image_mean"), [0.5] * 3)
