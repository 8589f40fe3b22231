"""Build a tiny random Hugging Face Qwen2_5_VLForConditionalGeneration checkpoint (needs torch +
transformers).

Every structural feature is on. Text: 4 layers, GQA (4 heads, 2 KV heads, head_dim 16), q/k/v
biases, M-RoPE with sections [2, 3, 3] (sum = head_dim / 2), an untied lm_head (or tied with
tied=True), a vocabulary padded past the tokenizer as Qwen's is (151665 tokens, 151936 rows).
Vision: 4 blocks of width 32, patch 14, 2x2 merge, temporal patch 2, window 56 pixels (a
112x112 image is 2x2 windows of 2x2 merged tokens, so windows really window), full attention
in blocks [1, 2] (not every N-th block, which llama.cpp's n_wa_pattern cannot express). All
weights, norms included, are random and non-trivial.

The tokenizer is a hand-made byte-level BPE in Qwen2's format (its Split regex, NFC, ByteLevel),
its merges learned here from a small English/Chinese corpus so that common words are single
tokens, with Qwen's special tokens after the regular ones.

    python tests/make_tiny_hf_qwen25vl.py OUT_DIR
"""
from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

# Qwen2's pre-tokenizer regex, as in its tokenizer.json
QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")
# (text, special) in Qwen2.5-VL's order; the last three are non-special added tokens
SPECIALS = [("<|endoftext|>", True), ("<|im_start|>", True), ("<|im_end|>", True),
            ("<|vision_start|>", True), ("<|vision_end|>", True), ("<|vision_pad|>", True),
            ("<|image_pad|>", True), ("<|video_pad|>", True), ("<tool_call>", False),
            ("</tool_call>", False), ("<|fim_prefix|>", False)]
CORPUS = """The user shows the model an image and asks what is in the image.
The assistant looks at the picture and describes the image: a cat sits on the table next to
a window, and the sun shines on the cat. Hello world! Hello there, tiny model.
Describe this image. What is in this picture? There is a dog and a cat in the garden.
You are a helpful assistant. The vision tower sees the image, the language model writes text.
你好，世界！这是一张图片。请描述这张图片。图片里有一只猫和一只狗。你是一个有用的助手。
def hello(world): return world + 1  # the tiny test model
"""
N_MERGES = 400
CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' %}"
    "<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] == 'text' %}{{ content['text'] }}"
    "{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def byte_chars() -> dict[int, str]:
    """GPT-2's printable stand-in for each byte: printable bytes are themselves, the others
    U+0100 onwards. Insertion order is the vocabulary order of GPT-2 and Qwen (ids 0..255)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in printable]
    return {**{b: chr(b) for b in printable}, **{b: chr(256 + i) for i, b in enumerate(others)}}


def learn_merges(corpus: str, n_merges: int, split: str = QWEN2_SPLIT) -> tuple[list[str], list[tuple[str, str]]]:
    """Plain BPE training on byte-level pieces (the corpus cut by the pre-tokenizer regex
    `split`): repeatedly merge the most frequent adjacent pair (ties: the smallest pair).
    Returns (new tokens, merges), both in rank order."""
    import regex
    table = byte_chars()
    words = Counter("".join(table[b] for b in piece.encode()) for piece in regex.findall(split, corpus))
    splits = {w: list(w) for w in words}
    new_tokens, merges = [], []
    for _ in range(n_merges):
        pairs: Counter = Counter()
        for w, count in words.items():
            s = splits[w]
            for pair in zip(s, s[1:]):
                pairs[pair] += count
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        if best[0] + best[1] not in new_tokens:
            new_tokens.append(best[0] + best[1])
        for s in splits.values():
            i = 0
            while i < len(s) - 1:
                if (s[i], s[i + 1]) == best:
                    s[i:i + 2] = [s[i] + s[i + 1]]
                i += 1
    return new_tokens, merges


def tiny_tokenizer_json() -> dict:
    new_tokens, merges = learn_merges(CORPUS, N_MERGES)
    vocab = {t: i for i, t in enumerate([*byte_chars().values(), *new_tokens])}
    added = [{"id": len(vocab) + i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": special} for i, (t, special) in enumerate(SPECIALS)]
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": QWEN2_SPLIT}, "behavior": "Isolated", "invert": False},
            byte_level]},
        "post_processor": byte_level, "decoder": byte_level,
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": [f"{a} {b}" for a, b in merges]},
    }


def random_weights(model):
    """Every parameter of the HF model random and non-trivial, drawn from torch's generator in
    parameter order (seed it first); returns the model. Also used by make_tiny_hf_llama.py and
    make_tiny_hf_mistral3.py."""
    import torch
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1 and name.endswith(".weight"):    # RMSNorm scales x * w: around 1, not 1
                p.copy_(1.0 + 0.3 * torch.randn_like(p))
            elif p.ndim == 1:                                # biases
                p.copy_(0.2 * torch.randn_like(p))
            elif "embed_tokens" in name:
                p.copy_(0.5 * torch.randn_like(p))
            else:                        # fan-in scaling (a matrix: its columns; Conv3d: in * t * p * p)
                p.copy_(torch.randn_like(p) / p[0].numel() ** 0.5)
    return model


def make_tiny_hf_qwen25vl(out_dir, seed: int = 0, *, tied: bool = False, vision: dict | None = None):
    """Write the checkpoint to out_dir; returns the (float32, eval-mode) HF model. vision:
    vision_config fields to change (tests/make_llamacpp_fixtures.py: an evenly spaced
    fullatt_block_indexes, which llama.cpp's converter requires)."""
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tj = tiny_tokenizer_json()
    ids = {t["content"]: t["id"] for t in tj["added_tokens"]}
    n_tokens = len(tj["model"]["vocab"]) + len(tj["added_tokens"])
    config = Qwen2_5_VLConfig(
        text_config=dict(
            vocab_size=(n_tokens // 64 + 1) * 64, hidden_size=64, intermediate_size=96, num_hidden_layers=4,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024, rms_norm_eps=1e-6,
            rope_parameters={"rope_type": "default", "rope_theta": 10_000.0, "mrope_section": [2, 3, 3]},
            bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"]),
        vision_config={**dict(
            depth=4, hidden_size=32, intermediate_size=64, num_heads=4, in_channels=3, patch_size=14,
            spatial_merge_size=2, temporal_patch_size=2, window_size=56, fullatt_block_indexes=[1, 2],
            out_hidden_size=64), **(vision or {})},
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=tied, architectures=["Qwen2_5_VLForConditionalGeneration"])
    torch.manual_seed(seed)
    model = random_weights(Qwen2_5_VLForConditionalGeneration(config).eval())
    model.save_pretrained(out_dir, safe_serialization=True)

    (out_dir / "tokenizer.json").write_text(json.dumps(tj, ensure_ascii=False), encoding="utf-8")
    (out_dir / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "Qwen2Tokenizer", "bos_token": None, "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>", "unk_token": None, "errors": "replace", "model_max_length": 1024,
        "split_special_tokens": False, "chat_template": CHAT_TEMPLATE}), encoding="utf-8")
    return model


if __name__ == "__main__":
    make_tiny_hf_qwen25vl(sys.argv[1])
    print(sys.argv[1])
