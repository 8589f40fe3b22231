"""Gemma 2 beyond the logit comparison (test_conformance.py, test_llamacpp_files.py): the chat
template of the GGUF renders as transformers renders it, the tiny model's features really are
on, and prefilling in small batches equals one pass. No torch needed."""
import json
from pathlib import Path

import numpy as np
import pytest

import ggsight
from ggsight.text.chat import ChatTemplateError

DATA = Path(__file__).parent / "data"
OURS, LLAMACPP = DATA / "conformance" / "gemma2", DATA / "llamacpp" / "gemma2"
SUITE = json.loads((OURS / "cases.json").read_text())


@pytest.fixture(scope="module", params=[OURS, LLAMACPP], ids=["ggsight-converted", "llamacpp-converted"])
def model(request):
    return ggsight.load(request.param / "text.gguf", n_ctx=256, n_batch=64, kv_type="f32")


def test_chat_template_renders_as_transformers(model):
    chat = SUITE["chat"]
    assert model._render(chat["messages"]) == chat["rendered"]


def test_a_system_turn_is_refused_as_transformers_refuses_it(model):
    chat = SUITE["chat"]
    assert chat["error"] == "System role not supported"
    with pytest.raises(ChatTemplateError, match=chat["error"]):
        model._render(chat["system_messages"])


def test_the_tiny_model_has_every_feature_on(model):
    c = model.net.config
    longest = max(len(case["ids"]) for case in SUITE["cases"])
    assert c.sliding_window < longest
    assert [c.is_global(il) for il in range(c.n_layer)] == [False, True, False, True]
    assert c.attn_softcap and c.final_logit_softcap
    # each cap moves HF's logits by a third (recorded by the script): they bite
    assert min(SUITE["softcap_effect"].values()) > 0.1


def test_query_pre_attn_scalar_differs_from_head_dim_in_our_file():
    m = ggsight.load(OURS / "text.gguf", n_ctx=64, kv_type="f32")
    c = m.net.config
    assert m.gguf.get("gemma2.attention.query_pre_attn_scalar") == 12 != c.head_dim
    assert c.attn_scale == pytest.approx(12 ** -0.5)


def test_prefill_in_small_batches_equals_one_pass(model):
    prompt = SUITE["cases"][0]["prompt"]
    _, whole = model.evaluate(prompt)
    small = ggsight.load(model.path, n_ctx=256, n_batch=3, kv_type="f32")
    _, chunked = small.evaluate(prompt)
    assert np.abs(chunked - whole).max() <= 1e-5 * np.abs(whole).max()
