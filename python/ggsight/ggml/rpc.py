"""ggml's RPC backend: serve this machine's devices, or use a remote machine's as local devices.

The protocol has no authentication and no encryption: whoever reaches the port can allocate
memory on the server's backend, read and write it, and run graphs there. Servers bind
127.0.0.1 unless told otherwise; expose one only on a trusted network or through a tunnel.

ggml's RPC client aborts the process when it cannot reach a server or the server speaks another
protocol version, so a server is greeted here first (the protocol's HELLO, answered with its
version) and a refusal is a Python exception. A server lost mid-run still aborts the client:
ggml has no way back from that.
"""
from __future__ import annotations

import ipaddress
import socket
import struct

from .._native import check, ffi, lib
from ..errors import BackendError, InvalidArgumentError, UnsupportedError
from . import backend
from .backend import Device, devices

DEFAULT_PORT = 50052
_HELLO = 14                 # RPC_CMD_HELLO, fixed across protocol versions (ggml-rpc.cpp asserts it)
_CONN_CAPS = 24             # RPC_CONN_CAPS_SIZE: transport capabilities; zeros = plain TCP


def protocol_version() -> tuple[int, int, int]:
    v = lib.gs_rpc_protocol_version()
    return v // 10000, v // 100 % 100, v % 100


def parse_endpoint(text: str) -> tuple[str, int]:
    """'host:port' (or 'host', port 50052) -> (host, port). ggml's RPC splits an endpoint at its
    first colon, so IPv6 addresses cannot be given: use a host name or an IPv4 address."""
    host, sep, port = text.strip().partition(":")
    if ":" in port or host.startswith("["):
        raise InvalidArgumentError(f"RPC endpoint {text!r}: ggml's RPC takes host:port with an IPv4 address or "
                                   "a host name, not an IPv6 address")
    port = port if sep else str(DEFAULT_PORT)
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidArgumentError(f"RPC endpoint {text!r}: give host:port, e.g. 127.0.0.1:{DEFAULT_PORT}")
    return host, int(port)


def canonical(endpoint: str) -> str:
    """'host:port' as ggml and ggsight name a server (the default port filled in)."""
    host, port = parse_endpoint(endpoint)
    return f"{host}:{port}"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def greet(endpoint: str, timeout: float = 5.0) -> tuple[int, int, int]:
    """Connect, say HELLO and read the server's protocol version; raise with the reason if it is
    unreachable, is not a ggml RPC server or speaks an incompatible version."""
    host, port = parse_endpoint(endpoint)
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(struct.pack("<BQ", _HELLO, _CONN_CAPS) + bytes(_CONN_CAPS))
            reply = _recv(s, 8)
            (size,) = struct.unpack("<Q", reply)
            if size != 4 + _CONN_CAPS:
                raise BackendError(f"{endpoint} answered, but not as a ggml RPC server of this version "
                                   f"(reply of {size} bytes to HELLO)")
            major, minor, patch = _recv(s, size)[:3]
    except socket.timeout:
        raise BackendError(f"the RPC server at {host}:{port} did not answer within {timeout:g} s: a ggml RPC "
                           "server serves one client at a time; is another client using it?") from None
    except OSError as e:
        raise BackendError(f"cannot reach the RPC server at {host}:{port}: {e.strerror or e}. Start one there "
                           f"with `ggsight rpc-server --host {host} --port {port}`") from None
    ours = protocol_version()
    if major != ours[0] or minor > ours[1]:
        raise BackendError(f"the RPC server at {endpoint} speaks protocol {major}.{minor}.{patch}, this ggsight "
                           f"{ours[0]}.{ours[1]}.{ours[2]}: run the same ggsight (ggml) version on both machines")
    return major, minor, patch


def _recv(s: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        part = s.recv(n - len(out))
        if not part:
            raise BackendError("the RPC server closed the connection during the greeting")
        out += part
    return out


def connect(endpoints: list[str] | str) -> list[Device]:
    """Add the devices of RPC servers (checked first); returns them, in the order given."""
    if isinstance(endpoints, str):
        endpoints = [e for e in endpoints.split(",") if e.strip()]
    out = []
    for endpoint in endpoints:
        name = canonical(endpoint)
        known = [i for i, d in backend.rpc_devices.items() if d.description == name]
        if not known:
            greet(name)
            before = lib.gs_device_count()
            check(lib.gs_rpc_add_server(name.encode()), f"RPC server {name}")
            known = list(range(before, lib.gs_device_count()))
        # fresh memory figures; over this process's open connection when it has one (a ggml
        # server serves one client at a time, so a second greeting would wait behind it)
        found = [backend.device(i, refresh=True) for i in known]
        backend.rpc_devices.update({d.index: d for d in found})
        if not found:
            raise BackendError(f"the RPC server at {name} offers no devices")
        out += found
    return out


def serve(host: str = "127.0.0.1", port: int = DEFAULT_PORT, device_names: list[str] | None = None,
          n_threads: int | None = None, cache_dir: str | None = None) -> None:
    """Serve local devices (default: the CPU) until the process ends; blocks."""
    local = [d for d in devices() if d.backend != "RPC"]
    if device_names:
        by_name = {d.name.lower(): d for d in local}
        unknown = [n for n in device_names if n.lower() not in by_name]
        if unknown:
            raise InvalidArgumentError(f"no device {', '.join(unknown)} here; devices: "
                                       f"{', '.join(d.name for d in local)}")
        chosen = [by_name[n.lower()] for n in device_names]
    else:
        chosen = [next(d for d in local if d.type == "cpu")]
    if not 0 < port < 65536:
        raise InvalidArgumentError(f"port {port} is not a TCP port")
    from .backend import default_threads
    ids = ffi.new("int[]", [d.index for d in chosen])
    endpoint = f"{host}:{port}".encode()
    cache = ffi.new("char[]", cache_dir.encode()) if cache_dir else ffi.NULL
    status = lib.gs_rpc_serve(endpoint, cache, n_threads or default_threads(), ids, len(chosen))
    if status == lib.GS_ERR_UNSUPPORTED:
        raise UnsupportedError("this ggsight was built without ggml's RPC backend")
    check(status, f"rpc-server on {host}:{port}")
