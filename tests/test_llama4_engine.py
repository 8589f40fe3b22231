"""Llama 4 through the engine on the committed conformance model (no torch needed): the
chunked cache's size, chunked prefill and split tiles, the tile layout's ids."""
import json
from pathlib import Path

import numpy as np
import pytest

import ggsight
from ggsight.cache import chunked_kind

ROOT = Path(__file__).parent / "data" / "conformance" / "llama4"
TEXT, MMPROJ = ROOT / "text.gguf", ROOT / "mmproj.gguf"
CASES = {c["name"]: c for c in json.loads((ROOT / "cases.json").read_text())["cases"]}


def load(**kw):
    return ggsight.load(TEXT, mmproj=MMPROJ, n_ctx=256, kv_type="f32", **kw)


def rel(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


def test_chunked_layers_hold_chunk_plus_batch_cells():
    m = load(n_batch=16)
    c = m.net.config
    assert c.chunk == 8 and c.rope_layers == (True, True, True, False)
    kinds = m.net.cache_kinds()
    assert kinds[:3] == [chunked_kind(8)] * 3 and kinds[3].name == "full"
    assert m.cache.tables[chunked_kind(8)].size == 8 + 16 and m.cache.tables[kinds[3]].size == 256


def test_chunked_prefill_in_small_batches_equals_one_pass():
    prompt = CASES["text_several_chunks"]["prompt"]
    ids, ref = load(n_batch=64).evaluate(prompt)
    for n_batch in (1, 5, 8, 13):
        ids2, got = load(n_batch=n_batch).evaluate(prompt)
        assert ids2 == ids and rel(got, ref) < 1e-5, n_batch


def test_tiles_split_across_batches_give_the_same_logits():
    case = CASES["image_2x2_grid"]
    prompt = case["prompt"].replace("<|image|>", ggsight.IMAGE)
    images = [str(ROOT / f) for f in case["images"]]
    ids, ref = load(n_batch=64).evaluate(prompt, images=images)
    ids2, got = load(n_batch=3).evaluate(prompt, images=images)     # 4-token tiles split mid-tile
    assert ids == ids2 == case["ids"] and rel(got, ref) < 1e-5


def test_layout_has_the_separators_and_end_token_hf_writes():
    m = load()
    tok = m.tokenizer
    ids = CASES["image_2x2_grid"]["ids"]
    names = {t: tok.token_id(t) for t in ("<|image_start|>", "<|tile_x_separator|>", "<|tile_y_separator|>",
                                          "<|image|>", "<|image_end|>", "<|patch|>")}
    start = ids.index(names["<|image_start|>"])
    body = ids[start:ids.index(names["<|image_end|>"]) + 1]
    p, x, y = names["<|patch|>"], names["<|tile_x_separator|>"], names["<|tile_y_separator|>"]
    row = [p] * 4 + [x] + [p] * 4 + [y]
    assert body == [names["<|image_start|>"]] + row + row + [names["<|image|>"]] + [p] * 4 + [names["<|image_end|>"]]
    one_tile = CASES["two_images"]["ids"]
    second = len(one_tile) - 1 - one_tile[::-1].index(names["<|image_start|>"])
    assert one_tile[second:second + 7] == [names["<|image_start|>"], names["<|image|>"]] + [p] * 4 + \
        [names["<|image_end|>"]]


def test_image_options_and_errors():
    with pytest.raises(ValueError, match="unknown to Llama 4"):
        load(image_options={"pan_and_scan": True})
    m = load(image_options={"max_patches": 1})
    ids, _ = m.evaluate(ggsight.IMAGE, images=[str(ROOT / CASES["image_2x2_grid"]["images"][0])])
    assert m.tokenizer.token_id("<|tile_x_separator|>") not in ids     # one tile: no grid
    with pytest.raises(ValueError, match="max_image_tokens does not apply"):
        m.evaluate(ggsight.IMAGE, images=[str(ROOT / CASES["image_2x2_grid"]["images"][0])], max_image_tokens=4)


def test_prefix_reuse_on_chunked_layers_equals_full_recomputation():
    m = load(n_batch=8)
    base = CASES["text_several_chunks"]["prompt"]
    m.generate(base, raw=True, max_tokens=2, temperature=0)
    longer = base + " and the model reads on"
    r = m.generate(longer, raw=True, max_tokens=3, temperature=0)
    fresh = load(n_batch=8).generate(longer, raw=True, max_tokens=3, temperature=0)
    assert r.tokens == fresh.tokens
    assert m.last_reused > 30       # the chunk ring still held what the rest needed
    # an edit far back: the ring no longer holds that chunk's cells, so it starts over (same result)
    edited = "hi" + base[5:]
    r = m.generate(edited, raw=True, max_tokens=3, temperature=0)
    assert r.tokens == load(n_batch=8).generate(edited, raw=True, max_tokens=3, temperature=0).tokens
