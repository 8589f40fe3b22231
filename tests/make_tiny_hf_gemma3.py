"""Build a tiny random Hugging Face Gemma3ForCausalLM checkpoint (needs torch + transformers).

Every structural feature of the text model is on: 5 sliding-window layers + 1 global, a window
(8) shorter than test prompts, GQA, QK-norm, sandwich norms with non-zero weights (HF
initialises them to 0, which would hide a missing "+1"), query_pre_attn_scalar != head_dim,
linear rope scaling on global layers, distinct local/global rope bases, final logit softcap.
The tokenizer is a hand-made SentencePiece-style BPE (byte fallback, "▁" for spaces) with
Gemma's special tokens, so the converted vocabulary can be checked too.

    python tests/make_tiny_hf_gemma3.py OUT_DIR [--bf16]
"""
from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<start_of_turn>", "<end_of_turn>"]
WORDS = ["the", "and", "hello", "world", "model", "gemma", "window", "tiny", "ing", "er", "in",
         "attention", "test", "logits", "user"]
CHAT_TEMPLATE = ("{{ bos_token }}{% for m in messages %}<start_of_turn>{{ m['role'] }}\n"
                 "{{ m['content'] }}<end_of_turn>\n{% endfor %}"
                 "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}")


def tiny_tokenizer_json() -> dict:
    """Specials, 256 byte tokens, single characters, then merged pieces built word by word
    (each merge left to right), as a HF `tokenizers` BPE model."""
    vocab: dict[str, int] = {}
    for t in SPECIALS + [f"<0x{b:02X}>" for b in range(256)] + list("▁abcdefghijklmnopqrstuvwxyz.,!?\n"):
        vocab.setdefault(t, len(vocab))
    for word in WORDS:   # pieces of growing length, as SentencePiece's BPE training adds them
        for piece in (word, "▁" + word):
            for end in range(2, len(piece) + 1):
                vocab.setdefault(piece[:end], len(vocab))
    # HF's SentencePiece -> tokenizer.json conversion: every split (a, b) of every piece with a
    # and b in the vocabulary is a merge, ranked by the piece's id (its SentencePiece score).
    merges = [[t[:k], t[k:]] for t in sorted(vocab, key=vocab.get) if len(t) > 1 and not t.startswith("<")
              for k in range(1, len(t)) if t[:k] in vocab and t[k:] in vocab]
    added = [{"id": vocab[t], "content": t, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for t in SPECIALS]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": "▁"},
        "pre_tokenizer": None,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<bos>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<bos>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<bos>": {"id": "<bos>", "ids": [vocab["<bos>"]], "tokens": ["<bos>"]}},
        },
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True,
                  "ignore_merges": False, "vocab": vocab, "merges": merges},
    }


def make_tiny_hf_gemma3(out_dir, *, bf16: bool = False, seed: int = 0, rope_factor: float = 2.0,
                        softcap: float | None = 30.0, query_pre_attn_scalar: int = 24):
    """Write the checkpoint to out_dir; returns the (float32, eval-mode) HF model whose weights
    equal the saved ones (rounded to bf16 first when bf16=True)."""
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tj = tiny_tokenizer_json()
    n_vocab = len(tj["model"]["vocab"])
    rope = {"sliding_attention": {"rope_type": "default", "rope_theta": 10_000.0},
            "full_attention": ({"rope_type": "linear", "factor": rope_factor, "rope_theta": 1_000_000.0}
                               if rope_factor != 1.0 else {"rope_type": "default", "rope_theta": 1_000_000.0})}
    config = Gemma3TextConfig(
        vocab_size=n_vocab, hidden_size=64, intermediate_size=96, num_hidden_layers=6,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=512,
        sliding_window=8, sliding_window_pattern=6, rope_parameters=rope,
        query_pre_attn_scalar=query_pre_attn_scalar, final_logit_softcapping=softcap,
        rms_norm_eps=1e-6, pad_token_id=0, eos_token_id=1, bos_token_id=2,
        tie_word_embeddings=True, architectures=["Gemma3ForCausalLM"])
    config._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = Gemma3ForCausalLM(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(0.3 * torch.randn_like(p))          # (1 + w) around 1, not exactly 1
            elif "embed_tokens" in name:   # small: the (tied) embedding must not drown the blocks
                p.copy_(0.1 * torch.randn_like(p))
            else:
                p.copy_(torch.randn_like(p) / p.shape[-1] ** 0.5)
        # a large final norm brings the logits (small tied embedding) to ~10-30, where the
        # softcap (30) bends them
        model.model.norm.weight.add_(5.0)
        if bf16:
            for p in model.parameters():
                p.copy_(p.to(torch.bfloat16).to(torch.float32))
    # a copy: casting the model itself would also round its rope inv_freq buffers to bf16
    (copy.deepcopy(model).to(torch.bfloat16) if bf16 else model).save_pretrained(out_dir, safe_serialization=True)

    (out_dir / "tokenizer.json").write_text(json.dumps(tj, ensure_ascii=False), encoding="utf-8")
    (out_dir / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "GemmaTokenizer", "bos_token": "<bos>", "eos_token": "<eos>",
        "unk_token": "<unk>", "pad_token": "<pad>", "add_bos_token": True, "add_eos_token": False,
        "chat_template": CHAT_TEMPLATE}), encoding="utf-8")
    return model


if __name__ == "__main__":
    make_tiny_hf_gemma3(sys.argv[1], bf16="--bf16" in sys.argv)
    print(sys.argv[1])
