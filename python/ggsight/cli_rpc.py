"""`ggsight rpc-server`: lend this machine's backend to a model loaded elsewhere."""
from __future__ import annotations

import argparse
import sys
import threading


def cmd_rpc_server(args: argparse.Namespace) -> int:
    from .ggml import rpc
    if not rpc.is_loopback(args.host):
        print(f"ggsight rpc-server: WARNING: listening on {args.host}, not loopback. The RPC protocol has no "
              "authentication or encryption: anyone who can reach this port can use this machine's backend "
              "and read its memory. Use a trusted network or an SSH tunnel.", file=sys.stderr)
    devices = [d for d in (args.device or "").split(",") if d.strip()]
    failure: list[BaseException] = []

    def run():
        try:
            rpc.serve(args.host, args.port, devices or None, args.threads, args.cache)
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            failure.append(e)
    # ggml's server loop never returns while it listens; a daemon thread leaves the main thread
    # free to stop on Ctrl-C / SIGTERM
    server = threading.Thread(target=run, name="ggml-rpc-server", daemon=True)
    server.start()
    try:
        while server.is_alive():
            server.join(0.5)
    except KeyboardInterrupt:
        return 0
    if failure:
        raise failure[0]
    return 1


def add_parser(sub) -> None:
    p = sub.add_parser("rpc-server", help="serve this machine's backend to ggsight/llama.cpp clients (ggml RPC)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; the protocol has no authentication)")
    p.add_argument("--port", type=int, default=50052, help="TCP port (default 50052)")
    p.add_argument("--device", default=None, help="device name(s) to serve, comma-separated (default: the CPU)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for the served CPU backend")
    p.add_argument("--cache", default=None, metavar="DIR",
                   help="keep received weights in DIR, so a client that reconnects sends only hashes")
    p.set_defaults(func=cmd_rpc_server)
