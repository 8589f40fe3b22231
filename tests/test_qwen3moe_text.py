"""Qwen3-MoE beyond the logit comparison (test_conformance.py, test_llamacpp_files.py): the chat
template of the GGUF renders as transformers renders it, the tiny model's routing really ties,
how ggml's expert choice breaks ties (not as torch.topk does), and prefilling in small batches
equals one pass. No torch needed."""
import json
from pathlib import Path

import numpy as np
import pytest

import ggsight
from ggsight.ggml import Backend, Context, Scheduler
from ggsight.nn.moe import top_k_experts

DATA = Path(__file__).parent / "data"
OURS, LLAMACPP = DATA / "conformance" / "qwen3moe", DATA / "llamacpp" / "qwen3moe"
SUITE = json.loads((OURS / "cases.json").read_text())


@pytest.fixture(scope="module", params=[OURS, LLAMACPP], ids=["ggsight-converted", "llamacpp-converted"])
def model(request):
    return ggsight.load(request.param / "text.gguf", n_ctx=256, n_batch=64, kv_type="f32")


def test_chat_template_renders_as_transformers(model):
    chat = SUITE["chat"]
    assert chat["messages"][0]["role"] == "system" and len(chat["messages"]) == 4
    assert model._render(chat["messages"]) == chat["rendered"]


def test_the_tiny_model_routes_with_ties_on_the_top_k_boundary(model):
    """Experts 0 and 1 are copies: HF scored them alike on every token of every layer, and on some
    tokens only one of the two was among the top 2, where the tie decides (identical experts:
    either choice gives the same output, which the logit tests confirm)."""
    c = model.net.config
    assert (c.n_expert, c.n_expert_used, c.norm_topk) == (8, 2, True)
    for name, ties in SUITE["router_ties"].items():
        assert ties["ties"] == ties["routings"] and ties["on_boundary"] > 0, name


def ggml_top_k(rows: np.ndarray, k: int) -> np.ndarray:
    ctx = Context(16)
    x = ctx.input("probs", rows.shape[::-1])
    got, = Scheduler(Backend(n_threads=1)).run(ctx.graph(top_k_experts(x.soft_max(), k).cont()), {x: rows})
    return got


def test_ggml_breaks_top_k_ties_by_expert_order_and_torch_does_not():
    """What ggml picks among equal scores (llama.cpp's argsort, a std::sort that keeps equal
    scores in expert order for up to 16 experts): the lowest experts. torch.topk (recorded by
    the fixture script) picks others on these rows, so a model whose tied experts differ would
    route differently in the two; real routers tie with probability ~0."""
    t = SUITE["topk_ties"]
    rows = np.asarray(t["rows"], np.float32)
    got = ggml_top_k(rows, t["k"])
    lowest_first = [sorted(range(rows.shape[1]), key=lambda e: (-row[e], e))[:t["k"]] for row in rows]
    assert got.tolist() == lowest_first
    differs = [i for i, (a, b) in enumerate(zip(got.tolist(), t["torch_topk"])) if sorted(a) != sorted(b)]
    assert differs == [0, 3, 4]   # e.g. scores [1, 1, 5, 0, ...]: ggml {2, 0}, torch {2, 1}


def test_prefill_in_small_batches_equals_one_pass(model):
    prompt = SUITE["cases"][0]["prompt"]
    _, whole = model.evaluate(prompt)
    small = ggsight.load(model.path, n_ctx=256, n_batch=5, kv_type="f32")
    _, chunked = small.evaluate(prompt)
    assert np.abs(chunked - whole).max() <= 1e-5 * np.abs(whole).max()
