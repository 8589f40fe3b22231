"""The shim's ABI, struct layouts, error mapping, devices and `ggsight info`."""
import json
import subprocess
import sys

import numpy as np
import pytest

import ggsight
from ggsight import _native
from ggsight._native import ffi, lib
from ggsight.errors import GgmlError, InvalidArgumentError
from ggsight.ggml import Backend, Context, DType, Scheduler, devices, traits

STRUCTS = ["gs_type_info", "gs_device_info", "gs_tensor_desc", "gs_feature"]


def test_abi_version_matches_header():
    assert lib.gs_abi_version() == lib.GS_ABI_VERSION


@pytest.mark.parametrize("name", STRUCTS)
def test_struct_sizes_match_cffi(name):
    assert lib.gs_struct_size(name.encode()) == ffi.sizeof(name)


def test_unknown_struct_size_is_zero():
    assert lib.gs_struct_size(b"no_such_struct") == 0


def test_header_is_read_as_is():
    # cffi parsed the installed header itself: every declared function resolves in the library.
    header = (_native._HERE / "ggsight.h") if (_native._HERE / "ggsight.h").exists() else None
    names = [n for n in dir(lib) if n.startswith("gs_")]
    assert len(names) > 100
    for n in names:
        getattr(lib, n)
    if header is not None:  # cdef accepts no preprocessor directive but integer #defines
        directives = [ln for ln in header.read_text().splitlines() if ln.lstrip().startswith("#")]
        assert directives and all(ln.startswith("#define GS_") for ln in directives)


def test_dtype_table_matches_ggml():
    info = ffi.new("gs_type_info *")
    for dt in DType:
        assert lib.gs_type_info_get(int(dt), info) == 0, dt
        tr = traits(dt)
        assert (tr.name, tr.block_size, tr.type_size) == (
            ffi.string(info.name).decode(), info.block_size, info.type_size), dt
        assert bool(info.is_quantized) == tr.is_quantized, dt


def test_unknown_type_is_an_error_not_a_crash():
    info = ffi.new("gs_type_info *")
    assert lib.gs_type_info_get(4, info) == lib.GS_ERR_INVALID  # id 4 was removed from ggml
    assert "unknown ggml type" in _native.last_error()


def test_devices_and_system_info():
    devs = devices()
    assert devs and devs[0].type == "cpu"
    assert devs[0].memory_total > 0
    info = ggsight.system_info()
    assert info["ggml_version"] == "0.25.3"
    assert "CPU" in info["backends"]
    assert isinstance(info["cpu_features"], dict)
    from ggsight.ggml.tiles import amx_bf16_usable
    from ggsight.ggml.x16 import usable as x16_usable
    assert info["ggsight_kernels"] == {"amx_bf16": amx_bf16_usable(), "x16_vnni": x16_usable()}


def test_cli_info_runs():
    out = subprocess.run([sys.executable, "-m", "ggsight", "info"], capture_output=True, text=True, check=True)
    assert "ggml 0.25.3" in out.stdout and "CPU" in out.stdout
    js = subprocess.run([sys.executable, "-m", "ggsight", "info", "--json"], capture_output=True, text=True,
                        check=True)
    assert json.loads(js.stdout)["devices"][0]["type"] == "cpu"


def test_ggml_assert_becomes_exception_and_process_survives():
    ctx = Context(16)
    a = ctx.input("a", (4, 3))
    b = ctx.input("b", (5, 3))
    with pytest.raises(GgmlError, match="ggml_can_mul_mat"):
        a.mul_mat(b)
    c = ctx.input("c", (4, 2))
    out, = Scheduler(Backend(n_threads=1)).run(ctx.graph(a.mul_mat(c)),
                                                {a: np.ones((3, 4), np.float32), c: np.ones((2, 4), np.float32)})
    assert np.all(out == 4)


def test_context_exhaustion_is_an_error():
    ctx = Context(2)
    ctx.input("a", (1,))
    ctx.input("b", (1,))
    with pytest.raises(GgmlError):
        for i in range(10):
            ctx.input(f"c{i}", (1,))


def test_bad_arguments_are_rejected():
    ctx = Context(8)
    with pytest.raises(InvalidArgumentError, match="block size"):
        ctx.new_tensor((33,), DType.Q8_0)
    with pytest.raises(InvalidArgumentError):
        ctx.new_tensor((1, 2, 3, 4, 5))
    with pytest.raises(InvalidArgumentError, match="no device"):
        Backend(99)
    a = ctx.input("a", (8,))
    with pytest.raises(InvalidArgumentError, match="reaches byte"):
        a.view((4, 2), (4, 16), 8)


def test_null_handles_are_rejected():
    assert lib.gs_add(ffi.NULL, ffi.NULL, ffi.NULL) == ffi.NULL
    assert "NULL" in _native.last_error()
    assert lib.gs_graph_compute(ffi.NULL, ffi.NULL) == lib.GS_ERR_INVALID


def test_elementwise_on_transposed_first_operand_is_refused_not_fatal():
    # ggml's CPU add kernel would abort the process in a compute thread on this input.
    ctx = Context(16)
    a, b = ctx.input("a", (3, 8)), ctx.input("b", (8, 3))
    with pytest.raises(InvalidArgumentError, match="cont"):
        a.transpose().add(b)
    out, = Scheduler(Backend(n_threads=1)).run(ctx.graph(a.transpose().cont().add(b)),
                                                {a: np.ones((8, 3), np.float32), b: np.ones((3, 8), np.float32)})
    assert np.all(out == 2)


def test_graph_in_a_full_context_is_an_error_not_a_crash():
    ctx = Context(4)
    a = ctx.input("a", (4,))
    with pytest.raises(ggsight.OutOfMemoryError, match="graph"):
        for _ in range(100):
            ctx.graph(a)  # ggml itself would dereference NULL here
