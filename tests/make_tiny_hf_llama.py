"""Build tiny random Hugging Face checkpoints of the dense Llama-style decoder families (needs
torch + transformers): Llama 3 (LlamaForCausalLM), Mistral (MistralForCausalLM), Qwen2, Qwen3 and
Granite. Every structural feature of each is on:

  llama          llama3 rope scaling that bites (original_max_position_embeddings 16, prompts past
                 it; every rotated pair divided), untied head, GQA (4 heads, 2 KV heads)
  llama_tied     tied head (Llama 3.2 1B / 3B), q/k/v/o and MLP biases (attention_bias, mlp_bias)
  llama_mistral  a sliding window (8) shorter than the prompts, head_dim 24 != hidden / heads (Nemo's
                 128 vs 160), the tekken pre-tokenizer; `window=None` drops the window
  qwen2          q/k/v biases, tied head, NeoX rope
  qwen3          per-head QK RMSNorm, head_dim 24 != hidden / heads, untied head
  granite        embedding, residual and attention multipliers, logits scaling

All weights, norms included, are random and non-trivial. Tokenizers are hand-made byte-level BPEs
in each family's format (its pre-tokenizer regex, its special tokens), merges learned from a
small corpus; each carries its family's released chat template (make_tiny_hf_llama_templates.py).

    python tests/make_tiny_hf_llama.py FAMILY OUT_DIR
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import make_tiny_hf_llama_templates as templates  # noqa: E402
from make_tiny_hf_qwen25vl import QWEN2_SPLIT, byte_chars, learn_merges, random_weights  # noqa: E402

LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
TEKKEN_SPLIT = (r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+"
                r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}"
                r"| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")
GPT2_SPLIT = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
CORPUS = """You are a helpful assistant. The user asks the assistant a question and the assistant
answers. Hello world! Hello there, tiny model. What is the capital of France? Paris is the capital.
The window slides over the tokens; the rope rotates the queries and the keys of every head.
Tell me a story about a cat and a dog in the garden. Knowledge cutoff, today date, system, user.
def hello(world): return world + 1  # the tiny test model 2024 12345
"""
N_MERGES = 300

LLAMA3_SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
                   "<|reserved_special_token_1|>", "<|finetune_right_pad_id|>", "<|reserved_special_token_2|>",
                   "<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>", "<|eot_id|>", "<|python_tag|>"]
TEKKEN_SPECIALS = ["<unk>", "<s>", "</s>", "[INST]", "[/INST]", "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]",
                   "[TOOL_RESULTS]", "[/TOOL_RESULTS]", "[TOOL_CALLS]"]
QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>"]
QWEN3_ADDED = ["<tool_call>", "</tool_call>", "<think>", "</think>"]   # non-special added tokens
GRANITE_SPECIALS = ["<|end_of_text|>", "<fim_prefix>", "<fim_middle>", "<fim_suffix>", "<fim_pad>",
                    "<|start_of_role|>", "<|end_of_role|>", "<|tool_call|>"]


def tokenizer_json(splits: list[dict], specials: list[str], *, first: bool, bos: str | None = None,
                   added: tuple[str, ...] = (), regex: str = GPT2_SPLIT) -> dict:
    """A byte-level BPE tokenizer.json: pre-tokenizers `splits` then ByteLevel; the special
    tokens before the regular ones (first) or after; `bos` prepended by the post-processor."""
    new_tokens, merges = learn_merges(CORPUS, N_MERGES, regex)
    regular = [*byte_chars().values(), *new_tokens]
    order = [*specials, *regular] if first else [*regular, *specials]
    ids = {t: i for i, t in enumerate(order)}
    # special tokens ahead of the regular ones are in the model's vocabulary too, as in Mistral's
    # and Granite's files (`tokenizers` renumbers added tokens the model does not hold)
    vocab = {t: ids[t] for t in (order if first else regular)}
    added_tokens = [{"id": ids[t], "content": t, "single_word": False, "lstrip": False, "rstrip": False,
                     "normalized": False, "special": True} for t in specials]
    added_tokens += [{"id": len(order) + i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
                      "normalized": False, "special": False} for i, t in enumerate(added)]
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}
    post = byte_level
    if bos is not None:
        post = {"type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                "pair": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                         {"SpecialToken": {"id": bos, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
                "special_tokens": {bos: {"id": bos, "ids": [ids[bos]], "tokens": [bos]}}}
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added_tokens, "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [*splits, byte_level]},
        "post_processor": post, "decoder": byte_level,
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": [f"{a} {b}" for a, b in merges]},
    }


def _split(regex: str) -> dict:
    return {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": False}


_DIGITS = {"type": "Digits", "individual_digits": True}
_GPT2_BYTES = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}


def family(name: str, window: int | None = 8) -> dict:
    """What one family's checkpoint holds: HF class, config fields, tokenizer, tokenizer_config."""
    base = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=3, num_attention_heads=4,
                num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-5)
    if name in ("llama", "llama_tied"):
        tj = tokenizer_json([_split(LLAMA3_SPLIT)], LLAMA3_SPECIALS, first=False, bos="<|begin_of_text|>",
                            regex=LLAMA3_SPLIT)
        rope = {"rope_type": "llama3", "rope_theta": 10_000.0, "factor": 4.0, "low_freq_factor": 1.0,
                "high_freq_factor": 4.0, "original_max_position_embeddings": 16}
        extra = (dict(tie_word_embeddings=True, attention_bias=True, mlp_bias=True,
                      rope_parameters={"rope_type": "default", "rope_theta": 500_000.0})
                 if name == "llama_tied" else dict(tie_word_embeddings=False, rope_parameters=rope))
        return dict(cls="LlamaForCausalLM", config={**base, **extra}, tj=tj, template=templates.LLAMA31,
                    bos="<|begin_of_text|>", eos="<|eot_id|>", eos_ids=["<|end_of_text|>", "<|eom_id|>", "<|eot_id|>"])
    if name == "llama_mistral":
        tj = tokenizer_json([_split(TEKKEN_SPLIT)], TEKKEN_SPECIALS, first=True, bos="<s>", regex=TEKKEN_SPLIT)
        return dict(cls="MistralForCausalLM", config={**base, "head_dim": 24, "sliding_window": window,
                                                      "tie_word_embeddings": False,
                                                      "rope_parameters": {"rope_type": "default", "rope_theta": 1e6}},
                    tj=tj, template=templates.MISTRAL_NEMO, bos="<s>", eos="</s>", eos_ids=["</s>"], unk="<unk>")
    if name in ("qwen2", "qwen3"):
        tj = tokenizer_json([_split(QWEN2_SPLIT)], QWEN_SPECIALS, first=False,
                            added=QWEN3_ADDED if name == "qwen3" else (), regex=QWEN2_SPLIT)
        rope = {"rope_type": "default", "rope_theta": 1_000_000.0}
        cfg = ({**base, "tie_word_embeddings": True, "rope_parameters": rope} if name == "qwen2" else
               {**base, "head_dim": 24, "tie_word_embeddings": False, "rope_parameters": rope})
        return dict(cls="Qwen2ForCausalLM" if name == "qwen2" else "Qwen3ForCausalLM", config=cfg, tj=tj,
                    template=templates.QWEN25 if name == "qwen2" else templates.QWEN3, bos=None, eos="<|im_end|>",
                    eos_ids=["<|im_end|>", "<|endoftext|>"], pad="<|endoftext|>")
    if name == "granite":
        tj = tokenizer_json([_DIGITS], GRANITE_SPECIALS, first=True)
        tj["pre_tokenizer"]["pretokenizers"][-1] = _GPT2_BYTES
        cfg = {**base, "tie_word_embeddings": True, "embedding_multiplier": 12.0, "residual_multiplier": 0.22,
               "attention_multiplier": 0.0625, "logits_scaling": 4.0,
               "rope_parameters": {"rope_type": "default", "rope_theta": 10_000.0}}
        return dict(cls="GraniteForCausalLM", config=cfg, tj=tj, template=templates.GRANITE33, bos=None,
                    eos="<|end_of_text|>", eos_ids=["<|end_of_text|>"], pad="<|end_of_text|>")
    raise ValueError(f"unknown family {name!r}")


