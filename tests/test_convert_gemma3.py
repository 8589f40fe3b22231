"""HF Gemma 3 checkpoint -> ggsight's converter -> GGUF -> ggsight's runtime == transformers.

The tiny random model (tests/make_tiny_hf_gemma3.py) has a window of 8 and a 40-token prompt,
linear rope scaling, query_pre_attn_scalar != head_dim, a final logit softcap and non-zero
norm weights. Run with -s to see the measured errors."""
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("gguf")

from ggsight.cache import KVCache  # noqa: E402
from ggsight.engine.runner import Runner  # noqa: E402
from ggsight.ggml import Backend, DType, GGUFFile, Scheduler, load_weights  # noqa: E402
from ggsight.models import model_class  # noqa: E402
from ggsight.store.convert import ConvertError, convert_hf, read_safetensors  # noqa: E402

from make_tiny_hf_gemma3 import make_tiny_hf_gemma3  # noqa: E402

pytestmark = pytest.mark.torch

N_PROMPT, N_GEN = 40, 10


@pytest.fixture(scope="module")
def sched():
    return Scheduler(Backend(n_threads=2))


@pytest.fixture(scope="module")
def hf(tmp_path_factory):
    d = tmp_path_factory.mktemp("hf_gemma3")
    model = make_tiny_hf_gemma3(d, seed=1)
    n_vocab = model.config.vocab_size
    # seed 1 + this prompt: a greedy continuation that changes token several times
    prompt = [2] + [int(t) for t in np.random.default_rng(3).integers(7, n_vocab, N_PROMPT - 1)]
    return d, model, prompt


def hf_logits(model, prompt):
    with torch.no_grad():
        return model(torch.tensor([prompt])).logits[0].float().numpy()


def hf_greedy(model, prompt, n):
    with torch.no_grad():
        out = model.generate(torch.tensor([prompt]), max_new_tokens=n, do_sample=False, min_new_tokens=n,
                             eos_token_id=None, pad_token_id=0)
    return out[0, len(prompt):].tolist()


def load(path):
    f = GGUFFile.open(path)
    return model_class(f.arch)(f, load_weights(f))


def runner(net, sched, n_batch=64, n_ctx=128):
    c = net.config
    kinds = net.cache_kinds()
    cache = KVCache(kinds, c.head_dim, [c.n_head_kv] * len(kinds), n_ctx, n_batch, DType.F32)
    return Runner(net, cache, sched, n_batch)


def greedy(net, sched, prompt, n):
    r = runner(net, sched)
    logits = r.evaluate(prompt, 0)[-1]
    out = []
    for i in range(n):
        tok = int(np.argmax(logits))
        out.append(tok)
        logits = r.evaluate([tok], len(prompt) + i)[-1]
    return out


def rel_err(got, ref):
    return float(np.abs(got - ref).max() / np.abs(ref).max())


def test_f32_matches_transformers(hf, sched, tmp_path):
    d, model, prompt = hf
    path = convert_hf(d, tmp_path / "f32.gguf", outtype="f32", progress=False)
    net = load(path)
    ref = hf_logits(model, prompt)
    got = runner(net, sched).evaluate(prompt, 0, all_logits=True)
    err = rel_err(got, ref)
    print(f"\nf32: max|diff|/max|logit| over all {len(prompt)} positions = {err:.2e}")
    assert got.shape == ref.shape
    assert err < 1e-5
    ours, theirs = greedy(net, sched, prompt, N_GEN), hf_greedy(model, prompt, N_GEN)
    print(f"greedy ggsight {ours}\ngreedy hf      {theirs}")
    assert ours == theirs


def test_final_logit_softcap_is_applied(hf, sched, tmp_path):
    """Gemma3ForCausalLM applies final_logit_softcapping (30 here); the fixture's logits reach
    where tanh bends them, so the comparison above could not pass without the cap."""
    d, model, prompt = hf
    f = GGUFFile.open(convert_hf(d, tmp_path / "cap.gguf", outtype="f32", progress=False))
    assert f.get("gemma3.final_logit_softcapping") == 30.0
    ref = hf_logits(model, prompt)
    cap, model.config.final_logit_softcapping = model.config.final_logit_softcapping, None
    try:
        uncapped = hf_logits(model, prompt)
    finally:
        model.config.final_logit_softcapping = cap
    print(f"\nsoftcap moves the logits by {rel_err(ref, uncapped):.2e} (relative); max |logit| "
          f"{np.abs(uncapped).max():.1f} before the cap")
    assert rel_err(ref, uncapped) > 0.05 and np.abs(ref).max() < 30.0
    got = runner(load(f.path), sched).evaluate(prompt, 0, all_logits=True)
    assert rel_err(got, ref) < 1e-5 and rel_err(got, uncapped) > 0.05


