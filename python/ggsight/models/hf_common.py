"""What every Hugging Face checkpoint converter reads the same way: JSON files, the special
token ids of tokenizer_config.json / special_tokens_map.json / config.json, the chat template,
a byte-level BPE tokenizer.json (Qwen, Llama 3 / 4, Granite) and a
SentencePiece-style vocabulary (Gemma, Llama 2)."""
from __future__ import annotations

import json
import re
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


def architecture(config: dict, supported, where: str, model: str) -> str:
    """The first of config.json's architectures this converter handles, or a ConvertError."""
    archs = config.get("architectures") or []
    arch = next((a for a in archs if a in supported), None)
    if arch is None:
        raise ConvertError(f"{where}: unsupported architecture {archs or config.get('model_type')!r}; "
                           f"the {model} converter handles {', '.join(supported)}")
    return arch


def write_clip_vision(w, projector: str, *, image_size: int, patch_size: int, n_embd: int, n_ff: int,
                      n_layer: int, n_head: int, eps: float, projection_dim: int, mean, std) -> None:
    """The clip.* keys every mmproj carries, in llama.cpp's names."""
    w.add_string("clip.projector_type", projector)
    w.add_bool("clip.has_vision_encoder", True)
    w.add_uint32("clip.vision.image_size", image_size)
    w.add_uint32("clip.vision.patch_size", patch_size)
    w.add_uint32("clip.vision.embedding_length", n_embd)
    w.add_uint32("clip.vision.feed_forward_length", n_ff)
    w.add_uint32("clip.vision.block_count", n_layer)
    w.add_uint32("clip.vision.attention.head_count", n_head)
    w.add_float32("clip.vision.attention.layer_norm_epsilon", eps)
    w.add_uint32("clip.vision.projection_dim", projection_dim)
    w.add_array("clip.vision.image_mean", [float(x) for x in mean])
    w.add_array("clip.vision.image_std", [float(x) for x in std])


def text_config(config: dict[str, Any]) -> dict[str, Any]:
    """The text hyperparameters: transformers 5 nests them in text_config, Hub configs written
    by transformers 4.x keep them at the top level. text_config wins where both have a key."""
    top = {k: v for k, v in config.items() if k not in ("text_config", "vision_config")}
    return {**top, **(config.get("text_config") or {})}


def square(v, where: str) -> int:
    """One side of a size given as an int or as [h, w] with h == w; ConvertError otherwise."""
    vals = {int(x) for x in v} if isinstance(v, (list, tuple)) else {int(v)}
    if len(vals) != 1:
        raise ConvertError(f"{where}: non-square size {v} is not supported")
    return vals.pop()


def require_all(want, found, where: str) -> None:
    """Refuse a checkpoint that lacks some of the vision tensors `want` names (`found`: the ones it has)."""
    missing = sorted(want.keys() - found.keys())
    if missing:
        raise ConvertError(f"{where}: missing vision tensors for {', '.join(missing[:8])}"
                           f"{' ...' if len(missing) > 8 else ''} ({len(missing)} in all)")


# ---------------------------------------------------------------- vocabulary (byte-level BPE)

class TokenType:   # llama.cpp's llama_token_type
    NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6


def _looks_special(tok: str) -> bool:
    """llama.cpp's does_token_look_special: added tokens a tokenizer.json leaves non-special
    (Qwen's <|fim_prefix|>, <|box_start|> ...) still become control tokens."""
    return (tok in ("<pad>", "<mask>", "<2mass>", "[@BOS@]")
            or (tok.startswith("<|") and tok.endswith("|>"))
            or (tok.startswith("<\uff5c") and tok.endswith("\uff5c>"))
            or (tok.startswith("<unused") and tok.endswith(">")))


def _is_byte_level(tj: dict) -> bool:
    pre = tj.get("pre_tokenizer") or {}
    return any(p.get("type") == "ByteLevel" for p in pre.get("pretokenizers", [pre]))


