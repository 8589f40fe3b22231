"""Conformance fixtures for Qwen3-MoE (text), recorded from transformers.

A tiny random Qwen3MoeForCausalLM shaped like Qwen3-30B-A3B: QK-norm, NEOX rope (theta 1e6), GQA,
every layer a sparse MoE (softmax router over 8 experts, top 2, norm_topk_prob), no shared
expert, an untied head. Routing ties on purpose: in every layer expert 1 is a copy of expert 0
(router row and weights), so the two score exactly alike on every token, and on some tokens
the tie straddles the top-2 boundary (counted: `router_ties`). torch.topk and ggml's sort
break such ties differently (`topk_ties`, checked in tests/test_qwen3moe_text.py); with the
experts equal either choice gives the same output. The tokenizer is the tiny byte-level BPE of
make_tiny_hf_qwen25vl.py plus Qwen3's <think> tokens, with Qwen3's real chat template.

  text_only                    text only
  chat_with_system             system + user + assistant + user, as the chat template renders it

`chat` records tokenizer.apply_chat_template's text for that conversation.

    python tests/make_conformance_qwen3moe.py [OUT_DIR]   (default: tests/data/conformance/qwen3moe)

Needs torch + transformers; tests/test_conformance.py reads the result without them.
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "vendor" / "ggml"))   # fetch.py: the pinned llama.cpp sdist
from conformance_record import convert, record_cases  # noqa: E402
from make_conformance_gemma2 import finish_suite  # noqa: E402

DEFAULT_OUT = HERE / "data" / "conformance" / "qwen3moe"
# Qwen/Qwen3-0.6B's chat template (the same in Qwen3-30B-A3B), as llama.cpp keeps it
TEMPLATE_FILE = "models/templates/Qwen-Qwen3-0.6B.jinja"
CONVERSATION = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Hello there, tiny model."},
    {"role": "assistant", "content": "Hello world! The cat sits on the table."},
    {"role": "user", "content": "What is in the image?"},
]
CASES = [
    ("text_only", "The user shows the model an image and asks what is in the image. Hello world, the cat "
                  "sits on the table next to a window.", []),
]
TINY = dict(hidden_size=32, intermediate_size=64, moe_intermediate_size=16, num_hidden_layers=3,
            num_attention_heads=4, num_key_value_heads=2, head_dim=8, num_experts=8, num_experts_per_tok=2,
            norm_topk_prob=True, rms_norm_eps=1e-6, max_position_embeddings=512, tie_word_embeddings=False,
            rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0})
# score rows for torch.topk vs ggml (k = 2 of 8): ties at and inside the boundary
TIE_ROWS = [[1, 1, 5, 0, 0, 0, 0, 0], [5, 1, 1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 3, 3, 1, 0],
            [0, 0, 0, 0, 1, 1, 1, 1], [2, 2, 2, 2, 2, 2, 2, 2], [0, 3, 0, 0, 0, 3, 0, 9]]


def chat_template() -> str:
    import tarfile

    import fetch
    pin = fetch.read_pin()
    sdist = fetch.obtain_sdist(pin, Path(tempfile.gettempdir()))
    top = f"{pin['package'].replace('-', '_')}-{pin['package_version']}/vendor/llama.cpp/"
    with tarfile.open(sdist, "r:gz") as tar:
        return tar.extractfile(top + TEMPLATE_FILE).read().decode("utf-8")


def tokenizer_json() -> dict:
    from make_tiny_hf_qwen25vl import tiny_tokenizer_json
    tj = tiny_tokenizer_json()
    n = max(t["id"] for t in tj["added_tokens"]) + 1
    for i, tok in enumerate(("<think>", "</think>")):   # Qwen3's, added and not special
        tj["added_tokens"].append({"id": n + i, "content": tok, "single_word": False, "lstrip": False,
                                   "rstrip": False, "normalized": False, "special": False})
    return tj


def build_hf(hf_dir: Path, **overrides):
    """Save the tiny checkpoint + tokenizer to hf_dir; return (model, tokenizer)."""
    import torch
    import transformers
    tj = tokenizer_json()
    ids = {t["content"]: t["id"] for t in tj["added_tokens"]}
    cfg = transformers.Qwen3MoeConfig(**{**TINY, "vocab_size": max(ids.values()) + 1, **overrides},
                                      bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"],
                                      pad_token_id=ids["<|endoftext|>"], architectures=["Qwen3MoeForCausalLM"])
    cfg._attn_implementation = "eager"
    torch.manual_seed(0)
    model = transformers.Qwen3MoeForCausalLM(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1.0 + 0.3 * torch.randn_like(p))
            else:
                p.copy_(torch.randn_like(p) / p.shape[-1] ** 0.5)
        for layer in model.model.layers:   # expert 1 = expert 0: exact routing ties
            moe = layer.mlp
            moe.gate.weight[1] = moe.gate.weight[0]
            moe.experts.gate_up_proj[1] = moe.experts.gate_up_proj[0]
            moe.experts.down_proj[1] = moe.experts.down_proj[0]
    hf_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(hf_dir, safe_serialization=True)
    (hf_dir / "tokenizer.json").write_text(json.dumps(tj, ensure_ascii=False), encoding="utf-8")
    (hf_dir / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "Qwen2Tokenizer", "bos_token": None, "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>", "unk_token": None, "add_bos_token": False,
        "chat_template": chat_template()}), encoding="utf-8")
    return model, transformers.AutoTokenizer.from_pretrained(hf_dir)


def chat_facts(tok) -> dict:
    return {"messages": CONVERSATION,
            "rendered": tok.apply_chat_template(CONVERSATION, tokenize=False, add_generation_prompt=True)}


def text_cases(tok) -> list:
    return [*CASES, ("chat_with_system", chat_facts(tok)["rendered"], [])]


def router_ties(model, tok, cases) -> dict:
    """Per case: tokens x layers where experts 0 and 1 score exactly alike in HF, and how many of
    those have one of the two chosen and the other not (the tie on the top-k boundary)."""
    import torch
    seen = []
    hooks = [layer.mlp.gate.register_forward_hook(lambda m, i, out: seen.append(out))
             for layer in model.model.layers]
    out = {}
    with torch.no_grad():
        for name, prompt, _ in cases:
            seen.clear()
            model(input_ids=tok(prompt, return_tensors="pt")["input_ids"])
            ties = straddles = 0
            for logits, _, chosen in seen:
                probs = logits.softmax(-1)
                tie = probs[:, 0] == probs[:, 1]
                one = (chosen == 0).any(-1) ^ (chosen == 1).any(-1)
                ties += int(tie.sum())
                straddles += int((tie & one).sum())
            out[name] = {"ties": ties, "on_boundary": straddles, "routings": sum(len(s[0]) for s in seen)}
    for h in hooks:
        h.remove()
    return out


def topk_ties() -> dict:
    import torch
    probs = torch.tensor(TIE_ROWS, dtype=torch.float32).softmax(-1)
    return {"rows": TIE_ROWS, "k": 2, "torch_topk": torch.topk(probs, 2, dim=-1).indices.tolist()}


def record(out: Path) -> Path:
    """Build, convert and record every case into `out`; returns it."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        model, tok = build_hf(Path(tmp) / "hf")
        convert(Path(tmp) / "hf", out, mmproj=False)

    def hf_inputs(prompt, images):
        return tok(prompt, return_tensors="pt")["input_ids"], {}, {}
    cases = text_cases(tok)
    record_cases(out, model, cases, hf_inputs, None)
    finish_suite(out, chat=chat_facts(tok), router_ties=router_ties(model, tok, cases), topk_ties=topk_ties())
    return out


if __name__ == "__main__":
    print(record(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT))
