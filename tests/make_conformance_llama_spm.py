"""Conformance fixtures for the tiny Llama 2 style checkpoint of make_tiny_hf_llama_spm.py (a
SentencePiece tokenizer.model, no tokenizer.json), recorded from transformers in
make_conformance_llama.py's format, with one case more and the tokenizer's ids:

  text_long        make_conformance_llama.py's plain text
  text_unicode     spaces (runs of them), newlines, digits, vocabulary unicode and characters
                   only byte fallback spells ("€", an emoji)
  chat_multi_turn  the Llama 2 chat template's rendering of a system prompt and two user turns

`tokenize` holds HF's ids (BOS added, as the model wants, unless the text has it) for short texts of each of those
kinds, and SentencePiece's own ids, which tests/test_llama_spm.py compares with ggsight's
tokenizer on both GGUFs. They differ where a text begins with a space: transformers 5 builds
LlamaTokenizer from tokenizer.model with a Metaspace pre-tokenizer that prepends no "▁" to a
text already beginning with one (" leading" -> "▁leading"); SentencePiece, llama.cpp and
ggsight prepend it always ("▁▁leading").

    python tests/make_conformance_llama_spm.py [OUT_DIR]   (default: tests/data/conformance/llama_spm)
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from conformance_record import convert, record_cases  # noqa: E402
from make_conformance_llama import chat_facts, hf_cases  # noqa: E402

UNICODE = "Café  naïve\n\n  déjà vu 2024, 12345 €  Grüße 🙂\tÄ\nend"
TOKENIZE = ["Hello world!", " leading space", "two  spaces   three", "trailing  ", "line\nbreak\n\n\nthree",
            "digits 0 12 345 6789 2024", "Café naïve façade déjà Köln Ελληνικά русский", "byte € fallback 🙂 中",
            "tab\there", "<s>[INST] inside [/INST] </s>", ""]


def cases(tok) -> tuple[list, callable]:
    base, hf_inputs = hf_cases(tok)
    return [base[0], ("text_unicode", UNICODE, []), base[1]], hf_inputs


def tokenize_facts(tok, hf_dir: Path) -> list[dict]:
    """HF's ids of each text, BOS added unless the text begins with it (ggsight adds no second),
    and SentencePiece's own (its processor on tokenizer.model; None where the text holds
    control-token text, which SentencePiece does not parse)."""
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=str(hf_dir / "tokenizer.model"))
    return [{"text": t, "ids": tok(t, add_special_tokens=not t.startswith(tok.bos_token))["input_ids"],
             "sentencepiece": None if "<s>" in t else [sp.bos_id(), *sp.encode(t)]} for t in TOKENIZE]


def record(out: Path) -> Path:
    import transformers
    from make_tiny_hf_llama_spm import make_tiny_hf_llama_spm
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        hf_dir = Path(tmp) / "hf"
        model = make_tiny_hf_llama_spm(hf_dir)
        convert(hf_dir, out, mmproj=False)
        tok = transformers.AutoTokenizer.from_pretrained(hf_dir)
        suite_cases, hf_inputs = cases(tok)
        record_cases(out, model, suite_cases, hf_inputs, None)
        suite = json.loads((out / "cases.json").read_text())
        suite.update(mmproj=None, chat=chat_facts(tok), tokenize=tokenize_facts(tok, hf_dir))
    (out / "cases.json").write_text(json.dumps(suite, indent=1, ensure_ascii=False), encoding="utf-8")
    return out


if __name__ == "__main__":
    print(record(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "data" / "conformance" / "llama_spm"))
