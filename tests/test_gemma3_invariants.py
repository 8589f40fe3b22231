"""Cache invariants on a tiny F32 Gemma 3 (window 8): chunked prefill, ring wrap, prefix reuse."""
import numpy as np
import pytest

pytest.importorskip("gguf")

from ggsight.cache import KVCache  # noqa: E402
from ggsight.engine.runner import Runner  # noqa: E402
from ggsight.ggml import Backend, DType, GGUFFile, Scheduler, load_weights  # noqa: E402
from ggsight.models import model_class  # noqa: E402

from tiny_gemma3 import write_tiny_gemma3  # noqa: E402


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    path = write_tiny_gemma3(tmp_path_factory.mktemp("tiny") / "tiny-gemma3.gguf")
    f = GGUFFile.open(path)
    return model_class(f.arch)(f, load_weights(f))


@pytest.fixture(scope="module")
def sched():
    return Scheduler(Backend(n_threads=2))


def runner(net, sched, n_batch, n_ctx=128, kv=DType.F32):
    c = net.config
    kinds = net.cache_kinds()
    cache = KVCache(kinds, c.head_dim, [c.n_head_kv] * len(kinds), n_ctx, n_batch, kv)
    return Runner(net, cache, sched, n_batch)


PROMPT = list(np.random.default_rng(1).integers(4, 320, 50))


def test_layer_kinds(net):
    kinds = [k.name for k in net.cache_kinds()]
    assert kinds == ["window"] * 5 + ["full"]


@pytest.mark.parametrize("n_batch", [1, 3, 7, 16])
def test_chunked_prefill_equals_one_pass(net, sched, n_batch):
    ref = runner(net, sched, 64).evaluate(PROMPT, 0, all_logits=True)
    r = runner(net, sched, n_batch)
    got = r.evaluate(PROMPT, 0, all_logits=True)
    window = [t for k, t in r.cache.tables.items() if k.name == "window"][0]
    assert window.size == 8 + n_batch               # the ring, not the context
    err = np.abs(got - ref).max() / np.abs(ref).max()
    assert err < 1e-4, err  # F32: only summation order differs (llamafile sgemm vs gemv)


def test_prefix_reuse_equals_recomputation(net, sched):
    ref = runner(net, sched, 64).evaluate(PROMPT, 0)[-1]
    r = runner(net, sched, 4)
    r.evaluate(PROMPT[:30], 0)
    got = r.evaluate(PROMPT[30:], 30)[-1]
    assert np.abs(got - ref).max() / np.abs(ref).max() < 1e-4


def test_truncate_then_continue_equals_recomputation(net, sched):
    other = list(np.random.default_rng(2).integers(4, 320, 20))
    ref = runner(net, sched, 64).evaluate(PROMPT[:40] + other, 0)[-1]
    r = runner(net, sched, 16)
    r.evaluate(PROMPT, 0)
    assert r.cache.truncate(40)            # 40..49 written last: the ring still holds 33..39
    got = r.evaluate(other, 40)[-1]
    assert np.abs(got - ref).max() / np.abs(ref).max() < 1e-4


def test_f16_cache_stays_close(net, sched):
    ref = runner(net, sched, 64).evaluate(PROMPT, 0)[-1]
    got = runner(net, sched, 5, kv=DType.F16).evaluate(PROMPT, 0)[-1]
    assert np.abs(got - ref).max() / np.abs(ref).max() < 1e-2
