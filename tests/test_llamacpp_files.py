"""GGUF files written by llama.cpp's own converter, and Ollama's single-file layout, load in
ggsight and match transformers (no torch needed).

tests/data/llamacpp/<arch>/ was written by tests/make_llamacpp_fixtures.py: llama.cpp's
convert_hf_to_gguf.py (from the pinned llama-cpp-python sdist) made text.gguf + mmproj.gguf of a
tiny random checkpoint, transformers recorded the token ids, float32 logits at every position and
greedy tokens. gemma3-ollama/ holds the same Gemma 3 checkpoint as one file in Ollama's layout
(its converter's tensor names and keys), checked against the same recording."""
import json
from pathlib import Path

import numpy as np
import pytest

import ggsight
from conformance_checks import assert_same_gguf, check_greedy, check_logits
from ggsight.ggml import GGUFFile

ROOT = Path(__file__).parent / "data" / "llamacpp"
SUITES = {p.name: json.loads((p / "cases.json").read_text()) for p in sorted(ROOT.iterdir())
          if (p / "cases.json").is_file()}
# Ollama's single file has no recording of its own: it is the gemma3 checkpoint
OLLAMA = ROOT / "gemma3-ollama" / "model.gguf"
RUNS = {**{arch: (arch, ROOT / arch / s["model"], s["mmproj"] and ROOT / arch / s["mmproj"])
           for arch, s in SUITES.items()},   # mmproj None: a text-only architecture
        "gemma3-ollama": ("gemma3", OLLAMA, None)}
CASES = [(run, case["name"]) for run, (arch, _, _) in RUNS.items() for case in SUITES[arch]["cases"]]
_models: dict = {}


def model_for(run: str) -> ggsight.Model:
    if run not in _models:
        _, model, mmproj = RUNS[run]
        # f32 weights with an f32 cache: the comparison is of the model's maths, not of KV rounding
        _models[run] = ggsight.load(model, mmproj=mmproj, n_ctx=256, n_batch=64, kv_type="f32")
    return _models[run]


def case_of(run: str, name: str) -> tuple[str, dict, str, list[str]]:
    arch = RUNS[run][0]
    suite = SUITES[arch]
    case = next(c for c in suite["cases"] if c["name"] == name)
    prompt = case["prompt"].replace(suite["image_marker"], ggsight.IMAGE) if suite["image_marker"] else case["prompt"]
    return arch, case, prompt, [str(ROOT / arch / f) for f in case["images"]]


TEXT_ONLY = ["gemma2", "granite", "llama", "llama_mistral", "llama_spm", "llama_tied", "qwen2", "qwen3", "qwen3moe"]


def test_every_architecture_has_llamacpp_files_with_a_text_and_an_image_case():
    assert sorted(SUITES) == sorted(["gemma3", "llama4", "mistral3", "qwen25vl", *TEXT_ONLY])
    for arch, suite in SUITES.items():
        assert suite["converter"].startswith("llama.cpp convert_hf_to_gguf.py") and suite["transformers_version"]
        if arch in TEXT_ONLY:
            assert suite["mmproj"] is None and not any(c["images"] for c in suite["cases"])
            continue
        kinds = {bool(c["images"]) for c in suite["cases"]}
        assert kinds == {False, True}, arch
        assert GGUFFile.open(ROOT / arch / "mmproj.gguf").get("general.architecture") == "clip"
    assert OLLAMA.is_file()


@pytest.mark.parametrize("run,name", CASES)
def test_ids_and_logits_match_transformers(run, name):
    arch, case, prompt, images = case_of(run, name)
    check_logits(model_for(run), prompt, images, case, np.load(ROOT / arch / f"{name}.npy"),
                 SUITES[arch]["logits_tolerance"], f"{run} {name}")


@pytest.mark.parametrize("run,name", CASES)
def test_greedy_tokens_match_transformers(run, name):
    _, case, prompt, images = case_of(run, name)
    check_greedy(model_for(run), prompt, images, case["greedy"])


@pytest.mark.parametrize("run", sorted(RUNS))
def test_every_tensor_of_the_files_is_used(run):
    m = model_for(run)
    assert not m.net.binder.unused
    if m.images is not None:
        assert not m.images.vision.binder.unused


@pytest.mark.torch
@pytest.mark.parametrize("arch", sorted(SUITES))
def test_the_script_reproduces_the_committed_fixtures(arch, tmp_path):
    """llama.cpp's converter (from the pinned sdist) run again writes the same tensors, and
    transformers the same recording."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    import sys
    sys.path.insert(0, str(Path(__file__).parent))
    import importlib
    script = importlib.import_module(SUITES[arch].get("script", "make_llamacpp_fixtures"))   # the one that wrote it
    fresh = json.loads((script.record(arch, tmp_path / arch, script.llamacpp_tree(tmp_path)) / "cases.json").read_text())
    assert fresh == SUITES[arch]
    for name in filter(None, (SUITES[arch]["model"], SUITES[arch]["mmproj"])):   # text-only: no mmproj
        assert_same_gguf(tmp_path / arch / name, ROOT / arch / name)
    for case in fresh["cases"]:
        x, y = np.load(tmp_path / arch / f"{case['name']}.npy"), np.load(ROOT / arch / f"{case['name']}.npy")
        assert np.abs(x - y).max() <= 1e-5 * np.abs(y).max()
