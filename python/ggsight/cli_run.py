"""`ggsight run`: one-shot generation or an interactive chat REPL, as `ollama run` does."""
from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

_EXT = r"\.(?:png|jpe?g|webp|gif|bmp)"
_IMAGE_PATH = re.compile(rf"'([^']+{_EXT})'|\"([^\"]+{_EXT})\"|((?:[^\s\\'\"]|\\ )+{_EXT})(?=\s|$)",
                         re.IGNORECASE)


def extract_images(text: str) -> tuple[str, list[str]]:
    """Image paths typed into a prompt (quoted, or with escaped spaces), as `ollama run` does:
    existing files are removed from the text and returned; anything else stays as text."""
    found: list[str] = []

    def take(m: re.Match) -> str:
        raw = next(g for g in m.groups() if g)
        path = Path(raw.replace("\\ ", " ")).expanduser()
        if not path.is_file():
            return m.group(0)
        found.append(str(path))
        return ""
    cleaned = _IMAGE_PATH.sub(take, text)
    return (re.sub(r"[ \t]{2,}", " ", cleaned).strip() if found else text), found

HELP = """Available commands:
  /set parameter NAME VALUE   set a sampling option (temperature, top_k, top_p, min_p, seed,
                              repeat_penalty, repeat_last_n, presence_penalty, frequency_penalty,
                              num_predict)
  /show info                  show model information
  /clear                      clear the conversation
  /bye                        exit
  /?                          this help
Use \"\"\" to begin and end a multi-line message."""


def split_model_and_prompt(args: list[str]) -> tuple[str | None, str | None]:
    """`run [MODEL] [PROMPT...]`: MODEL is taken only if it names a file (or ends in .gguf)."""
    if args and (args[0].endswith(".gguf") or Path(args[0]).is_file()):
        return args[0], " ".join(args[1:]) or None
    return None, " ".join(args) or None


def print_stats(final, out=sys.stderr) -> None:
    def rate(n, ns):
        return f"{n / (ns / 1e9):.2f} tokens/s" if ns else "-"
    print(f"total duration:       {final.total_duration / 1e9:.3f}s", file=out)
    print(f"load duration:        {final.load_duration / 1e9:.3f}s", file=out)
    print(f"prompt eval count:    {final.prompt_eval_count} token(s)", file=out)
    print(f"prompt eval duration: {final.prompt_eval_duration / 1e9:.3f}s", file=out)
    print(f"prompt eval rate:     {rate(final.prompt_eval_count, final.prompt_eval_duration)}", file=out)
    print(f"eval count:           {final.eval_count} token(s)", file=out)
    print(f"eval duration:        {final.eval_duration / 1e9:.3f}s", file=out)
    print(f"eval rate:            {rate(final.eval_count, final.eval_duration)}", file=out)


def stream_out(chunks, out=sys.stdout):
    final = None
    for chunk in chunks:
        if chunk.done:
            final = chunk
        else:
            out.write(chunk.text)
            out.flush()
    out.write("\n")
    return final


def show_info(model, out=sys.stdout) -> None:
    c = model.net.config
    print(f"  architecture   {model.arch}", file=out)
    print(f"  file           {model.path}", file=out)
    print(f"  layers         {c.n_layer}", file=out)
    print(f"  embedding      {c.n_embd}", file=out)
    print(f"  context        {model.n_ctx} (trained {c.n_ctx_train})", file=out)
    print(f"  vocabulary     {model.n_vocab}", file=out)
    print(f"  threads        {model.n_threads}", file=out)
    print(f"  chat template  {'yes' if model.tokenizer.chat_template else 'no (chat uses a generic ChatML template)'}", file=out)


def _read_message(session) -> str | None:
    line = session.prompt(">>> ")
    if not line.strip().startswith('"""'):
        return line
    lines = [line.strip()[3:]]
    while not lines[-1].rstrip().endswith('"""'):
        lines.append(session.prompt("... "))
    lines[-1] = lines[-1].rstrip()[:-3]
    return "\n".join(lines).strip("\n")