# q8_0: the runtime also rounds activations to 8 bits, and 6 layers of 64-wide rows with a
# large final norm amplify that; the weights themselves are checked below.
@pytest.mark.parametrize("outtype,tol", [("f16", 1e-2), ("bf16", 5e-2), ("q8_0", 0.2)])
def test_lower_precision_outtypes_run(hf, sched, tmp_path, outtype, tol):
    d, model, prompt = hf
    path = convert_hf(d, tmp_path / f"{outtype}.gguf", outtype=outtype, progress=False)
    ref = hf_logits(model, prompt)
    # every outtype the converter writes must run: an error here is a failure, never a skip
    got = runner(load(path), sched).evaluate(prompt, 0, all_logits=True)
    err = rel_err(got, ref)
    print(f"\n{outtype}: max|diff|/max|logit| = {err:.2e}")
    assert err < tol


@pytest.mark.parametrize("outtype", ["f16", "bf16", "q8_0"])
def test_lower_precision_weights(hf, tmp_path, outtype):
    """Each tensor decodes back to the HF weight (norms + 1) within the type's rounding;
    1-D tensors stay f32, token_embd is quantized too."""
    import gguf
    d, model, _ = hf
    r = gguf.GGUFReader(str(convert_hf(d, tmp_path / f"w{outtype}.gguf", outtype=outtype, progress=False)))
    hf_w = dict(read_safetensors(d / "model.safetensors"))
    inv = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
           "blk.2.ffn_down.weight": "model.layers.2.mlp.down_proj.weight",
           "blk.5.attn_k_norm.weight": "model.layers.5.self_attn.k_norm.weight"}
    want = {"f16": "F16", "bf16": "BF16", "q8_0": "Q8_0"}[outtype]
    rtol = {"f16": 1e-3, "bf16": 1e-2, "q8_0": 1e-2}[outtype]
    for t in r.tensors:
        if t.name not in inv:
            continue
        ref = np.asarray(hf_w[inv[t.name]], np.float32) + (1.0 if t.name.endswith("norm.weight") else 0.0)
        got = gguf.quants.dequantize(t.data, t.tensor_type).reshape(ref.shape)
        assert t.tensor_type.name == ("F32" if ref.ndim == 1 else want), t.name
        assert np.abs(got - ref).max() <= rtol * np.abs(ref).max(), t.name


def test_bf16_checkpoint_decoding(tmp_path, sched):
    d = tmp_path / "hf_bf16"
    model = make_tiny_hf_gemma3(d, bf16=True, seed=2)
    names = dict(read_safetensors(d / "model.safetensors"))
    emb = names["model.embed_tokens.weight"]
    assert emb.dtype == np.float32
    np.testing.assert_array_equal(emb, model.model.embed_tokens.weight.detach().numpy())
    path = convert_hf(d, tmp_path / "bf16in.gguf", outtype="f32", progress=False)
    prompt = [2] + list(range(10, 40))
    err = rel_err(runner(load(path), sched).evaluate(prompt, 0, all_logits=True), hf_logits(model, prompt))
    print(f"\nbf16 checkpoint -> f32 GGUF: {err:.2e}")
    assert err < 1e-5


def test_vocabulary_and_metadata(hf, tmp_path):
    d, model, _ = hf
    path = convert_hf(d, tmp_path / "meta.gguf", progress=False)
    f = GGUFFile.open(path)
    tj = json.loads((d / "tokenizer.json").read_text())
    tokens = f.get("tokenizer.ggml.tokens")
    assert len(tokens) == model.config.vocab_size
    assert all(tokens[i] == t for t, i in tj["model"]["vocab"].items())
    types = list(f.get("tokenizer.ggml.token_type"))
    assert types[3] == 2 and types[tokens.index("<end_of_turn>")] == 3 and types[tokens.index("<0x41>")] == 6
    assert types[tokens.index("▁hello")] == 1
    assert (f.get("tokenizer.ggml.bos_token_id"), f.get("tokenizer.ggml.eos_token_id")) == (2, 1)
    assert "<start_of_turn>" in f.get("tokenizer.chat_template")
    assert f.get("gemma3.attention.sliding_window") == 8
    assert f.get("gemma3.attention.sliding_window_pattern") == 6
    assert f.get("gemma3.rope.freq_base_swa") == 10_000.0
    assert f.get("gemma3.rope.scaling.factor") == 2.0
    assert f.get("gemma3.attention.query_pre_attn_scalar") == 24
    assert f.get("gemma3.final_logit_softcapping") == 30.0


