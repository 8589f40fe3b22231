"""The dense Llama-style decoders (llama, Mistral as llama, qwen2, qwen3, granite) beyond the logit
comparison of test_conformance.py / test_llamacpp_files.py: each GGUF's chat template (the real
Llama 3.1 / Mistral Nemo / Qwen2.5 / Qwen3 / Granite 3.3 one) renders a multi-turn conversation
with a system prompt as transformers' apply_chat_template did, to the same token ids; the tiny
models have their features on; prefilling in small batches equals one pass. No torch needed."""
import json
from pathlib import Path

import numpy as np
import pytest

import ggsight

DATA = Path(__file__).parent / "data"
SUITES = ["llama", "llama_tied", "llama_mistral", "qwen2", "qwen3", "granite"]
FILES = [(s, conv) for s in SUITES for conv in ("conformance", "llamacpp")]
_models: dict = {}


def suite(name: str) -> dict:
    return json.loads((DATA / "conformance" / name / "cases.json").read_text(encoding="utf-8"))


def model(name: str, converter: str, n_batch: int = 64) -> ggsight.Model:
    key = (name, converter, n_batch)
    if key not in _models:
        _models[key] = ggsight.load(DATA / converter / name / "text.gguf", n_ctx=256, n_batch=n_batch, kv_type="f32")
    return _models[key]


@pytest.mark.parametrize("name,converter", FILES)
def test_chat_template_renders_as_transformers(name, converter):
    m, chat = model(name, converter), suite(name)["chat"]
    assert chat["messages"][0]["role"] == "system" and len(chat["messages"]) >= 4
    rendered = m._render(chat["messages"])
    assert rendered == chat["rendered"]
    assert m.tokenize(rendered) == chat["ids"]


@pytest.mark.parametrize("name,converter", FILES)
def test_the_tiny_models_have_their_features_on(name, converter):
    m = model(name, converter)
    c, longest = m.net.config, max(len(case["ids"]) for case in suite(name)["cases"])
    assert c.n_head_kv < c.n_head                                          # GQA everywhere
    tied = "output.weight" not in m.weights
    assert tied == (name in ("llama_tied", "qwen2", "granite"))
    if name == "llama":   # llama3 scaling: rope_freqs divides every pair; prompts pass 16 positions
        assert m.net.rope.freq_factors is not None and longest > 16
        assert suite(name)["effects"]["llama3_rope_scaling"] > 0.1
    if name == "llama_mistral":
        assert c.head_dim != c.n_embd // c.n_head
        if converter == "conformance":   # llama.cpp's files carry no window
            assert 0 < c.sliding_window < longest and suite(name)["effects"]["sliding_window"] > 0.1
        else:
            assert c.sliding_window == 0
    if name == "llama_tied":
        assert m.net.layers[0].attn.bq is not None and m.net.layers[0].ffn.b_up is not None
    if name == "qwen2":
        assert m.net.layers[0].attn.bq is not None and m.net.layers[0].attn.bo is None
    if name == "qwen3":
        assert m.net.layers[0].attn.q_norm is not None and c.head_dim != c.n_embd // c.n_head
    if name == "granite":
        assert c.embedding_scale != 1 and c.residual_scale != 1 and c.logit_scale != 1
        assert c.attention_scale != c.head_dim ** -0.5


@pytest.mark.parametrize("name", SUITES)
def test_prefill_in_small_batches_equals_one_pass(name):
    prompt = suite(name)["cases"][0]["prompt"]
    _, whole = model(name, "conformance").evaluate(prompt)
    _, chunked = model(name, "conformance", n_batch=5).evaluate(prompt)
    assert np.abs(chunked - whole).max() <= 1e-5 * np.abs(whole).max()
