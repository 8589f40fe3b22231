"""The `ggsight` command."""
from __future__ import annotations

import argparse
import json
import sys


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB"


def cmd_info(args: argparse.Namespace) -> int:
    from . import __version__
    from .ggml.system import system_info
    info = system_info()
    if args.json:
        print(json.dumps({"ggsight_version": __version__, **info}, indent=2))
        return 0
    print(f"ggsight {__version__}  (ggml {info['ggml_version']} from {info['ggml_source']}, "
          f"ABI {info['abi_version']})")
    print(f"backends: {', '.join(info['backends']) or 'none'}")
    print("devices:")
    for d in info["devices"]:
        mem = f"{_gib(d['memory_free'])} free / {_gib(d['memory_total'])}" if d["memory_total"] else "memory unknown"
        print(f"  [{d['index']}] {d['name']:<8} {d['type']:<5} {d['description']}  ({mem})")
    print("backend libraries:")
    for b in info["backend_libraries"]:
        name = b["family"] + (f"-{b['variant']}" if b["variant"] else "")
        score = f" (score {b['score']})" if b["score"] >= 0 and b["loaded"] else ""
        origin = "" if b["source"] == "ggsight" else f" [{b['source']}]"
        print(f"  {'*' if b['loaded'] else ' '} {name:<22}{origin} {b['status']}{score}")
    for f in info["backend_folders"]:
        if f["problem"]:
            print(f"  plug-in {f['source']} ({f['path'] or '?'}): {f['problem']}")
    feats = [k if v == "1" else f"{k}={v}" for k, v in info["cpu_features"].items()]
    print(f"cpu features: {' '.join(feats) or 'none reported'}")
    amx, x16 = info["ggsight_kernels"]["amx_bf16"], info["ggsight_kernels"]["x16_vnni"]
    print(f"ggsight kernels: AMX-BF16 tiles {'in use for bf16 vision towers' if amx else 'not available on this CPU/build'}")
    print(f"                 x16 Q8_0/Q5_0/Q6_K matmuls (AVX512-VNNI) "
          f"{'in use for CPU weights (load(repack=False) turns them off)' if x16 else 'not available on this CPU/build'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="ggsight", description="Run vision-language and text models locally.")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("info", help="show ggml version, backends, devices and CPU features")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_info)
    from .cli_run import add_parser as add_run
    add_run(sub)
    from .cli_show import add_parser as add_show
    add_show(sub)
    from .store.convert import add_parser as add_convert
    add_convert(sub)
    from .cli_rpc import add_parser as add_rpc
    add_rpc(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    # `run MODEL --ctx 512 "prompt"`: argparse stops a nargs="*" positional at the first option
    # and calls the prompt after it unrecognized; positionals left over go back to the command
    args, extra = ap.parse_known_args(argv)
    if extra:
        if getattr(args, "command", None) != "run" or any(a.startswith("-") for a in extra):
            ap.error(f"unrecognized arguments: {' '.join(extra)}")
        args.args += extra
    if not getattr(args, "func", None):
        ap.print_help()
        return 2
    try:
        return args.func(args)
    except BrokenPipeError:  # `ggsight info | head`
        return 0
    except Exception as e:  # one clear line for users; tracebacks with GGSIGHT_DEBUG=1
        import os
        if os.environ.get("GGSIGHT_DEBUG"):
            raise
        print(f"ggsight: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
