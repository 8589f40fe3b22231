"""Mistral 3 through the engine on the committed conformance model (no torch needed): an image's
rows split across micro-batches (at a row boundary and inside a row) give the logits of one
batch, prefix reuse into an image, [IMG_BREAK] rows from the mmproj or from the text model,
token budgets and several images per message."""
import json
from pathlib import Path

import numpy as np
import pytest

import ggsight
from ggsight.ggml import GGUFFile

ROOT = Path(__file__).parent / "data" / "conformance" / "mistral3"
LLAMACPP = Path(__file__).parent / "data" / "llamacpp" / "mistral3"
TEXT, MMPROJ = ROOT / "text.gguf", ROOT / "mmproj.gguf"
CASE = next(c for c in json.loads((ROOT / "cases.json").read_text())["cases"] if c["name"] == "one_image_non_square")
IMG = str(ROOT / CASE["images"][0])    # 4 rows of 6 [IMG], 3 [IMG_BREAK]s: tokens 5..31
PROMPT = CASE["prompt"].replace("[IMG]", ggsight.IMAGE)
FIRST, ROW = 5, 7                      # the image's first token, tokens per row with its [IMG_BREAK]


def load(**kw):
    return ggsight.load(TEXT, mmproj=MMPROJ, n_ctx=256, kv_type="f32", **kw)


def rel(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


def test_the_case_has_the_layout_this_file_assumes():
    ids = CASE["ids"]
    assert ids[FIRST - 1] != 10 and ids[FIRST:FIRST + 6] == [10] * 6 and ids[FIRST + 6] == 12
    assert ids[FIRST + 4 * ROW - 1] == 13   # [IMG_END] after the 4th row


@pytest.mark.parametrize("n_batch", [FIRST + ROW, FIRST + 2 * ROW, 9, 4])
def test_rows_split_across_micro_batches_give_the_logits_of_one_batch(n_batch):
    """n_batch 12 / 19: each chunk ends where a row ends; 9 and 4: inside rows (causal image
    tokens may split anywhere); positions are the same either way."""
    ids, ref = load(n_batch=64).evaluate(PROMPT, images=[IMG])
    m = load(n_batch=n_batch)
    ids2, got = m.evaluate(PROMPT, images=[IMG])
    assert ids == ids2 == CASE["ids"] and m.runner.graphs_built >= 2
    assert rel(got, ref) < 1e-5 and (got.argmax(1) == ref.argmax(1)).all()
    assert rel(got, np.load(ROOT / "one_image_non_square.npy")) < 1e-5


def test_prefix_reuse_into_an_image_equals_full_recomputation():
    m = load(n_batch=16)
    first = PROMPT
    m.generate(first, images=[IMG], raw=True, max_tokens=3, temperature=0)
    follow = first.replace("what is in the image", "what is in the picture")
    b = m.generate(follow, images=[IMG], raw=True, max_tokens=4, temperature=0)
    assert m.last_reused > FIRST + 4 * ROW    # the image was not evaluated again
    fresh = load(n_batch=16).generate(follow, images=[IMG], raw=True, max_tokens=4, temperature=0)
    assert b.tokens == fresh.tokens and m.image_encodes == 1


def test_img_break_rows_are_the_text_models_embedding():
    """The mmproj's v.token_embd.img_break (ggsight's converter) is row [IMG_BREAK] of the text
    model's table, which is where the rows come from for llama.cpp's mmproj, which has none."""
    m = load()
    glue = m.images
    assert glue.vision.img_break is not None
    table = GGUFFile.open(TEXT).tensor_numpy("token_embd.weight")
    np.testing.assert_array_equal(glue.vision.img_break.numpy().reshape(-1), table[glue.break_id])
    emb = glue.embed(m.sched, glue.pixels(IMG)[0])                   # [4 * 7 - 1, n_embd]
    assert emb.shape == (4 * ROW - 1, 64)
    for r in range(3):
        np.testing.assert_array_equal(emb[r * ROW + 6], table[glue.break_id])
    other = ggsight.load(LLAMACPP / "text.gguf", mmproj=LLAMACPP / "mmproj.gguf", n_ctx=64, kv_type="f32")
    assert other.images.vision.img_break is None
    assert other.images._text_model is other.net   # load() binds it (engine/loader.py)
    np.testing.assert_array_equal(other.images.embed(other.sched, other.images.pixels(IMG)[0]), emb)


def test_an_mmproj_without_img_break_needs_the_text_model():
    m = ggsight.load(LLAMACPP / "text.gguf", mmproj=LLAMACPP / "mmproj.gguf", n_ctx=64, kv_type="f32")
    m.images._text_model = None
    m.images._break_row = None
    with pytest.raises(ValueError, match="img_break.*text model"):
        m.images.embed(m.sched, m.images.pixels(IMG)[0])


def test_token_budget_and_several_images_in_one_message():
    m = load(image_options={"max_tokens": 6})
    ids, _ = m.evaluate(ggsight.IMAGE + " x", images=[IMG])
    assert 0 < ids.count(10) <= 6 and ids.count(13) == 1
    ids, _ = load().evaluate(ggsight.IMAGE + " x", images=[IMG], max_image_tokens=2)
    assert 0 < ids.count(10) <= 2 and ids.count(13) == 1
    with pytest.raises(ValueError, match="unknown"):
        load(image_options={"max_pixels": 10})
    r = load().chat([{"role": "user", "content": "compare", "images": [IMG, IMG]}],
                    options={"temperature": 0, "num_predict": 2})
    assert r.done and r.prompt_eval_count > 2 * 4 * ROW


@pytest.mark.torch
def test_chat_template_renders_as_transformers(tmp_path):
    """The converted GGUF's template renders a system prompt + multi-turn conversation with an
    image as transformers' apply_chat_template does, to the same token ids."""
    transformers = pytest.importorskip("transformers")
    from make_tiny_hf_mistral3 import write_tokenizer
    write_tokenizer(tmp_path)
    tok = transformers.PreTrainedTokenizerFast.from_pretrained(str(tmp_path))
    ours = [{"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": "what is in the image", "images": [IMG]},
            {"role": "assistant", "content": "a tiny cat"},
            {"role": "user", "content": "and the window?"}]
    hf = [{"role": m["role"], "content": [*({"type": "image"} for _ in m.get("images", [])),
                                          {"type": "text", "text": m["content"]}]} for m in ours]
    m = load()
    for conversation, reference in ((ours, hf), (ours[1:], hf[1:])):    # with and without a system turn
        rendered = m._render(conversation)
        assert rendered == tok.apply_chat_template(reference, tokenize=False)
        assert m.tokenize(rendered) == tok.apply_chat_template(reference, tokenize=True, return_dict=False)