def repl(model, options: dict, verbose: bool) -> int:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import FileHistory
    hist = Path(os.environ.get("GGSIGHT_HOME", Path.home() / ".ggsight")) / "history"
    hist.parent.mkdir(parents=True, exist_ok=True)
    session = PromptSession(history=FileHistory(str(hist)))
    messages: list[dict] = []
    print("Send a message (/? for help)")
    while True:
        try:
            text = _read_message(session)
        except (EOFError, KeyboardInterrupt):
            print()
            return 0
        if text is None or not text.strip():
            continue
        cmd = text.strip()
        if cmd in ("/bye", "/exit"):
            return 0
        if cmd in ("/?", "/help"):
            print(HELP)
            continue
        if cmd == "/clear":
            messages.clear()
            print("Cleared session context")
            continue
        if cmd == "/show info":
            show_info(model)
            continue
        if cmd.startswith("/set parameter"):
            parts = cmd.split()
            if len(parts) != 4:
                print("Usage: /set parameter NAME VALUE")
                continue
            name, value = parts[2], parts[3]
            try:
                trial = {**options, name: int(value) if value.lstrip("-").isdigit() else float(value)}
                model._params({k: v for k, v in trial.items() if k != "num_predict"}, {})
            except (ValueError, TypeError) as e:   # the earlier value, if any, stays
                print(f"Couldn't set parameter: {e}")
                continue
            options.update(trial)
            print(f"Set parameter '{name}' to '{value}'")
            continue
        if cmd.startswith("/"):
            print(f"Unknown command '{cmd.split()[0]}'. Type /? for help")
            continue
        text, paths = extract_images(text)
        for path in paths:
            print(f"Added image '{path}'")
        if paths and model.images is None:
            print("This model has no vision projector (load it with an mmproj): images ignored")
            paths = []
        messages.append({"role": "user", "content": text, "images": paths})
        try:
            final = stream_out(_answer(model, messages, options))
        except KeyboardInterrupt:
            print()
            messages.pop()
            continue
        messages.append({"role": "assistant", "content": final.text if final else ""})
        if verbose and final:
            print_stats(final)


def _answer(model, messages, options):
    collected = []
    for chunk in model.chat(messages, stream=True, options=dict(options)):
        if not chunk.done:
            collected.append(chunk.text)
        else:
            chunk.set_text("".join(collected))
        yield chunk


def cmd_run(args: argparse.Namespace) -> int:
    from .model import load
    model_path, prompt = split_model_and_prompt(args.args)
    if prompt is None and not sys.stdin.isatty():
        prompt = sys.stdin.read()
    t0 = time.perf_counter()
    model = load(model_path, n_ctx=args.ctx, n_threads=args.threads, mmproj=args.mmproj, kv_type=args.kv_type,
                 rpc=args.rpc, n_gpu_layers=args.n_gpu_layers, image_options={"pan_and_scan": True} if args.pan_and_scan else None)
    if args.verbose:
        print(f"loaded {model.path.name} in {time.perf_counter() - t0:.2f}s", file=sys.stderr)
    options = {}
    if args.temperature is not None:
        options["temperature"] = args.temperature
    if args.seed is not None:
        options["seed"] = args.seed
    if prompt is None:
        return repl(model, options, args.verbose)
    prompt, images = extract_images(prompt)
    for path in images:
        print(f"Added image '{path}'", file=sys.stderr)
    final = stream_out(model.generate(prompt, stream=True, max_tokens=args.max_tokens, options=options,
                                      images=images or None))
    if args.verbose and final:
        print_stats(final)
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("run", help="run a model: one prompt, or an interactive chat")
    p.add_argument("args", nargs="*", metavar="[MODEL] [PROMPT]",
                   help="a GGUF file (default: the embedded Gemma 3 270M) and a prompt (none: chat REPL)")
    p.add_argument("--mmproj", default=None, help="vision projector GGUF (llama.cpp's two-file layout)")
    p.add_argument("--pan-and-scan", action="store_true",
                   help="Gemma 3: also show the model crops of a wide or tall image, as HF's option does")
    p.add_argument("--verbose", action="store_true", help="print token counts and rates")
    p.add_argument("--ctx", type=int, default=4096, help="context length (default 4096)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: all available)")
    p.add_argument("--rpc", default=None, metavar="HOST:PORT,...",
                   help="ggml RPC servers (`ggsight rpc-server`) to hold layers, comma-separated")
    p.add_argument("--n-gpu-layers", type=int, default=None,
                   help="layers on GPU/RPC devices (default: as many as fit; 0: none)")
    p.add_argument("--kv-type", default="f16", choices=["f16", "f32", "q8_0", "q4_0"],
                   help="KV cache type (default f16)")
    p.add_argument("--max-tokens", type=int, default=256, help="tokens to generate for a prompt (default 256)")
    p.add_argument("--temperature", type=float, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.set_defaults(func=cmd_run)