def test_tokenizer_matches_hf(hf, tmp_path):
    """ggsight's tokenizer, built from the converted vocabulary, == the HF tokenizer.json."""
    from tokenizers import Tokenizer as HFTokenizer

    from ggsight.text.tokenizer import Tokenizer
    d, _, _ = hf
    f = GGUFFile.open(convert_hf(d, tmp_path / "tok.gguf", progress=False))
    ours = Tokenizer.from_gguf(f)
    theirs = HFTokenizer.from_file(str(d / "tokenizer.json"))
    for text in ["hello world", "the tiny gemma model, testing attention!", "Zürich €5 hello",
                 "<start_of_turn>user\nhello<end_of_turn>\n", "  double  spaces and\nnewline"]:
        assert ours.encode(text) == theirs.encode(text).ids, text


def test_multimodal_checkpoint_text_part(hf, sched, tmp_path):
    """Gemma3ForConditionalGeneration keeps text weights under model.language_model. (transformers
    5) or language_model.model. (Hub): both convert to the same text GGUF. Its head, unlike
    Gemma3ForCausalLM's, applies no final logit softcap, and neither does the converted file."""
    from safetensors.numpy import save_file
    d, model, prompt = hf
    cap, model.config.final_logit_softcapping = model.config.final_logit_softcapping, None
    try:
        ref = hf_logits(model, prompt)
    finally:
        model.config.final_logit_softcapping = cap
    cfg = json.loads((d / "config.json").read_text())
    tensors = dict(read_safetensors(d / "model.safetensors"))
    for prefix in ("model.language_model.", "language_model.model."):
        mm = tmp_path / prefix.strip(".").replace(".", "_")
        mm.mkdir()
        out = {prefix + k[len("model."):]: np.ascontiguousarray(v) for k, v in tensors.items()}
        out["model.vision_tower.vision_model.post_layernorm.weight"] = np.ones(8, np.float32)
        save_file(out, str(mm / "model.safetensors"))
        (mm / "config.json").write_text(json.dumps({
            "architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3",
            "text_config": {k: v for k, v in cfg.items() if k != "architectures"}}))
        for name in ("tokenizer.json", "tokenizer_config.json"):
            (mm / name).write_bytes((d / name).read_bytes())
        got = runner(load(convert_hf(mm, tmp_path / f"{mm.name}.gguf", progress=False)), sched).evaluate(
            prompt, 0, all_logits=True)
        assert rel_err(got, ref) < 1e-5


def test_clear_errors(hf, tmp_path):
    d, _, _ = hf
    with pytest.raises(ConvertError, match="config.json"):
        convert_hf(tmp_path, tmp_path / "x.gguf", progress=False)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text(json.dumps({"architectures": ["FalconForCausalLM"]}))
    with pytest.raises(ValueError, match="unsupported architecture"):
        convert_hf(bad, tmp_path / "x.gguf", progress=False)
    # drop one tensor: the error names it
    from safetensors.numpy import save_file
    part = tmp_path / "part"
    part.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        (part / name).write_bytes((d / name).read_bytes())
    tensors = {k: np.ascontiguousarray(v) for k, v in read_safetensors(d / "model.safetensors")
               if k != "model.layers.3.mlp.up_proj.weight"}
    save_file(tensors, str(part / "model.safetensors"))
    with pytest.raises(ConvertError, match="blk.3.ffn_up.weight"):
        convert_hf(part, tmp_path / "x.gguf", progress=False)


