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
from conformance_checks import assert_same_gguf, check_greedy, check_logits

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
    check_logits(m, prompt, images, case, np.load(ROOT / arch / f"{name}.npy"), SUITES[arch]["logits_tolerance"],
                 f"{arch} {name}")


@pytest.mark.parametrize("arch,name", CASES)
def test_greedy_tokens_match_transformers(arch, name):
    m, case = model_for(arch), case_of(arch, name)
    prompt, images = prompt_and_images(arch, case)
    check_greedy(m, prompt, images, case["greedy"])


@pytest.mark.parametrize("arch", sorted(SUITES))
def test_ggsight_stops_where_transformers_generate_would(arch):
    """transformers' generate() stops at its generation config's end tokens (recorded); each is
    an end-of-generation token for ggsight too, from the converted vocabulary."""
    eos = SUITES[arch]["eos_token_ids"]
    assert eos and set(eos) <= set(model_for(arch).tokenizer.eog_ids)


@pytest.mark.torch
@pytest.mark.parametrize("arch", sorted(SUITES))
def test_the_script_reproduces_the_committed_fixtures(arch, tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    import importlib
    import sys
    sys.path.insert(0, str(Path(__file__).parent))
    script = importlib.import_module(f"make_conformance_{arch}")
    import transformers
    assert SUITES[arch]["transformers_version"] == transformers.__version__, "re-record with the pinned transformers"
    fresh = json.loads((script.record(tmp_path) / "cases.json").read_text())
    assert fresh == SUITES[arch]
    for case in fresh["cases"]:
        a, b = np.load(tmp_path / f"{case['name']}.npy"), np.load(ROOT / arch / f"{case['name']}.npy")
        assert np.abs(a - b).max() <= 1e-5 * np.abs(b).max()
    # the committed GGUFs are what today's converter writes from the rebuilt checkpoint
    for name in filter(None, (SUITES[arch]["model"], SUITES[arch]["mmproj"])):   # text-only: no mmproj
        assert_same_gguf(tmp_path / name, ROOT / arch / name)

