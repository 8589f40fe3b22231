"""Conformance fixtures for Gemma 3 (text + vision), recorded from transformers.

A tiny random Gemma3ForConditionalGeneration with every structural feature on: 5 sliding-window
layers + 1 global (window 8, shorter than every prompt), GQA, QK-norm, non-zero sandwich norms,
query_pre_attn_scalar != head_dim, linear rope scaling on the global layer, a final logit softcap,
a SigLIP tower at 56 px fed images of other sizes. It is converted with `ggsight convert`
(f32), and for each case HF's own Gemma3Processor writes the token ids and pixels, the model
its float32 logits at every position and its greedy 16 tokens:

  text_longer_than_window      text only, 24 tokens against a window of 8
  one_image_non_native         one 90x60 image (resized to 56x56)
  two_images_different_sizes   a 90x60 and a 40x70 image in one prompt

    python tests/make_conformance_gemma3.py [OUT_DIR]     (default: tests/data/conformance/gemma3)

Needs torch + transformers; tests/test_conformance.py reads the result without them.
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from conformance_record import convert, record_cases  # noqa: E402

DEFAULT_OUT = HERE / "data" / "conformance" / "gemma3"
IMAGE_SPECIALS = {"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>", "image_token": "<image_soft_token>"}
# (name, prompt, images as (width, height, seed)); "<start_of_image>" marks where an image goes
CASES = [
    ("text_longer_than_window",
     "hello world the tiny model and the window attention test of logits in the gemma world model "
     "and hello tiny test", []),
    ("one_image_non_native", "hello<start_of_image> the tiny model", [(90, 60, 0)]),
    ("two_images_different_sizes", "hello<start_of_image> and the<start_of_image> world model",
     [(90, 60, 1), (40, 70, 2)]),
]


def _tokenizer_json() -> dict:
    from make_tiny_hf_gemma3 import tiny_tokenizer_json
    tj = tiny_tokenizer_json()
    vocab = tj["model"]["vocab"]
    for t in IMAGE_SPECIALS.values():
        vocab[t] = len(vocab)
        tj["added_tokens"].append({"id": vocab[t], "content": t, "single_word": False, "lstrip": False,
                                   "rstrip": False, "normalized": False, "special": True})
    return tj


def build_hf(hf_dir: Path, text: dict | None = None):
    """Save the tiny checkpoint + tokenizer to hf_dir; return (model, processor). text:
    text_config fields to change (tests/make_llamacpp_fixtures.py: query_pre_attn_scalar =
    head_dim, the only value llama.cpp's Gemma 3 files can express)."""
    import torch
    import transformers
    from make_tiny_hf_gemma3 import CHAT_TEMPLATE
    tj = _tokenizer_json()
    vocab = tj["model"]["vocab"]
    rope = {"sliding_attention": {"rope_type": "default", "rope_theta": 10_000.0},
            "full_attention": {"rope_type": "linear", "factor": 2.0, "rope_theta": 1_000_000.0}}
    cfg = transformers.Gemma3Config(
        text_config={**dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=6,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=8, sliding_window=8,
                         sliding_window_pattern=6, query_pre_attn_scalar=12, rms_norm_eps=1e-6,
                         final_logit_softcapping=30.0, rope_parameters=rope, max_position_embeddings=512),
                     **(text or {})},
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                           image_size=56, patch_size=7),   # 8 x 8 patches, pooled to 4 x 4 = 16 tokens
        mm_tokens_per_image=16, boi_token_index=vocab["<start_of_image>"],
        eoi_token_index=vocab["<end_of_image>"], image_token_index=vocab["<image_soft_token>"],
        bos_token_id=2, eos_token_id=1, pad_token_id=0)
    cfg.text_config._attn_implementation = "eager"
    torch.manual_seed(0)
    model = transformers.Gemma3ForConditionalGeneration(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(0.3 * torch.randn_like(p))          # (1 + w) around 1, not exactly 1
            elif "embed_tokens" in name:
                p.copy_(0.1 * torch.randn_like(p))
            else:
                p.copy_(torch.randn_like(p) / p.shape[-1] ** 0.5)
        model.model.language_model.norm.weight.add_(5.0)  # logits ~10-30, where the softcap bends them
    hf_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(hf_dir, safe_serialization=True)
    (hf_dir / "tokenizer.json").write_text(json.dumps(tj, ensure_ascii=False), encoding="utf-8")
    (hf_dir / "tokenizer_config.json").write_text(json.dumps({
        "bos_token": "<bos>", "eos_token": "<eos>", "unk_token": "<unk>", "pad_token": "<pad>",
        "add_bos_token": True, "chat_template": CHAT_TEMPLATE}), encoding="utf-8")
    tok = transformers.PreTrainedTokenizerFast(
        tokenizer_file=str(hf_dir / "tokenizer.json"), bos_token="<bos>", eos_token="<eos>", unk_token="<unk>",
        pad_token="<pad>", extra_special_tokens=IMAGE_SPECIALS)
    images = transformers.Gemma3ImageProcessorPil(size={"height": 56, "width": 56}, image_mean=[0.5] * 3,
                                                 image_std=[0.5] * 3)
    return model, transformers.Gemma3Processor(image_processor=images, tokenizer=tok, image_seq_length=16)


def record(out: Path) -> Path:
    """Build, convert and record every case into `out`; returns it."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        model, processor = build_hf(Path(tmp) / "hf")
        convert(Path(tmp) / "hf", out)

    def hf_inputs(prompt, images):
        inputs = processor(text=prompt, images=images or None, return_tensors="pt")
        extra = {} if not images else {"pixel_values": inputs["pixel_values"], "token_type_ids": inputs["token_type_ids"]}
        return inputs["input_ids"], extra, {}
    return record_cases(out, model, CASES, hf_inputs, "<start_of_image>")


if __name__ == "__main__":
    print(record(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT))
