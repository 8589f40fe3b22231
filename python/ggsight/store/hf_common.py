"""What every Hugging Face checkpoint converter reads the same way: JSON files, the special
token ids of tokenizer_config.json / special_tokens_map.json / config.json, the chat template."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class ConvertError(ValueError):
    """A checkpoint that cannot be converted; the message names the file."""


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ConvertError(f"{path}: cannot read ({e})") from None


def read_optional_json(path: Path) -> dict:
    return read_json(path) if path.is_file() else {}


def token_str(v: Any) -> str | None:
    """A token given as a string or as an AddedToken dict {"content": ...}."""
    return v.get("content") if isinstance(v, dict) else v


def special_token_ids(hf_dir: Path, config: dict, to_id: dict[str, int], n_tokens: int,
                      kinds=("bos", "eos", "unk", "pad")) -> dict[str, int]:
    """kind -> id for the special tokens the checkpoint names: the token text of
    tokenizer_config.json (or special_tokens_map.json) first, then `<kind>_token_id` of
    config.json or its text_config (the first one when it is a list). Kinds with neither are left out."""
    tcfg = read_optional_json(hf_dir / "tokenizer_config.json")
    smap = read_optional_json(hf_dir / "special_tokens_map.json")
    text_cfg = config.get("text_config") or {}
    out = {}
    for kind in kinds:
        tok = token_str(tcfg.get(f"{kind}_token")) or token_str(smap.get(f"{kind}_token"))
        if tok is not None and tok in to_id:
            out[kind] = to_id[tok]
            continue
        v = config.get(f"{kind}_token_id", text_cfg.get(f"{kind}_token_id"))
        v = v[0] if isinstance(v, list) and v else v
        if isinstance(v, int) and 0 <= v < n_tokens:
            out[kind] = int(v)
    return out


def chat_template(hf_dir: Path) -> str | None:
    """tokenizer_config.json's chat_template, else chat_template.jinja, else chat_template.json
    (where processors of multimodal checkpoints keep it)."""
    template = read_optional_json(hf_dir / "tokenizer_config.json").get("chat_template")
    if template is None and (hf_dir / "chat_template.jinja").is_file():
        template = (hf_dir / "chat_template.jinja").read_text(encoding="utf-8")
    if template is None and (hf_dir / "chat_template.json").is_file():
        template = read_json(hf_dir / "chat_template.json").get("chat_template")
    return template or None


def write_decoder_shape(w, hp) -> None:
    """The llama.cpp keys every decoder GGUF has, from hparams with these attribute names."""
    w.add_context_length(hp.n_ctx)
    w.add_embedding_length(hp.n_embd)
    w.add_block_count(hp.n_layer)
    w.add_feed_forward_length(hp.n_ff)
    w.add_head_count(hp.n_head)
    w.add_head_count_kv(hp.n_head_kv)
    w.add_layer_norm_rms_eps(hp.norm_eps)
    w.add_rope_freq_base(hp.rope_base)
