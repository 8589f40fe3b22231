"""Prefix reuse across chat turns on the committed tiny models (no torch): the next turn or an
edited history evaluates only what changed, and gives what a fresh evaluation gives."""
from pathlib import Path

import numpy as np

import ggsight

ROOT = Path(__file__).parent / "data" / "conformance"


def common_prefix(a, b) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def run_turns(arch, images, **kw):
    load = lambda: ggsight.load(ROOT / arch / "text.gguf", mmproj=ROOT / arch / "mmproj.gguf", n_ctx=512,
                                n_batch=64, kv_type="f32", **kw)
    m = load()
    history = [{"role": "user", "content": "hello world", "images": images},
               {"role": "assistant", "content": "the tiny model"},
               {"role": "user", "content": "and the window"}]
    opts = {"temperature": 0, "num_predict": 4}
    m.chat(history, options=opts)
    edited = history[:1] + [{"role": "assistant", "content": "the tiny world"}] + history[2:]
    before = m._keys[:]
    r = m.chat(edited, options=opts)
    fresh = load().chat(edited, options=opts)
    return m, r, fresh, before


def test_editing_an_earlier_message_reuses_everything_before_the_edit():
    for arch, image in (("gemma3", "one_image_non_native-0.png"), ("qwen25vl", "one_image_non_square-0.png"),
                        ("llama4", "image_2x2_grid-0.png")):
        m, r, fresh, before = run_turns(arch, [str(ROOT / arch / image)])
        assert r.tokens == fresh.tokens, arch
        expect = common_prefix(before, m._keys)
        assert 0 < m.last_reused <= expect, (arch, m.last_reused, expect)
        assert r.prompt_eval_count < fresh.prompt_eval_count, arch
