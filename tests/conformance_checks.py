"""The two comparisons with a transformers recording (cases.json + <case>.npy) that every
conformance-style test makes, whoever converted the GGUF: tests/test_conformance.py (ggsight's
converter) and tests/test_llamacpp_files.py (llama.cpp's converter, Ollama's layout)."""
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
