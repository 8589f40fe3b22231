"""The two comparisons with a transformers recording (cases.json + <case>.npy) that every
conformance-style test makes, whoever converted the GGUF: tests/test_conformance.py (ggsight's
converter) and tests/test_llamacpp_files.py (llama.cpp's converter, Ollama's layout), and the
comparison of a re-converted GGUF with the committed one that their reproduce tests make."""
from pathlib import Path

import numpy as np


def check_logits(model, prompt: str, images: list, case: dict, ref: np.ndarray, tolerance: float, label: str) -> None:
    """Token ids equal, all-position logits within max|diff| / max|logit| < tolerance, argmax equal."""
    ids, logits = model.evaluate(prompt, images=images)
    assert ids == case["ids"]
    err = float(np.abs(logits - ref).max() / np.abs(ref).max())
    print(f"\n{label} ({len(ids)} tokens, {len(images)} image(s)): max|diff|/max|logit| = {err:.2e}")
    assert err < tolerance
    assert (logits.argmax(1) == ref.argmax(1)).all()


def check_greedy(model, prompt: str, images: list, greedy: list[int]) -> None:
    """ggsight's greedy tokens are transformers'; an early stop is right only where transformers'
    next token is an end-of-generation token (transformers was asked to go on past them)."""
    r = model.generate(prompt, images=images, raw=True, max_tokens=len(greedy), temperature=0)
    assert r.tokens == greedy[:len(r.tokens)]
    if len(r.tokens) < len(greedy):
        n = len(r.tokens)
        assert r.done_reason == "stop" and greedy[n] in model.tokenizer.eog_ids, (
            f"stopped after {n} tokens ({r.done_reason}); transformers' next token there is {greedy[n]}, "
            f"not an end-of-generation token {sorted(model.tokenizer.eog_ids)}")
    else:
        assert r.done_reason == "length"


def _gguf_contents(path: Path) -> tuple[dict, dict]:
    import gguf
    r = gguf.GGUFReader(str(path))
    keys = {f.name: f.contents() for f in r.fields.values() if not f.name.startswith("GGUF.")}
    tensors = {t.name: (t.tensor_type.name, tuple(int(n) for n in t.shape), np.asarray(t.data)) for t in r.tensors}
    return keys, tensors


def assert_same_gguf(fresh: Path, committed: Path) -> None:
    """Same metadata keys and values, same tensors (names, types, shapes, bytes): the file layout
    (key and tensor order, padding) may differ."""
    (k1, t1), (k2, t2) = _gguf_contents(fresh), _gguf_contents(committed)
    assert k1.keys() == k2.keys(), f"{committed.name}: keys {sorted(k1.keys() ^ k2.keys())} differ"
    assert [k for k in k1 if k1[k] != k2[k]] == [], f"{committed.name}: metadata values differ"
    assert t1.keys() == t2.keys(), f"{committed.name}: tensors {sorted(t1.keys() ^ t2.keys())} differ"
    for name, (ty, shape, data) in t1.items():
        assert (ty, shape) == t2[name][:2], f"{committed.name}: {name} is {ty} {shape}, committed {t2[name][:2]}"
        assert np.array_equal(data.view(np.uint8), t2[name][2].view(np.uint8)), f"{committed.name}: {name} data"
