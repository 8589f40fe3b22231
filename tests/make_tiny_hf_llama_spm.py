"""A tiny random Llama 2 style checkpoint (needs torch + transformers + sentencepiece):
LlamaForCausalLM with a SentencePiece `tokenizer.model` and no tokenizer.json, as
meta-llama/Llama-2-7b-chat-hf and Mistral 7B v0.1 ship it for llama.cpp ("llama" vocabulary).

The SentencePiece model is trained here by sentencepiece's own trainer on a small text with
Llama 2's trainer settings (BPE, byte fallback, digits split, whitespace kept as is, a dummy
prefix, <unk> <s> </s> at 0 1 2, no pad), so that characters outside the text ("€", emoji)
become <0xXX> byte tokens. The decoder is make_tiny_hf_llama.py's shape (GQA 4 / 2 heads,
untied head, plain rope at theta 10000), every weight random and non-trivial; the chat
template is Llama 2 chat's (make_tiny_hf_llama_templates.LLAMA2).

    python tests/make_tiny_hf_llama_spm.py OUT_DIR
"""
from __future__ import annotations

import io
import json
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import make_tiny_hf_llama_templates as templates  # noqa: E402
from make_tiny_hf_llama import CORPUS  # noqa: E402
from make_tiny_hf_qwen25vl import random_weights  # noqa: E402

# the unicode the vocabulary holds (so that merged non-ASCII pieces are tested too)
TEXT = (CORPUS + "Café naïve façade, déjà vu. Grüße aus Köln. Ελληνικά και русский.\n"
        "[INST] <<SYS>>\nsystem prompt\n<</SYS>>\n\n[/INST] answer </s>\n")
N_VOCAB = 500


def sentencepiece_model() -> bytes:
    """The serialized SentencePiece model, trained deterministically (one thread)."""
    import sentencepiece as spm
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(TEXT.splitlines() * 4), model_writer=buf, vocab_size=N_VOCAB, model_type="bpe",
        byte_fallback=True, split_digits=True, allow_whitespace_only_pieces=True, remove_extra_whitespaces=False,
        normalization_rule_name="identity", add_dummy_prefix=True, character_coverage=1.0,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, num_threads=1, minloglevel=2)
    return buf.getvalue()


def make_tiny_hf_llama_spm(out_dir, seed: int = 0):
    """Write the checkpoint to out_dir; returns the (float32, eval-mode) HF model."""
    import torch
    import transformers

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config = transformers.LlamaConfig(
        vocab_size=N_VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=3, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-5, tie_word_embeddings=False,
        rope_parameters={"rope_type": "default", "rope_theta": 10_000.0}, bos_token_id=1, eos_token_id=2,
        pad_token_id=None, architectures=["LlamaForCausalLM"])
    torch.manual_seed(seed)
    model = random_weights(transformers.LlamaForCausalLM(config).eval())
    model.save_pretrained(out_dir, safe_serialization=True)
    (out_dir / "tokenizer.model").write_bytes(sentencepiece_model())
    # Llama 2's tokenizer_config.json (its added_tokens_decoder aside) with Mistral-7B-v0.1's
    # legacy=True: "▁" before the text after each special token, as SentencePiece itself, Meta's
    # reference chat code and llama.cpp tokenize "<s>[INST]" (legacy=False drops that "▁",
    # which no GGUF key can say)
    tcfg = {"tokenizer_class": "LlamaTokenizer", "add_bos_token": True, "add_eos_token": False,
            "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": None,
            "clean_up_tokenization_spaces": False, "legacy": True, "model_max_length": 256,
            "padding_side": "right", "sp_model_kwargs": {}, "chat_template": templates.LLAMA2}
    (out_dir / "tokenizer_config.json").write_text(json.dumps(tcfg, ensure_ascii=False), encoding="utf-8")
    return model


if __name__ == "__main__":
    make_tiny_hf_llama_spm(sys.argv[1])
    print(sys.argv[1])
