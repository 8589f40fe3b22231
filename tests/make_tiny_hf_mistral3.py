"""Build a tiny random Hugging Face Mistral3ForConditionalGeneration checkpoint (Mistral Small
3.1's layout; needs torch + transformers).

Every structural feature is on. Text (MistralModel): 4 layers of width 64, GQA (4 heads, 2 KV
heads, head_dim 16), rope theta 1e6, an untied lm_head. Vision (PixtralVisionModel): patch 14,
width 32, 2 heads of 16 (so the 2D rope's row and column quarters each hold 2 pairs), 3 layers,
SiLU-gated MLP, RMSNorms, rope theta 10000; longest_edge = image_size = 168 px, so an image up
to 6x6 tokens after the 2x2 patch merger; the projector's RMSNorm -> merger -> linear_1 -> GELU
-> linear_2. All weights, norms included, are random and non-trivial.

The tokenizer is a hand-made byte-level BPE in the format of Mistral Small 3.1's tokenizer.json
(tekken's Split regex, ByteLevel, TemplateProcessing adding <s>), its merges learned from a small
corpus, Mistral's control tokens first (ids 0-19, [IMG] = 10 as image_token_index says, then
[IMG_BREAK] = 12, [IMG_END] = 13), the vocabulary padded to a multiple of 64 rows.

    python tests/make_tiny_hf_mistral3.py OUT_DIR
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from make_tiny_hf_qwen25vl import CORPUS, byte_chars, learn_merges, random_weights

# tekken's pre-tokenizer regex, as in Mistral Small 3.1's tokenizer.json
TEKKEN_SPLIT = (r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+"
                r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*"
                r"|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")
# Mistral's control tokens in their order (ids 0..19)
SPECIALS = ["<unk>", "<s>", "</s>", "[INST]", "[/INST]", "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]",
            "[TOOL_RESULTS]", "[/TOOL_RESULTS]", "[TOOL_CALLS]", "[IMG]", "<pad>", "[IMG_BREAK]", "[IMG_END]",
            "[PREFIX]", "[MIDDLE]", "[SUFFIX]", "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]", "[TOOL_CONTENT]"]
N_MERGES = 400
PATCH, LONGEST_EDGE = 14, 168
# Mistral Small 3.1's template in its structure (a default system prompt when the conversation
# has none, [SYSTEM_PROMPT] first, [INST] ... [/INST] user turns with [IMG] for image blocks,
# assistant turns ended by </s>), its default system prompt shortened
CHAT_TEMPLATE = (
    "{%- set default_system_message = 'You are a tiny test model.' %}"
    "{{- bos_token }}"
    "{%- if messages[0]['role'] == 'system' %}"
    "{%- if messages[0]['content'] is string %}{%- set system_message = messages[0]['content'] %}"
    "{%- else %}{%- set system_message = messages[0]['content'][0]['text'] %}{%- endif %}"
    "{%- set loop_messages = messages[1:] %}"
    "{%- else %}{%- set system_message = default_system_message %}{%- set loop_messages = messages %}{%- endif %}"
    "{{- '[SYSTEM_PROMPT]' + system_message + '[/SYSTEM_PROMPT]' }}"
    "{%- for message in loop_messages %}"
    "{%- if message['role'] == 'user' %}"
    "{%- if message['content'] is string %}{{- '[INST]' + message['content'] + '[/INST]' }}"
    "{%- else %}{{- '[INST]' }}{%- for block in message['content'] %}"
    "{%- if block['type'] == 'text' %}{{- block['text'] }}"
    "{%- elif block['type'] in ['image', 'image_url'] %}{{- '[IMG]' }}"
    "{%- else %}{{- raise_exception('Only text and image blocks are supported in message content!') }}"
    "{%- endif %}{%- endfor %}{{- '[/INST]' }}{%- endif %}"
    "{%- elif message['role'] == 'system' %}{{- '[SYSTEM_PROMPT]' + message['content'] + '[/SYSTEM_PROMPT]' }}"
    "{%- elif message['role'] == 'assistant' %}"
    "{%- if message['content'] is string %}{{- message['content'] + eos_token }}"
    "{%- else %}{{- message['content'][0]['text'] + eos_token }}{%- endif %}"
    "{%- else %}{{- raise_exception('Only user, system and assistant roles are supported!') }}{%- endif %}"
    "{%- endfor %}")


def tiny_tokenizer_json() -> dict:
    new_tokens, merges = learn_merges(CORPUS, N_MERGES, TEKKEN_SPLIT)
    n_special = len(SPECIALS)
    vocab = {t: i for i, t in enumerate([*SPECIALS, *byte_chars().values(), *new_tokens])}
    added = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for i, t in enumerate(SPECIALS)]
    assert all(vocab[t] < n_special for t in SPECIALS)
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}
    bos = {"id": "<s>", "ids": [1], "tokens": ["<s>"]}
    template = {"type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                         {"SpecialToken": {"id": "<s>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
                "special_tokens": {"<s>": bos}}
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": TEKKEN_SPLIT}, "behavior": "Isolated", "invert": False},
            byte_level]},
        "post_processor": {"type": "Sequence", "processors": [{**byte_level, "trim_offsets": False}, template]},
        "decoder": byte_level,
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": False, "ignore_merges": True,
                  "vocab": vocab, "merges": [[a, b] for a, b in merges]},
    }


def make_tiny_hf_mistral3(out_dir, seed: int = 0, *, text: dict | None = None, vision: dict | None = None):
    """Write the checkpoint (+ tokenizer, preprocessor and processor configs) to out_dir;
    returns the (float32, eval-mode) HF model. text / vision: config fields to change."""
    import torch
    from transformers import Mistral3Config, Mistral3ForConditionalGeneration

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tj = tiny_tokenizer_json()
    ids = {t["content"]: t["id"] for t in tj["added_tokens"]}
    n_tokens = len(tj["model"]["vocab"])
    config = Mistral3Config(
        text_config={**dict(
            model_type="mistral", vocab_size=(n_tokens // 64 + 1) * 64, hidden_size=64, intermediate_size=96,
            num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
            max_position_embeddings=1024, rms_norm_eps=1e-5, sliding_window=None, tie_word_embeddings=False,
            rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0},
            bos_token_id=ids["<s>"], eos_token_id=ids["</s>"], pad_token_id=ids["<pad>"]), **(text or {})},
        vision_config={**dict(
            model_type="pixtral", hidden_size=32, intermediate_size=48, num_hidden_layers=3, num_attention_heads=2,
            patch_size=PATCH, image_size=LONGEST_EDGE, hidden_act="silu",
            rope_parameters={"rope_type": "axial", "rope_theta": 10_000.0}), **(vision or {})},
        image_token_index=ids["[IMG]"], spatial_merge_size=2, projector_hidden_act="gelu",
        vision_feature_layer=-1, multimodal_projector_bias=False, tie_word_embeddings=False,
        architectures=["Mistral3ForConditionalGeneration"])
    torch.manual_seed(seed)
    model = random_weights(Mistral3ForConditionalGeneration(config).eval())
    model.save_pretrained(out_dir, safe_serialization=True)
    write_tokenizer(out_dir)
    return model


def write_tokenizer(out_dir) -> None:
    """tokenizer.json, tokenizer_config.json (with the chat template), preprocessor_config.json
    and processor_config.json of the tiny checkpoint (no torch needed)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tj = tiny_tokenizer_json()
    (out_dir / "tokenizer.json").write_text(json.dumps(tj, ensure_ascii=False), encoding="utf-8")
    (out_dir / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
        "pad_token": "<pad>", "add_bos_token": True, "add_eos_token": False, "model_max_length": 1024,
        "chat_template": CHAT_TEMPLATE}), encoding="utf-8")
    (out_dir / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "PixtralImageProcessor", "do_convert_rgb": True, "do_normalize": True,
        "do_rescale": True, "do_resize": True, "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711], "patch_size": PATCH, "resample": 3,
        "rescale_factor": 1 / 255, "size": {"longest_edge": LONGEST_EDGE}}), encoding="utf-8")
    (out_dir / "processor_config.json").write_text(json.dumps({
        "processor_class": "PixtralProcessor", "patch_size": PATCH, "spatial_merge_size": 2,
        "image_token": "[IMG]", "image_break_token": "[IMG_BREAK]", "image_end_token": "[IMG_END]"}),
        encoding="utf-8")


if __name__ == "__main__":
    make_tiny_hf_mistral3(sys.argv[1])
    print(sys.argv[1])
