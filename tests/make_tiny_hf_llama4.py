"""Build a tiny random Hugging Face Llama4ForConditionalGeneration checkpoint (needs torch +
transformers).

Every mechanism is on. Text: 4 layers of width 64, GQA (4 heads, 2 KV heads, head_dim 16);
interleave_moe_layer_step 2, so layers 0 and 2 are dense (intermediate_size_mlp 64) and 1 and 3
MoE (4 experts of width 32, top-1, sigmoid router, a shared expert); attention_chunk_size 8;
no_rope_layer_interval 4, so layer 3 is a NoPE global layer; temperature tuning with floor_scale
8 (the NoPE layer's queries are scaled from position 7 on); L2 q/k norm on the RoPE layers; llama3
rope scaling with original_max_position_embeddings 32, so the 8 frequencies fall in all three
bands (high: kept, middle: smoothed, low: divided by the factor); an untied lm_head.
Vision: 56x56 tiles of 14x14 patches (4x4 patches + a class token), width 32, 2 layers, 4 heads,
rope theta 1000 (not the default, so the key is checked), pixel shuffle 0.5 (4 tokens per tile).
HF's pixel-shuffle MLP takes the shuffled patches (hidden / ratio^2 = 128 wide) through fc1,
whose input width is the config's intermediate_size, so intermediate_size must be 128 here;
projector_input_dim = projector_output_dim = vision_output_dim = 48 (fc2 is square), not the
text width, so that a transposed projector shows up in its shape.

The tokenizer is a hand-made byte-level BPE in Llama 4's format (its Split regex, ByteLevel,
TemplateProcessing adding <|begin_of_text|>), merges learned from a small corpus, Llama 4's
special tokens after the regular ones in Llama 4's order (a subset of the reserved ones).

    python tests/make_tiny_hf_llama4.py OUT_DIR
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from make_tiny_hf_qwen25vl import CORPUS, byte_chars, learn_merges

# Llama 4's pre-tokenizer regex, as in its tokenizer.json (o200k's)
LLAMA4_SPLIT = (r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+"
                r"(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
                r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*"
                r"(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
                r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")
SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>",
            "<|header_start|>", "<|header_end|>", "<|eom|>", "<|eot|>", "<|step|>",
            *(f"<|text_post_train_reserved_special_token_{i}|>" for i in range(6)),
            "<|python_start|>", "<|python_end|>", "<|finetune_right_pad|>",
            "<|image_start|>", "<|image_end|>", "<|vision_reserved_special_token_0|>",
            "<|vision_reserved_special_token_1|>", "<|tile_x_separator|>", "<|tile_y_separator|>",
            *(f"<|vision_reserved_special_token_{i}|>" for i in range(2, 6)),
            "<|image|>", "<|vision_reserved_special_token_6|>", "<|patch|>"]
N_MERGES = 400
# Llama 4's template, shortened to the parts without tools
CHAT_TEMPLATE = (
    "{{- bos_token }}{%- for message in messages %}"
    "{{- '<|header_start|>' + message['role'] + '<|header_end|>\n\n' }}"
    "{%- if message['content'] is string %}{{- message['content'] }}{%- else %}"
    "{%- for content in message['content'] %}{%- if content['type'] == 'image' %}{{- '<|image|>' }}"
    "{%- elif content['type'] == 'text' %}{{- content['text'] }}{%- endif %}{%- endfor %}{%- endif %}"
    "{{- '<|eot|>' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|header_start|>assistant<|header_end|>\n\n' }}{%- endif %}")
TILE, PATCH = 56, 14


def tiny_tokenizer_json() -> dict:
    new_tokens, merges = learn_merges(CORPUS, N_MERGES, LLAMA4_SPLIT)
    vocab = {t: i for i, t in enumerate([*byte_chars().values(), *new_tokens])}
    added = [{"id": len(vocab) + i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for i, t in enumerate(SPECIALS)]
    bos = {"id": "<|begin_of_text|>", "ids": [len(vocab)], "tokens": ["<|begin_of_text|>"]}
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}
    template = {"type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                           {"Sequence": {"id": "A", "type_id": 0}}],
                "pair": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                         {"Sequence": {"id": "A", "type_id": 0}},
                         {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 1}},
                         {"Sequence": {"id": "B", "type_id": 1}}],
                "special_tokens": {"<|begin_of_text|>": bos}}
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": LLAMA4_SPLIT}, "behavior": "Isolated", "invert": False},
            byte_level]},
        "post_processor": {"type": "Sequence", "processors": [
            {**byte_level, "trim_offsets": False}, template]},
        "decoder": byte_level,
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": [[a, b] for a, b in merges]},
    }


def tiny_config(ids: dict[str, int], n_tokens: int, *, tied: bool = False, vision: dict | None = None,
                text: dict | None = None) -> dict:
    """Llama4Config keyword arguments for the tiny model; vision, text: vision_config / text_config
    fields to change."""
    return dict(
        text_config={**dict(
            vocab_size=(n_tokens // 64 + 1) * 64, hidden_size=64, intermediate_size=32, intermediate_size_mlp=64,
            num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
            num_local_experts=4, num_experts_per_tok=1, interleave_moe_layer_step=2,
            max_position_embeddings=1024, rms_norm_eps=1e-5, attention_chunk_size=8, no_rope_layer_interval=4,
            attn_temperature_tuning=True, floor_scale=8, attn_scale=0.5, use_qk_norm=True,
            rope_parameters={"rope_type": "llama3", "rope_theta": 10_000.0, "factor": 8.0, "low_freq_factor": 1.0,
                             "high_freq_factor": 4.0, "original_max_position_embeddings": 32},
            bos_token_id=ids["<|begin_of_text|>"],
            eos_token_id=[ids["<|end_of_text|>"], ids["<|eom|>"], ids["<|eot|>"]],
            pad_token_id=ids["<|finetune_right_pad|>"], tie_word_embeddings=tied), **(text or {})},
        vision_config={**dict(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, image_size=TILE,
            patch_size=PATCH, num_channels=3, norm_eps=1e-5, pixel_shuffle_ratio=0.5, projector_input_dim=48,
            projector_output_dim=48, vision_output_dim=48, hidden_act="gelu",
            rope_parameters={"rope_type": "default", "rope_theta": 1000.0}), **(vision or {})},
        boi_token_index=ids["<|image_start|>"], eoi_token_index=ids["<|image_end|>"],
        image_token_index=ids["<|patch|>"], tie_word_embeddings=tied,
        architectures=["Llama4ForConditionalGeneration"])


def _init(model) -> None:
    """Random, non-trivial values everywhere: norms around 1 (not 1), biases and the class and
    position embeddings around 0, matrices scaled by their fan-in."""
    import torch
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1 and "norm" in name and name.endswith(".weight"):
                p.copy_(1.0 + 0.3 * torch.randn_like(p))
            elif p.ndim == 1 or "positional_embedding" in name:
                p.copy_(0.2 * torch.randn_like(p))
            elif "embed_tokens" in name:
                p.copy_(0.5 * torch.randn_like(p))
            elif "experts." in name:                  # [experts, in, out]: x @ w
                p.copy_(torch.randn_like(p) / p.shape[1] ** 0.5)
            else:                                     # nn.Linear [out, in]
                p.copy_(torch.randn_like(p) / p.shape[-1] ** 0.5)


def make_tiny_hf_llama4(out_dir, seed: int = 0, *, tied: bool = False, vision: dict | None = None,
                        text: dict | None = None):
    """Write the checkpoint to out_dir; returns the (float32, eval-mode) HF model. vision:
    vision_config fields to change (tests/make_llamacpp_fixtures.py: 3 layers, the fewest for
    which llama.cpp's converter maps the adapter's fc2, since its name table numbers it as a block);
    text: text_config fields to change."""
    import torch
    from transformers import Llama4Config, Llama4ForConditionalGeneration

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tj = tiny_tokenizer_json()
    ids = {t["content"]: t["id"] for t in tj["added_tokens"]}
    config = Llama4Config(**tiny_config(ids, len(tj["model"]["vocab"]) + len(tj["added_tokens"]), tied=tied,
                                         vision=vision, text=text))
    torch.manual_seed(seed)
    model = Llama4ForConditionalGeneration(config).eval()
    _init(model)
    model.save_pretrained(out_dir, safe_serialization=True)

    (out_dir / "tokenizer.json").write_text(json.dumps(tj, ensure_ascii=False), encoding="utf-8")
    (out_dir / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<|begin_of_text|>", "eos_token": "<|eot|>",
        "pad_token": "<|finetune_right_pad|>", "model_max_length": 1024, "chat_template": CHAT_TEMPLATE}),
        encoding="utf-8")
    (out_dir / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "Llama4ImageProcessorFast", "size": {"height": TILE, "width": TILE},
        "max_patches": 4, "resize_to_max_canvas": False, "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5], "do_normalize": True, "do_rescale": True, "rescale_factor": 1 / 255}),
        encoding="utf-8")
    return model


def hf_logits(model, input_ids, pixel_values):
    """Llama4ForConditionalGeneration.forward's steps (image features, projector, scatter into
    the image tokens, language model): transformers 5.24's forward itself fails at its return
    (`outputs.image_outputs` of a MoeCausalLMOutputWithPast) once everything is computed."""
    import torch
    with torch.no_grad():
        embeds = model.get_input_embeddings()(input_ids)
        feats = model.get_image_features(pixel_values=pixel_values, return_dict=True).last_hidden_state
        image = model.multi_modal_projector(feats.reshape(-1, feats.shape[-1]))
        embeds = embeds.masked_scatter((input_ids == model.config.image_token_id).unsqueeze(-1), image)
        return model.language_model(inputs_embeds=embeds).logits


if __name__ == "__main__":
    make_tiny_hf_llama4(sys.argv[1])
    print(sys.argv[1])
