"""Conformance fixtures for the dense Llama-style decoders, recorded from transformers.

One suite per tiny checkpoint of tests/make_tiny_hf_llama.py (see there what each turns on):
llama (llama3 rope scaling, untied), llama_tied (tied head, attention and MLP biases),
llama_mistral (sliding window 8, head_dim != hidden / heads, tekken), qwen2, qwen3, granite; the
scripts make_conformance_<suite>.py record one each. Converted with `ggsight convert` (f32); for
each case HF's tokenizer writes the ids, the model its float32 logits at every position and its
greedy 16 tokens:

  text_long        plain text, 28 tokens (past the window of 8, past llama3's original 16 positions)
  chat_multi_turn  a system prompt and two user turns as the real chat template renders them

`chat` records what tokenizer.apply_chat_template renders (and its token ids) for that
conversation; `effects` how much HF's logits move when a feature is switched off (the sliding
window, llama3's frequency scaling), so that the fixture is known to exercise it.

    python tests/make_conformance_llama.py [OUT_DIR]     (default: tests/data/conformance/llama)

Needs torch + transformers; tests/test_conformance.py and tests/test_llama_family_chat.py read
the result without them.
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from conformance_record import convert, record_cases  # noqa: E402

TEXT = ("Hello world! The window slides over the tokens; the rope rotates the queries and the keys of "
        "every head. Tell me a story")
CONVERSATION = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Hello there, tiny model."},
    {"role": "assistant", "content": "Hello world! What is the capital of France?"},
    {"role": "user", "content": "Tell me a story about a cat and a dog."},
]


def chat_facts(tok) -> dict:
    rendered = tok.apply_chat_template(CONVERSATION, tokenize=False, add_generation_prompt=True)
    return {"messages": CONVERSATION, "rendered": rendered, "ids": tok(rendered, add_special_tokens=False)["input_ids"]}


def effects(model, ids) -> dict:
    """max|logits without the feature - logits| / max|logits| of HF's model, per feature it has."""
    import torch
    out = {}
    with torch.no_grad():
        ref = model(input_ids=ids).logits
        cfg = model.config
        if getattr(cfg, "sliding_window", None):
            keep, cfg.sliding_window = cfg.sliding_window, None
            out["sliding_window"] = float((model(input_ids=ids).logits - ref).abs().max() / ref.abs().max())
            cfg.sliding_window = keep
        rot = model.model.rotary_emb
        dim = rot.inv_freq.shape[0] * 2
        plain = 1.0 / (cfg.rope_parameters["rope_theta"] ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
        if not torch.allclose(rot.inv_freq, plain):   # llama3: scaled frequencies
            keep = rot.inv_freq.clone()
            rot.inv_freq.copy_(plain)
            out["llama3_rope_scaling"] = float((model(input_ids=ids).logits - ref).abs().max() / ref.abs().max())
            rot.inv_freq.copy_(keep)
    return {k: round(v, 3) for k, v in out.items()}


def hf_cases(tok) -> tuple[list, callable]:
    """The cases and their hf_inputs: a rendered chat that begins with the BOS text gets no
    second one from the tokenizer (ggsight adds none either)."""
    chat = chat_facts(tok)["rendered"]
    bos = tok.bos_token

    def hf_inputs(prompt, images):
        add = not (bos and prompt.startswith(bos))
        return tok(prompt, return_tensors="pt", add_special_tokens=add)["input_ids"], {}, {}
    return [("text_long", TEXT, []), ("chat_multi_turn", chat, [])], hf_inputs


def record_family(out: Path, name: str) -> Path:
    """Build family `name`'s tiny checkpoint, convert it and record every case into `out`."""
    import transformers
    from make_tiny_hf_llama import make_tiny_hf
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        hf_dir = Path(tmp) / "hf"
        model = make_tiny_hf(name, hf_dir)
        convert(hf_dir, out, mmproj=False)
        tok = transformers.AutoTokenizer.from_pretrained(hf_dir)
        cases, hf_inputs = hf_cases(tok)
        record_cases(out, model, cases, hf_inputs, None)
        suite = json.loads((out / "cases.json").read_text())
        suite.update(mmproj=None, chat=chat_facts(tok), effects=effects(model, hf_inputs(cases[0][1], [])[0]))
    (out / "cases.json").write_text(json.dumps(suite, indent=1, ensure_ascii=False), encoding="utf-8")
    return out


def record(out: Path) -> Path:
    return record_family(out, "llama")


if __name__ == "__main__":
    print(record(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "data" / "conformance" / "llama"))