def make_tiny_hf(name: str, out_dir, seed: int = 0, window: int | None = 8):
    """Write the checkpoint of family `name` to out_dir; returns the (float32, eval-mode) HF model."""
    import torch
    import transformers

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    f = family(name, window)
    tj = f["tj"]
    ids = {t["content"]: t["id"] for t in tj["added_tokens"]}
    n_tokens = max(*tj["model"]["vocab"].values(), *(t["id"] for t in tj["added_tokens"])) + 1
    cls = getattr(transformers, f["cls"])
    config = cls.config_class(
        vocab_size=n_tokens, bos_token_id=ids.get(f["bos"]), eos_token_id=[ids[t] for t in f["eos_ids"]],
        pad_token_id=ids.get(f.get("pad")), architectures=[f["cls"]], **f["config"])
    torch.manual_seed(seed)
    model = random_weights(cls(config).eval())
    model.save_pretrained(out_dir, safe_serialization=True)
    (out_dir / "tokenizer.json").write_text(json.dumps(tj, ensure_ascii=False), encoding="utf-8")
    tcfg = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": f["bos"], "eos_token": f["eos"],
            "pad_token": f.get("pad"), "unk_token": f.get("unk"), "model_max_length": 256,
            "add_bos_token": f["bos"] is not None, "chat_template": f["template"]}
    (out_dir / "tokenizer_config.json").write_text(json.dumps(tcfg, ensure_ascii=False), encoding="utf-8")
    return model


if __name__ == "__main__":
    make_tiny_hf(sys.argv[1], sys.argv[2])
    print(sys.argv[2])
