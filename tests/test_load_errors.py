"""load() of a broken GGUF raises an exception that names the problem (never a TypeError from
deep inside a config, never a crash). Each broken file is a committed conformance fixture
rewritten with one thing wrong: a metadata key left out, a tensor left out, a tensor with its
dimensions swapped, an architecture ggsight does not know."""
from pathlib import Path

import numpy as np
import pytest

import ggsight
from ggsight.ggml.gguf import GGUFError

gguf = pytest.importorskip("gguf")

ROOT = Path(__file__).parent / "data" / "conformance"
FIXTURES = ["gemma3", "qwen25vl", "llama4"]


def rewrite(src: Path, dst: Path, *, drop_key=None, drop_tensor=None, transpose=None, arch=None,
            set_string: tuple[str, str] | None = None) -> Path:
    r = gguf.GGUFReader(str(src))
    w = gguf.GGUFWriter(str(dst), arch or r.fields["general.architecture"].contents())
    for f in r.fields.values():
        if f.name.startswith("GGUF.") or f.name in ("general.architecture", drop_key) or \
                (set_string and f.name == set_string[0]):
            continue
        vtype = f.types[0]
        w.add_key_value(f.name, f.contents(), vtype,
                        sub_type=f.types[1] if vtype == gguf.GGUFValueType.ARRAY else None)
    if set_string:
        w.add_string(*set_string)
    for t in r.tensors:
        if t.name != drop_tensor:
            data = np.asarray(t.data)
            w.add_tensor(t.name, np.ascontiguousarray(data.T) if t.name == transpose else data,
                         raw_dtype=t.tensor_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return dst


def arch_and_matrix(src: Path) -> tuple[str, str]:
    """The file's architecture and a 2-D, non-square tensor of its first block."""
    r = gguf.GGUFReader(str(src))
    name = next(t.name for t in r.tensors if t.name.startswith("blk.0.") and len(t.shape) == 2
                and t.shape[0] != t.shape[1])
    return r.fields["general.architecture"].contents(), name


@pytest.mark.parametrize("fixture", FIXTURES)
def test_the_unmodified_rewrite_loads(fixture, tmp_path):
    """The rewriting itself breaks nothing, so each failure below is the one change's."""
    out = rewrite(ROOT / fixture / "text.gguf", tmp_path / "same.gguf")
    ids, logits = ggsight.load(out, n_ctx=64).evaluate("hello world")
    want_ids, want = ggsight.load(ROOT / fixture / "text.gguf", n_ctx=64).evaluate("hello world")
    assert ids == want_ids
    np.testing.assert_array_equal(logits, want)   # same keys, same tensor bytes: the same model


@pytest.mark.parametrize("fixture", FIXTURES)
def test_missing_tensor(fixture, tmp_path):
    src = ROOT / fixture / "text.gguf"
    _, name = arch_and_matrix(src)
    out = rewrite(src, tmp_path / "no_tensor.gguf", drop_tensor=name)
    with pytest.raises(ggsight.InvalidArgumentError, match=rf"no_tensor.gguf: missing tensor '{name}'"):
        ggsight.load(out, n_ctx=64)


@pytest.mark.parametrize("fixture", FIXTURES)
def test_wrong_tensor_shape(fixture, tmp_path):
    src = ROOT / fixture / "text.gguf"
    _, name = arch_and_matrix(src)
    out = rewrite(src, tmp_path / "bad_shape.gguf", transpose=name)
    with pytest.raises(ggsight.InvalidArgumentError, match=rf"tensor '{name}' has shape .* expected"):
        ggsight.load(out, n_ctx=64)


@pytest.mark.parametrize("fixture", FIXTURES)
def test_unknown_architecture(fixture, tmp_path):
    out = rewrite(ROOT / fixture / "text.gguf", tmp_path / "frob.gguf", arch="frobnet")
    with pytest.raises(ggsight.UnsupportedError, match=r"architecture 'frobnet' is not supported \(supported: "):
        ggsight.load(out, n_ctx=64)


@pytest.mark.parametrize("fixture", FIXTURES)
@pytest.mark.parametrize("key", ["block_count", "embedding_length"])
def test_missing_metadata_key(fixture, key, tmp_path):
    src = ROOT / fixture / "text.gguf"
    arch, _ = arch_and_matrix(src)
    out = rewrite(src, tmp_path / "no_key.gguf", drop_key=f"{arch}.{key}")
    with pytest.raises(GGUFError, match=rf"no_key.gguf: missing metadata key {arch}.{key}"):
        ggsight.load(out, n_ctx=64)


def test_missing_vocabulary(tmp_path):
    out = rewrite(ROOT / "gemma3" / "text.gguf", tmp_path / "no_vocab.gguf", drop_key="tokenizer.ggml.tokens")
    with pytest.raises(ggsight.GGSightError, match="tokenizer.ggml.tokens"):
        ggsight.load(out, n_ctx=64)


def test_not_a_gguf_file(tmp_path):
    bad = tmp_path / "text.gguf"
    bad.write_bytes(b"GGUF" + b"\x00" * 3)
    with pytest.raises(GGUFError, match="text.gguf"):
        ggsight.load(bad, n_ctx=64)


def test_unknown_projector_type(tmp_path):
    """An mmproj whose clip.projector_type no model folder declares is refused by name, not handed
    to the text architecture's image glue."""
    src = ROOT / "gemma3"
    bad = rewrite(src / "mmproj.gguf", tmp_path / "frob.gguf", set_string=("clip.projector_type", "frobnet"))
    with pytest.raises(ggsight.UnsupportedError, match=r"frob.gguf: projector type 'frobnet' is not supported"):
        ggsight.load(src / "text.gguf", mmproj=bad, n_ctx=64)