def bpe_vocab(path: Path, n_vocab: int) -> tuple[list[str], list[int], list[str], dict]:
    """(tokens, token types, merges as "a b", the tokenizer.json) padded to n_vocab rows with
    "[PAD<i>]" unused tokens, as llama.cpp's converter pads Qwen's 151665 tokens to 151936."""
    tj = read_json(path)
    model = tj.get("model") or {}
    if model.get("type") != "BPE" or not _is_byte_level(tj):
        raise ConvertError(f"{path}: expected a byte-level BPE tokenizer (model BPE + ByteLevel "
                           f"pre-tokenizer), got model {model.get('type')!r}")
    id_to_tok = {int(i): t for t, i in model["vocab"].items()}
    types = dict.fromkeys(id_to_tok, TokenType.NORMAL)
    for t in tj.get("added_tokens") or []:
        i, tok = int(t["id"]), t["content"]
        id_to_tok[i] = tok
        types[i] = TokenType.CONTROL if t.get("special") or _looks_special(tok) else TokenType.USER_DEFINED
    n = max(n_vocab, max(id_to_tok) + 1)
    tokens = [id_to_tok.get(i, f"[PAD{i}]") for i in range(n)]
    token_types = [types.get(i, TokenType.UNUSED) for i in range(n)]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges") or []]
    return tokens, token_types, merges, tj


def adds_bos(tj: dict, tcfg: dict) -> bool:
    """Whether encoding prepends a token: tokenizer.json's TemplateProcessing (what HF applies,
    and what llama.cpp prefers when the two disagree), else tokenizer_config.json, else no."""
    post = tj.get("post_processor") or {}
    for proc in post.get("processors", [post]):
        if proc.get("type") == "TemplateProcessing":
            single = proc.get("single") or [{}]
            return "SpecialToken" in single[0]
    return bool(tcfg.get("add_bos_token", False))


def write_bpe_tokenizer(w, hf_dir: Path, config: dict, n_vocab: int, pre: str,
                        extra_ids: dict[str, str] | None = None) -> int:
    """tokenizer.ggml.* of the byte-level BPE tokenizer.json in hf_dir (model "gpt2", the given
    pre-tokenizer name) and tokenizer.chat_template; returns the vocabulary size (n_vocab, or
    more if the tokenizer has more). extra_ids: GGUF id kind ("eom", "eot") -> token text,
    written when the vocabulary has that token."""
    tokens, types, merges, tj = bpe_vocab(hf_dir / "tokenizer.json", n_vocab)
    tcfg = read_optional_json(hf_dir / "tokenizer_config.json")
    to_id = {t: i for i, t in enumerate(tokens)}
    ids = special_token_ids(hf_dir, config, to_id, len(tokens), kinds=("bos", "eos", "pad"))

    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    for kind, add in (("bos", w.add_bos_token_id), ("eos", w.add_eos_token_id), ("pad", w.add_pad_token_id)):
        if kind in ids:
            add(ids[kind])
    for kind, tok in (extra_ids or {}).items():
        if tok in to_id:
            w.add_uint32(f"tokenizer.ggml.{kind}_token_id", to_id[tok])
    w.add_add_bos_token(adds_bos(tj, tcfg))
    w.add_add_eos_token(bool(tcfg.get("add_eos_token", False)))
    template = chat_template(hf_dir)
    if template:
        w.add_chat_template(template)
    return len(tokens)


# ------------------------------------------------------------------- vocabulary (SentencePiece)

_BYTE_RE = re.compile(r"^<0x[0-9A-Fa-f]{2}>$")


