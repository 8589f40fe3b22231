"""Conformance against transformers from committed fixtures (no torch needed).

Every tests/data/conformance/<arch>/cases.json was recorded by tests/make_conformance_<arch>.py:
HF's processor wrote the token ids, HF's model the float32 logits at every position and the
greedy tokens. Here the converted GGUFs run in ggsight on the same prompts and images: token
ids equal, max|diff| / max|logit| under the recorded tolerance, greedy tokens equal."""
import json
from pathlib import Path

import numpy as np
import pytest

import ggsight

ROOT = Path(__file__).parent / "data" / "conformance"
SUITES = {p.name: json.loads((p / "cases.json").read_text()) for p in sorted(ROOT.iterdir())
          if (p / "cases.json").is_file()}
CASES = [(arch, case["name"]) for arch, suite in SUITES.items() for case in suite["cases"]]
_models: dict = {}


def model_for(arch: str) -> ggsight.Model:
    if arch not in _models:
        suite, where = SUITES[arch], ROOT / arch
        mmproj = where / suite["mmproj"] if suite.get("mmproj") else None
        # f32 weights with an f32 cache: the comparison is of the model's maths, not of KV rounding
        _models[arch] = ggsight.load(where / suite["model"], mmproj=mmproj, n_ctx=256, n_batch=64, kv_type="f32")
    return _models[arch]


def case_of(arch: str, name: str) -> dict:
    return next(c for c in SUITES[arch]["cases"] if c["name"] == name)


def prompt_and_images(arch: str, case: dict):
    marker = SUITES[arch].get("image_marker")
    prompt = case["prompt"].replace(marker, ggsight.IMAGE) if marker else case["prompt"]
    return prompt, [str(ROOT / arch / f) for f in case["images"]]


def test_fixtures_exist():
    assert [len(SUITES[a]["cases"]) for a in ("gemma3", "qwen25vl", "llama4")] == [3, 4, 3]


@pytest.mark.parametrize("arch,name", CASES)
def test_ids_and_logits_match_transformers(arch, name):
    m, case = model_for(arch), case_of(arch, name)
    prompt, images = prompt_and_images(arch, case)
    ids, logits = m.evaluate(prompt, images=images)
    assert ids == case["ids"]
    ref = np.load(ROOT / arch / f"{name}.npy")
    err = float(np.abs(logits - ref).max() / np.abs(ref).max())
    print(f"\n{arch} {name} ({len(ids)} tokens, {len(images)} image(s)): max|diff|/max|logit| = {err:.2e}")
    assert err < SUITES[arch]["logits_tolerance"]
    assert (logits.argmax(1) == ref.argmax(1)).all()


@pytest.mark.parametrize("arch,name", CASES)
def test_greedy_tokens_match_transformers(arch, name):
    m, case = model_for(arch), case_of(arch, name)
    prompt, images = prompt_and_images(arch, case)
    r = m.generate(prompt, images=images, raw=True, max_tokens=len(case["greedy"]), temperature=0)
    # transformers kept going past end-of-generation tokens; we stop there
    assert r.tokens == case["greedy"][:len(r.tokens)]
    assert len(r.tokens) == len(case["greedy"]) or r.done_reason == "stop"


@pytest.mark.torch
@pytest.mark.parametrize("arch", sorted(SUITES))
def test_the_script_reproduces_the_committed_fixtures(arch, tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    import importlib
    import sys
    sys.path.insert(0, str(Path(__file__).parent))
    script = importlib.import_module(f"make_conformance_{arch}")
    fresh = json.loads((script.record(tmp_path) / "cases.json").read_text())
    assert fresh == SUITES[arch]
    for case in fresh["cases"]:
        a, b = np.load(tmp_path / f"{case['name']}.npy"), np.load(ROOT / arch / f"{case['name']}.npy")
        assert np.abs(a - b).max() <= 1e-5 * np.abs(b).max()
