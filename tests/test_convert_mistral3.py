"""ggsight's Mistral 3 converter: its files hold what llama.cpp's converter writes (the same
tensors, values and keys; text as arch "llama" instead of "mistral3", plus the [IMG_BREAK] row
in the mmproj), from either checkpoint layout; configs it cannot express are refused."""
import json
from pathlib import Path

import numpy as np
import pytest

import ggsight
from ggsight.ggml import GGUFFile

DATA = Path(__file__).parent / "data"
OURS, THEIRS = DATA / "conformance" / "mistral3", DATA / "llamacpp" / "mistral3"
needs_llamacpp = pytest.mark.skipif(not THEIRS.is_dir(), reason="no llama.cpp-converted Mistral 3 files")


def _tensors(path: Path) -> dict:
    g = GGUFFile.open(path)
    return {t.name: g.tensor_numpy(t) for t in g.tensors}


@needs_llamacpp
def test_text_file_equals_llamacpps_but_for_the_arch_name():
    ours, theirs = GGUFFile.open(OURS / "text.gguf"), GGUFFile.open(THEIRS / "text.gguf")
    assert (ours.arch, theirs.arch) == ("llama", "mistral3")
    a, b = _tensors(OURS / "text.gguf"), _tensors(THEIRS / "text.gguf")
    assert a.keys() == b.keys()
    assert all(np.array_equal(a[n], b[n]) for n in a)          # q/k rows permuted as llama.cpp does
    for key in ("block_count", "embedding_length", "feed_forward_length", "attention.head_count",
                "attention.head_count_kv", "rope.freq_base", "attention.layer_norm_rms_epsilon"):
        assert ours.get(f"llama.{key}") == theirs.get(f"mistral3.{key}"), key
    for key in ("tokenizer.ggml.pre", "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id"):
        assert ours.get(key) == theirs.get(key), key
    assert list(ours.get("tokenizer.ggml.tokens")) == list(theirs.get("tokenizer.ggml.tokens"))


@needs_llamacpp
def test_mmproj_equals_llamacpps_plus_the_img_break_row():
    a, b = _tensors(OURS / "mmproj.gguf"), _tensors(THEIRS / "mmproj.gguf")
    assert a.keys() - b.keys() == {"v.token_embd.img_break"} and not b.keys() - a.keys()
    assert all(np.array_equal(a[n], b[n]) for n in b)
    ours, theirs = GGUFFile.open(OURS / "mmproj.gguf"), GGUFFile.open(THEIRS / "mmproj.gguf")
    for key, value in theirs.metadata.items():
        if key.startswith("clip.") and key != "clip.vision.image_mean" and key != "clip.vision.image_std":
            assert ours.get(key) == value, key
    np.testing.assert_allclose(ours.get("clip.vision.image_mean"), theirs.get("clip.vision.image_mean"))


# ------------------------------------------------------------------ from the HF checkpoint

@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from make_tiny_hf_mistral3 import make_tiny_hf_mistral3
    d = tmp_path_factory.mktemp("mistral3") / "hf"
    make_tiny_hf_mistral3(d)
    return d


SIDE_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "preprocessor_config.json",
              "processor_config.json")


@pytest.mark.torch
def test_both_layouts_convert_to_the_same_files(hf_dir, tmp_path):
    """save_pretrained writes the Hub's names (language_model.model. / vision_tower. /
    multi_modal_projector. / language_model.lm_head); the module names of transformers 5
    (model.language_model. / model.vision_tower. / lm_head) convert the same."""
    from hf_layouts import convert_pair, relayout
    v5 = relayout(hf_dir, tmp_path / "v5", {"language_model.model.": "model.language_model.",
                                            "language_model.lm_head.": "lm_head.",
                                            "vision_tower.": "model.vision_tower.",
                                            "multi_modal_projector.": "model.multi_modal_projector."}, SIDE_FILES)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for x, y in zip(convert_pair(hf_dir, tmp_path / "a"), convert_pair(v5, tmp_path / "b")):
        a, b = _tensors(x), _tensors(y)
        assert a.keys() == b.keys() and all(np.array_equal(a[n], b[n]) for n in a)
    for name in ("text.gguf", "mmproj.gguf"):
        a, b = _tensors(tmp_path / "a" / name), _tensors(OURS / name)
        assert a.keys() == b.keys() and all(np.array_equal(a[n], b[n]) for n in a)


@pytest.mark.torch
def test_f16_files_run_close_to_f32(hf_dir, tmp_path):
    from ggsight.store.convert import convert_hf, convert_mmproj
    convert_hf(hf_dir, tmp_path / "text.gguf", outtype="f16", progress=False)
    convert_mmproj(hf_dir, tmp_path / "mmproj.gguf", outtype="f16")
    case = next(c for c in json.loads((OURS / "cases.json").read_text())["cases"] if c["images"])
    m = ggsight.load(tmp_path / "text.gguf", mmproj=tmp_path / "mmproj.gguf", n_ctx=128)
    ids, logits = m.evaluate(case["prompt"].replace("[IMG]", ggsight.IMAGE), images=[str(OURS / case["images"][0])])
    ref = np.load(OURS / f"{case['name']}.npy")
    assert ids == case["ids"] and np.abs(logits - ref).max() / np.abs(ref).max() < 2e-2


@pytest.mark.torch
@pytest.mark.parametrize("change,message", [
    (lambda c: {**c, "vision_feature_layer": -2}, "vision_feature_layer"),
    (lambda c: {**c, "projector_hidden_act": "relu"}, "projector_hidden_act"),
    (lambda c: {**c, "vision_config": {**c["vision_config"], "hidden_act": "relu"}}, "hidden_act"),
])
def test_configs_it_cannot_express_are_refused(hf_dir, tmp_path, change, message):
    from ggsight.store.convert import ConvertError, convert_mmproj
    from hf_layouts import variant
    d = variant(hf_dir, tmp_path / "v", [f for f in SIDE_FILES if f != "config.json"] + ["model.safetensors"],
                config=change)
    with pytest.raises(ConvertError, match=message):
        convert_mmproj(d, tmp_path / "mmproj.gguf")