def test_sentencepiece_model_only(hf, sched, tmp_path):
    """A checkpoint with tokenizer.model and no tokenizer.json: the vocabulary comes from the
    SentencePiece proto (scores and piece types as stored); the embedding loses the rows past
    the vocabulary, as llama.cpp's converter does."""
    spm = pytest.importorskip("sentencepiece")
    d, model, prompt = hf
    text = " ".join(["the tiny gemma model looks at a window of attention logits and says hello world"] * 20
                    + ["Zürich, 2026: numbers 12345 and punctuation!?"] * 5)
    (tmp_path / "corpus.txt").write_text(text.replace(". ", "\n"), encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=str(tmp_path / "corpus.txt"), model_prefix=str(tmp_path / "sp"), vocab_size=360,
        model_type="bpe", byte_fallback=True, pad_id=0, eos_id=1, bos_id=2, unk_id=3,
        user_defined_symbols=["<start_of_turn>", "<end_of_turn>"], add_dummy_prefix=False,
        remove_extra_whitespaces=False, normalization_rule_name="identity", minloglevel=2)
    sp_dir = tmp_path / "sp_only"
    sp_dir.mkdir()
    for name in ("config.json", "model.safetensors"):
        (sp_dir / name).write_bytes((d / name).read_bytes())
    (sp_dir / "tokenizer.model").write_bytes((tmp_path / "sp.model").read_bytes())
    path = convert_hf(sp_dir, tmp_path / "sp.gguf", progress=False)
    f = GGUFFile.open(path)
    assert len(f.get("tokenizer.ggml.tokens")) == 360
    import gguf
    emb = next(t for t in gguf.GGUFReader(str(path)).tensors if t.name == "token_embd.weight")
    assert list(emb.shape) == [64, 360]     # ggml order: [n_embd, n_vocab]
    from ggsight.text.tokenizer import Tokenizer
    sp = spm.SentencePieceProcessor(model_file=str(tmp_path / "sp.model"))
    ours = Tokenizer.from_gguf(f)
    for t in ["the tiny gemma model", "hello world, Zürich 12345", "qqq xyz €"]:
        assert ours.encode(t) == [2] + sp.encode(t), t
    got = runner(load(path), sched).evaluate(prompt[:20], 0, all_logits=True)
    assert got.shape == (20, 360)
    assert rel_err(got, hf_logits(model, prompt[:20])[:, :360]) < 1e-5


# Config layouts of released checkpoints (transformers 4.5x on the Hub): sparse text_config
# with Gemma3TextConfig defaults, rope_scaling + rope_local_base_freq, sliding_window_pattern.
HUB_4B = {"architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3", "eos_token_id": [1, 106],
          "text_config": {"hidden_size": 2560, "intermediate_size": 10240, "model_type": "gemma3_text",
                          "num_hidden_layers": 34, "rope_scaling": {"factor": 8.0, "rope_type": "linear"},
                          "sliding_window": 1024}}
HUB_1B = {"architectures": ["Gemma3ForCausalLM"], "head_dim": 256, "hidden_size": 1152, "intermediate_size": 6912,
          "max_position_embeddings": 32768, "num_attention_heads": 4, "num_hidden_layers": 26,
          "num_key_value_heads": 1, "query_pre_attn_scalar": 256, "rope_local_base_freq": 10000,
          "rope_scaling": None, "rope_theta": 1000000, "sliding_window": 512, "sliding_window_pattern": 6,
          "final_logit_softcapping": None, "attn_logit_softcapping": None, "vocab_size": 262144}


def test_hub_config_layouts():
    from ggsight.models.gemma3.convert import Gemma3Hparams
    hp = Gemma3Hparams.from_config(HUB_4B, "4b")
    assert (hp.n_embd, hp.n_layer, hp.n_head, hp.n_head_kv, hp.head_dim) == (2560, 34, 8, 4, 256)
    assert (hp.rope_base, hp.rope_base_swa, hp.rope_linear_factor) == (1e6, 1e4, 8.0)
    assert (hp.sliding_window, hp.swa_pattern, hp.query_pre_attn_scalar, hp.tied) == (1024, 6, 256, True)
    hp = Gemma3Hparams.from_config(HUB_1B, "1b")
    assert (hp.n_embd, hp.n_head_kv, hp.rope_linear_factor, hp.swa_pattern, hp.n_ctx) == (1152, 1, 1.0, 6, 32768)
    assert hp.final_logit_softcap is None
    bad = {**HUB_1B, "layer_types": ["sliding_attention", "full_attention", "sliding_attention"] * 8
           + ["full_attention", "full_attention"]}
    with pytest.raises(ValueError, match="not periodic"):
        Gemma3Hparams.from_config(bad, "x")
    with pytest.raises(ValueError, match="rope type"):
        Gemma3Hparams.from_config({**HUB_1B, "rope_scaling": {"rope_type": "yarn", "factor": 4.0}}, "x")


def test_cli_parser(hf, tmp_path):
    import argparse

    from ggsight.store.convert import add_parser
    ap = argparse.ArgumentParser()
    add_parser(ap.add_subparsers())
    d, _, _ = hf
    args = ap.parse_args(["convert", str(d), str(tmp_path / "cli.gguf"), "--outtype", "q8_0", "--quiet"])
    assert args.func(args) == 0 and (tmp_path / "cli.gguf").stat().st_size > 0
