"""`ggsight show`: what a GGUF file holds and, with --memory, what loading it takes per device."""
from __future__ import annotations

import argparse
import dataclasses
import json


def memory_rows(est) -> list[tuple[str, dict]]:
    """(label, {device name: bytes or None}) rows of the memory table."""
    devs = list(est.per_device)
    # The cache and the compute buffers live on one device today; with more, the per-kind and
    # per-graph figures go to the device that holds that part.
    kv_dev = next((d for d in devs if est.per_device[d].kv), devs[0])
    cp_dev = next((d for d in devs if est.per_device[d].compute), devs[0])

    def on(dev, value):
        return {d: (value if d == dev else None) for d in devs}
    rows = [("weights (mapped file)" if est.weights_mapped else "weights",
             {d: m.weights for d, m in est.per_device.items()})]
    for kind, nbytes in est.kv_by_kind.items():
        layers, cells = est.kv_layout[kind]
        rows.append((f"kv {kind} ({layers} layer{'s' * (layers != 1)} x {cells} cells)", on(kv_dev, nbytes)))
    rows.append(("compute text", on(cp_dev, est.compute_text)))
    rows.append(("compute vision", on(cp_dev, est.compute_vision or None)))
    rows.append(("total", {d: m.total for d, m in est.per_device.items()}))
    return rows


def memory_table(est, free: dict | None = None) -> str:
    from .engine.memory import human
    rows = memory_rows(est)
    if free is not None:
        rows.append(("free now", dict(free)))
    devs = list(est.per_device)
    label_w = max(len(r[0]) for r in rows)
    cell = {d: max([len(d)] + [len(human(v)) for _, vals in rows for k, v in vals.items() if k == d and v is not None])
            for d in devs}
    lines = [f"{'':<{label_w}}  " + "  ".join(f"{d:>{cell[d]}}" for d in devs)]
    for label, vals in rows:
        lines.append(f"{label:<{label_w}}  " + "  ".join(
            f"{human(vals[d]) if vals.get(d) is not None else '-':>{cell[d]}}" for d in devs))
    return "\n".join(lines)


def parse_devices(text: str) -> list:
    """'gpu0=8G,gpu1=4G,rpc0=16G[,cpu=32G]' -> DeviceBudgets (simulated devices). The kind is the
    name's prefix (cpu, rpc, else gpu); without a cpu entry the CPU's real free memory is used."""
    from .engine.memory import free_memory, parse_size
    from .engine.placement import DeviceBudget
    from .errors import InvalidArgumentError
    from .ggml import cpu_device
    out = []
    for item in filter(None, (x.strip() for x in text.split(","))):
        name, eq, size = item.partition("=")
        if not eq or not name:
            raise InvalidArgumentError(f"--devices: give NAME=SIZE items like gpu0=8G, not {item!r}")
        kind = "cpu" if name.lower().startswith("cpu") else "rpc" if name.lower().startswith("rpc") else "gpu"
        out.append(DeviceBudget(name, parse_size(size), kind))
    if not any(d.kind == "cpu" for d in out):
        out.append(DeviceBudget(cpu_device().name, free_memory(cpu_device()), "cpu"))
    return out


def parse_gpu_layers(text: str | None):
    """'20' -> 20; 'gpu0=12,gpu1=6' -> {'gpu0': 12, 'gpu1': 6}; None stays None."""
    if text is None or "=" not in text:
        return None if text is None else int(text)
    return {k.strip(): int(v) for k, _, v in (x.partition("=") for x in text.split(",") if x.strip())}


def placement_lines(p) -> list[str]:
    from .engine.memory import human
    spans = p.ranges()
    lines = []
    for name, nbytes in p.bytes.items():
        parts = [f"layers {', '.join(f'{a}-{b}' if a != b else str(a) for a, b in spans[name])}"] if name in spans else []
        parts += ["input"] * (p.input == name) + ["output"] * (p.output == name) + ["vision"] * (p.vision == name)
        lines.append((name, ", ".join(parts) or "-", f"{human(nbytes)} of {human(max(p.budget[name], 0))} usable"))
    w = [max(len(r[i]) for r in lines) for i in range(2)]
    return [f"  {a:<{w[0]}}  {b:<{w[1]}}  {c}" for a, b, c in lines]


