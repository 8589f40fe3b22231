"""Conformance fixtures for Gemma 2 (text), recorded from transformers.

A tiny random Gemma2ForCausalLM with every structural feature on: sliding-window and global
layers alternating (window 4, shorter than every prompt), GQA, sandwich norms with non-zero
weights, query_pre_attn_scalar (12) != head_dim (8), an attention softcap (3) and a final logit
softcap (8) small enough to bend the scores and logits (by how much is recorded:
`softcap_effect`, HF's logits with each cap removed against the capped ones). The tokenizer is
the hand-made SentencePiece-style BPE of make_tiny_hf_gemma3.py; tokenizer_config.json carries
Gemma 2's real chat template (google/gemma-2-2b-it). Converted with `ggsight convert` (f32);
for each case HF's tokenizer writes the ids, the model its float32 logits at every position and
its greedy 16 tokens:

  text_longer_than_window      text only, 24 tokens against a window of 4
  chat_two_turns               a two-turn conversation as the chat template renders it

`chat` records what tokenizer.apply_chat_template renders for a multi-turn conversation and what
it does with a system turn (Gemma 2's template raises "System role not supported").

    python tests/make_conformance_gemma2.py [OUT_DIR]     (default: tests/data/conformance/gemma2)

Needs torch + transformers; tests/test_conformance.py and tests/test_gemma2_chat.py read the
result without them.
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from conformance_record import convert, record_cases  # noqa: E402

DEFAULT_OUT = HERE / "data" / "conformance" / "gemma2"
# google/gemma-2-2b-it's tokenizer_config.json chat_template (llama.cpp keeps the same text as
# models/templates/google-gemma-2-2b-it.jinja)
CHAT_TEMPLATE = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}"
    "{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}")
CONVERSATION = [
    {"role": "user", "content": "hello tiny model"},
    {"role": "assistant", "content": "  hello world  "},
    {"role": "user", "content": "the window test"},
]
SYSTEM_CONVERSATION = [{"role": "system", "content": "you are tiny"}, *CONVERSATION]
CASES = [
    ("text_longer_than_window",
     "hello world the tiny model and the window attention test of logits in the gemma world model "
     "and hello tiny test", []),
]
TINY = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=4, num_attention_heads=4,
            num_key_value_heads=2, head_dim=8, sliding_window=4, query_pre_attn_scalar=12,
            attn_logit_softcapping=3.0, final_logit_softcapping=8.0, rms_norm_eps=1e-6,
            max_position_embeddings=512)


def build_hf(hf_dir: Path, **overrides):
    """Save the tiny checkpoint + tokenizer to hf_dir; return (model, tokenizer). overrides:
    Gemma2Config fields to change (tests/make_llamacpp_fixtures.py: query_pre_attn_scalar =
    head_dim, what llama.cpp's files imply)."""
    import torch
    import transformers
    from make_tiny_hf_gemma3 import tiny_tokenizer_json
    tj = tiny_tokenizer_json()
    cfg = transformers.Gemma2Config(**{**TINY, "vocab_size": len(tj["model"]["vocab"]), **overrides},
                                    bos_token_id=2, eos_token_id=1, pad_token_id=0,
                                    architectures=["Gemma2ForCausalLM"])
    cfg._attn_implementation = "eager"
    torch.manual_seed(0)
    model = transformers.Gemma2ForCausalLM(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(0.3 * torch.randn_like(p))          # (1 + w) around 1, not exactly 1
            elif "embed_tokens" in name:
                p.copy_(0.1 * torch.randn_like(p))
            else:
                p.copy_(torch.randn_like(p) / p.shape[-1] ** 0.5)
        for layer in model.model.layers:                  # q . k large enough for the cap of 3
            layer.self_attn.q_proj.weight.mul_(2.0)
        model.model.norm.weight.add_(3.0)                 # logits ~5-15, where the cap of 8 bends them
    hf_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(hf_dir, safe_serialization=True)
    (hf_dir / "tokenizer.json").write_text(json.dumps(tj, ensure_ascii=False), encoding="utf-8")
    (hf_dir / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "GemmaTokenizer", "bos_token": "<bos>", "eos_token": "<eos>", "unk_token": "<unk>",
        "pad_token": "<pad>", "add_bos_token": True, "add_eos_token": False,
        "chat_template": CHAT_TEMPLATE}), encoding="utf-8")
    return model, transformers.AutoTokenizer.from_pretrained(hf_dir)


def chat_facts(tok) -> dict:
    """What transformers renders for the conversation, and what it does with a system turn."""
    rendered = tok.apply_chat_template(CONVERSATION, tokenize=False, add_generation_prompt=True)
    try:
        tok.apply_chat_template(SYSTEM_CONVERSATION, tokenize=False, add_generation_prompt=True)
        system = {"rendered": None}
    except Exception as e:   # jinja2's TemplateError from raise_exception
        system = {"error": str(e)}
    return {"messages": CONVERSATION, "rendered": rendered, "system_messages": SYSTEM_CONVERSATION, **system}


def softcap_effect(model, ids) -> dict:
    """max|capped - uncapped| / max|capped| of HF's logits, each cap removed in turn."""
    import torch
    cfg = model.config
    with torch.no_grad():
        ref = model(input_ids=ids).logits
        out = {}
        for field in ("attn_logit_softcapping", "final_logit_softcapping"):
            keep = getattr(cfg, field)
            setattr(cfg, field, None)
            for layer in model.model.layers:   # the attention modules read the cap at init
                layer.self_attn.attn_logit_softcapping = cfg.attn_logit_softcapping
            other = model(input_ids=ids).logits
            setattr(cfg, field, keep)
            for layer in model.model.layers:
                layer.self_attn.attn_logit_softcapping = cfg.attn_logit_softcapping
            out[field] = round(float((other - ref).abs().max() / ref.abs().max()), 3)
    return out


def text_cases(tok) -> list:
    """The plain cases, plus the rendered conversation (its BOS left to the tokenizer, as ggsight
    and HF both add one)."""
    chat = chat_facts(tok)["rendered"]
    return [*CASES, ("chat_two_turns", chat[len("<bos>"):], [])]


def finish_suite(out: Path, **facts) -> None:
    """A text-only suite: no mmproj, no image marker; suite-level facts added."""
    suite = json.loads((out / "cases.json").read_text())
    suite.update(mmproj=None, image_marker=None, **facts)
    (out / "cases.json").write_text(json.dumps(suite, indent=1), encoding="utf-8")


def record(out: Path) -> Path:
    """Build, convert and record every case into `out`; returns it."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        model, tok = build_hf(Path(tmp) / "hf")
        convert(Path(tmp) / "hf", out, mmproj=False)

    def hf_inputs(prompt, images):
        return tok(prompt, return_tensors="pt")["input_ids"], {}, {}
    record_cases(out, model, text_cases(tok), hf_inputs, None)
    finish_suite(out, chat=chat_facts(tok), softcap_effect=softcap_effect(model, hf_inputs(CASES[0][1], [])[0]))
    return out


if __name__ == "__main__":
    print(record(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT))
