#!/usr/bin/env python3
"""KV cache bytes of Llama 4 Scout's real shape at a given context, with and without the
chunked-attention cache (RoPE layers keep one chunk + one batch of cells).

    python bench/kv_llama4.py [--ctx 32768] [--batch 512] [--kv f16|q8_0|q4_0]

Scout: 48 layers, every 4th NoPE + global, the rest RoPE + chunked (8192); 8 KV heads x 128.
Sizes come from ggsight's own cell tables (the ones the engine allocates), no weights needed."""
from __future__ import annotations

import argparse

from ggsight.cache import FULL, CellTable, chunked_kind
from ggsight.ggml import DType, row_bytes


def kv_bytes(kinds, n_ctx: int, n_batch: int, width: int, dtype: DType) -> int:
    tables = {k: CellTable(k, n_ctx, n_batch) for k in set(kinds)}
    return sum(2 * tables[k].size * row_bytes(dtype, width) for k in kinds)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ctx", type=int, default=32768)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--kv", default="f16", choices=["f16", "q8_0", "q4_0"])
    args = ap.parse_args()
    dtype = {"f16": DType.F16, "q8_0": DType.Q8_0, "q4_0": DType.Q4_0}[args.kv]
    n_layer, width, chunk = 48, 8 * 128, 8192
    rope = [(il + 1) % 4 != 0 for il in range(n_layer)]
    chunked = [chunked_kind(chunk) if r else FULL for r in rope]
    every_full = [FULL] * n_layer
    gib = 1024 ** 3
    a = kv_bytes(every_full, args.ctx, args.batch, width, dtype)
    b = kv_bytes(chunked, args.ctx, args.batch, width, dtype)
    print(f"Llama 4 Scout KV cache, {args.ctx} context, batch {args.batch}, {args.kv}\n")
    print("| cache | chunked layers | global layers | total |")
    print("|---|---:|---:|---:|")
    per_full = 2 * args.ctx * row_bytes(dtype, width)
    per_chunk = 2 * min(args.ctx, chunk + args.batch) * row_bytes(dtype, width)
    print(f"| every layer holds the whole context | 36 x {per_full / 2**20:.0f} MiB | "
          f"12 x {per_full / 2**20:.0f} MiB | {a / gib:.2f} GiB |")
    print(f"| chunked layers hold chunk + batch (ggsight's chunked cache) | 36 x {per_chunk / 2**20:.0f} MiB | "
          f"12 x {per_full / 2**20:.0f} MiB | {b / gib:.2f} GiB ({b / a:.0%}) |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
