"""Qwen2.5-VL through the engine on the committed conformance model (no torch needed): image
runs split across micro-batches, prefix reuse and M-RoPE position state, token budgets."""
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import ggsight

ROOT = Path(__file__).parent / "data" / "conformance" / "qwen25vl"
TEXT, MMPROJ = ROOT / "text.gguf", ROOT / "mmproj.gguf"
IMG = str(ROOT / "one_image_non_square-0.png")   # 35 image tokens


def load(**kw):
    return ggsight.load(TEXT, mmproj=MMPROJ, n_ctx=256, kv_type="f32", **kw)


def rel(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


def test_image_wider_than_the_batch_splits_with_the_same_logits():
    prompt = "hello" + ggsight.IMAGE + " the model"
    ids, ref = load(n_batch=64).evaluate(prompt, images=[IMG])
    small = load(n_batch=8)                                       # the image's 35 tokens split 5 ways
    ids2, got = small.evaluate(prompt, images=[IMG])
    assert ids == ids2 and small.runner.graphs_built >= 2
    assert rel(got, ref) < 1e-5 and (got.argmax(1) == ref.argmax(1)).all()


def test_prefix_reuse_equals_full_recomputation():
    m = load(n_batch=16)
    first = "hello" + ggsight.IMAGE + " what is it"
    a = m.generate(first, images=[IMG], raw=True, max_tokens=4, temperature=0)
    follow = first + " and then the window"
    b = m.generate(follow, images=[IMG], raw=True, max_tokens=4, temperature=0)
    assert m.last_reused > 35          # the image and the text before the edit were not evaluated again
    fresh = load(n_batch=16).generate(follow, images=[IMG], raw=True, max_tokens=4, temperature=0)
    assert b.tokens == fresh.tokens and a.done
    r = m.chat([{"role": "user", "content": "what is it", "images": [IMG]}], options={"temperature": 0, "num_predict": 3})
    assert r.done and m.image_encodes == 1   # the same image is embedded once


def test_text_after_an_image_prompt_starts_from_fresh_positions():
    m = load()
    m.evaluate("hello" + ggsight.IMAGE + " the model", images=[IMG])
    _, got = m.evaluate("hello world the model")
    _, ref = load().evaluate("hello world the model")
    assert rel(got, ref) < 1e-6


def test_token_budget_and_sizes():
    m = load(image_options={"max_tokens": 16})
    ids, _ = m.evaluate(ggsight.IMAGE + " x", images=[IMG])
    n = ids.count(m.images.image_token_id)
    assert 0 < n <= 16
    wide = Image.fromarray(np.zeros((30, 2000, 3), np.uint8))
    ids, _ = load().evaluate(ggsight.IMAGE, images=[wide])
    assert ids.count(m.images.image_token_id) > 0


def test_bad_images_and_options_raise():
    m = load()
    with pytest.raises(ValueError, match="aspect ratio"):
        m.evaluate(ggsight.IMAGE, images=[Image.fromarray(np.zeros((2, 1000, 3), np.uint8))])
    with pytest.raises(ValueError, match="not a readable image"):
        m.evaluate(ggsight.IMAGE, images=[b"not an image"])
    with pytest.raises(ValueError, match="unknown to Qwen2.5-VL"):
        load(image_options={"pan_and_scan": True})
    with pytest.raises(ggsight.InvalidArgumentError, match="mmproj"):
        ggsight.load(TEXT, n_ctx=64).evaluate(ggsight.IMAGE, images=[IMG])


def test_a_call_can_set_its_own_image_token_budget():
    m = load()
    full, _ = m.evaluate(ggsight.IMAGE, images=[IMG])
    small, _ = m.evaluate(ggsight.IMAGE, images=[IMG], max_image_tokens=8)
    n_full, n_small = full.count(m.images.image_token_id), small.count(m.images.image_token_id)
    assert n_small <= 8 < n_full
    r = m.generate(ggsight.IMAGE + " x", images=[IMG], raw=True, max_tokens=2, temperature=0, max_image_tokens=8)
    assert r.done
    with pytest.raises(ValueError, match="at least 1"):
        m.evaluate(ggsight.IMAGE, images=[IMG], max_image_tokens=0)


def test_a_new_image_after_a_graph_of_the_same_shape():
    """Encoding an image re-uses the scheduler's buffers; the text graph kept for reuse must be
    allocated again before it runs (it crashed once)."""
    other = str(ROOT / "two_images_different_sizes-0.png")          # same size, other pixels
    m = load()
    m.evaluate("hello" + ggsight.IMAGE, images=[IMG])
    ids, got = m.evaluate("hello" + ggsight.IMAGE, images=[other])
    ids2, ref = load().evaluate("hello" + ggsight.IMAGE, images=[other])
    assert ids == ids2 and rel(got, ref) < 1e-6 and m.image_encodes == 2