def spm_vocab_from_tokenizer_json(path: Path) -> tuple[list[str], list[float], list[int]]:
    """A SentencePiece-style vocabulary (Gemma: BPE with byte fallback) from a HF fast
    tokenizer. Scores: a BPE tokenizer.json has none, so normal tokens are ranked by the first
    merge that makes them (what SentencePiece's BPE scores order); control/user-defined -1000
    and bytes 0, as in llama.cpp's Gemma 3 GGUFs."""
    tj = read_json(path)
    model = tj.get("model") or {}
    kind = model.get("type")
    id_to_tok: dict[int, str] = {}
    scores: dict[int, float] = {}
    if kind == "Unigram":
        for i, (tok, score) in enumerate(model["vocab"]):
            id_to_tok[i], scores[i] = tok, float(score)
        unk_tok = id_to_tok.get(model.get("unk_id"))
    elif kind == "BPE":
        for tok, i in model["vocab"].items():
            id_to_tok[int(i)] = tok
        unk_tok = model.get("unk_token")
        first_merge: dict[str, int] = {}
        for rank, m in enumerate(model.get("merges") or []):
            a, b = m.split(" ", 1) if isinstance(m, str) else m
            first_merge.setdefault(a + b, rank)
        order = sorted(id_to_tok, key=lambda i: (first_merge.get(id_to_tok[i], 1 << 62), i))
        for rank, i in enumerate(order):
            scores[i] = -float(rank)
    else:
        raise ConvertError(f"{path}: tokenizer model type {kind!r} is not supported (BPE or Unigram)")
    special: dict[int, bool] = {}
    for t in tj.get("added_tokens") or []:
        id_to_tok[int(t["id"])] = t["content"]
        special[int(t["id"])] = bool(t.get("special"))
    n = max(id_to_tok) + 1
    tokens, out_scores, types = [], [], []
    for i in range(n):
        tok = id_to_tok.get(i)
        if tok is None:   # a hole in the ids: llama.cpp pads the same way
            tokens.append(f"[PAD{i}]"), out_scores.append(-1000.0), types.append(TokenType.UNUSED)
            continue
        if tok == unk_tok:
            ty = TokenType.UNKNOWN
        elif i in special:
            ty = TokenType.CONTROL if special[i] else TokenType.USER_DEFINED
        elif _BYTE_RE.match(tok):
            ty = TokenType.BYTE
        else:
            ty = TokenType.NORMAL
        score = {TokenType.NORMAL: scores.get(i, 0.0), TokenType.BYTE: 0.0}.get(ty, -1000.0)
        tokens.append(tok), out_scores.append(score), types.append(ty)
    return tokens, out_scores, types


def spm_vocab_from_model(path: Path) -> tuple[list[str], list[float], list[int]]:
    """Pieces, scores and kinds of a SentencePiece tokenizer.model."""
    try:
        from sentencepiece import sentencepiece_model_pb2
    except ImportError:
        raise ConvertError(f"{path.parent}: has tokenizer.model but no tokenizer.json; reading it "
                           f"needs the `sentencepiece` package (pip install sentencepiece)") from None
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(path.read_bytes())
    P = sentencepiece_model_pb2.ModelProto.SentencePiece
    kinds = {P.NORMAL: TokenType.NORMAL, P.UNKNOWN: TokenType.UNKNOWN, P.CONTROL: TokenType.CONTROL,
             P.USER_DEFINED: TokenType.USER_DEFINED, P.UNUSED: TokenType.UNUSED, P.BYTE: TokenType.BYTE}
    return ([p.piece for p in proto.pieces], [float(p.score) for p in proto.pieces],
            [kinds.get(p.type, TokenType.NORMAL) for p in proto.pieces])


def write_spm_tokenizer(w, hf_dir: Path, config: dict, vocab: tuple[list[str], list[float], list[int]],
                        space_prefix: bool | None = None, extra_ids: dict[str, str] | None = None) -> int:
    """tokenizer.ggml.* of a SentencePiece-style vocabulary (model "llama") and the chat template;
    returns its size. space_prefix None: tokenizer_config.json's add_prefix_space, if any."""
    tokens, scores, types = vocab
    tcfg = read_optional_json(hf_dir / "tokenizer_config.json")
    to_id = {t: i for i, t in enumerate(tokens)}
    ids = special_token_ids(hf_dir, config, to_id, len(tokens))

    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    for kind, add in (("bos", w.add_bos_token_id), ("eos", w.add_eos_token_id),
                      ("unk", w.add_unk_token_id), ("pad", w.add_pad_token_id)):
        if kind in ids:
            add(ids[kind])
    for kind, tok in (extra_ids or {}).items():
        if tok in to_id:
            w.add_uint32(f"tokenizer.ggml.{kind}_token_id", to_id[tok])
    w.add_add_bos_token(bool(tcfg.get("add_bos_token", True)))
    w.add_add_eos_token(bool(tcfg.get("add_eos_token", False)))
    if space_prefix is None:
        space_prefix = tcfg.get("add_prefix_space")
    if space_prefix is not None:
        w.add_add_space_prefix(bool(space_prefix))
    template = chat_template(hf_dir)
    if template:
        w.add_chat_template(template)
    return len(tokens)