def cmd_show(args: argparse.Namespace) -> int:
    from .ggml import GGUFFile
    from .model import default_model_path
    path = args.model or default_model_path()
    if not args.memory:
        with GGUFFile.open(path) as g:
            if args.json:
                print(json.dumps({"path": str(path), "architecture": g.arch, "tensors": len(g.tensors),
                                  "parameters": sum(t.n_elements for t in g.tensors), "file_size": g.file_size}))
            else:
                print(g.describe())
                arch = g.arch
                for key in ("block_count", "embedding_length", "context_length"):
                    if f"{arch}.{key}" in g:
                        print(f"  {key.replace('_', ' '):<17} {g[f'{arch}.{key}']}")
        return 0
    from .engine.memory import estimate, free_memory
    sim = parse_devices(args.devices) if args.devices else None
    est = estimate(path, n_ctx=args.ctx, n_batch=args.batch, kv_type=args.kv_type, mmproj=args.mmproj,
                   devices=sim, n_gpu_layers=parse_gpu_layers(args.n_gpu_layers))
    free = {d: free_memory(d) for d in est.per_device}
    if args.json:
        out = dataclasses.asdict(est)
        out.pop("price")
        if est.placement is None:
            out.pop("placement")
        print(json.dumps({**out, "free": free}, indent=2))
        return 0
    from pathlib import Path
    print(f"{Path(path).name}: n_ctx {est.n_ctx}, micro-batch {est.n_batch} tokens, kv {est.kv_type}"
          + (f", mmproj {Path(args.mmproj).name}" if args.mmproj else ""))
    print()
    print(memory_table(est, free))
    if est.compute_vision:
        print("\nText and vision graphs share one compute buffer: total counts the larger.")
    from .engine.memory import human
    parts = ", ".join(f"{k} {human(v)}" for k, v in est.host_parts.items() if v)
    print(f"\nHost memory besides ggml's buffers: {human(est.host)} ({parts}); a CPU run's resident peak: "
          f"about {human(est.resident)}.")
    short = [d for d, m in est.per_device.items() if m.kv + m.compute > free[d]]
    if short:
        print(f"Does not fit: the KV cache and compute buffers exceed the free memory of {', '.join(short)} "
              "(try a smaller --ctx or --kv-type q8_0 / q4_0).")
    if est.placement is not None:
        print("\nPlacement on the given devices (simulated; layers last first, the output with the last layer):")
        print("\n".join(placement_lines(est.placement)))
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("show", help="show a model file's contents, or with --memory what loading it takes")
    p.add_argument("model", nargs="?", default=None, help="a GGUF file (default: the embedded Gemma 3 270M)")
    p.add_argument("--memory", action="store_true",
                   help="weights, KV cache and compute buffers per device, before anything is allocated")
    p.add_argument("--ctx", type=int, default=4096, help="context length (default 4096)")
    p.add_argument("--batch", type=int, default=512, help="micro-batch size (default 512)")
    p.add_argument("--kv-type", default="f16", choices=["f16", "f32", "q8_0", "q4_0"], help="KV cache type")
    p.add_argument("--mmproj", default=None, help="vision projector GGUF (llama.cpp's two-file layout)")
    p.add_argument("--devices", default=None,
                   help="with --memory, simulated devices NAME=SIZE,... (gpu0=8G,gpu1=4G; rpc*, cpu): where each layer goes")
    p.add_argument("--n-gpu-layers", default=None,
                   help="with --devices: layers on the GPUs in total (20), or per device (gpu0=12,gpu1=6)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_show)
