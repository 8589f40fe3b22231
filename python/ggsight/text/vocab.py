"""The tokenizer part of a GGUF file, read the way llama.cpp reads it (src/llama-vocab.cpp).

`Vocab.from_gguf(f)` gathers tokens, token types, scores or merges, special ids and flags,
with llama.cpp's defaults and its fix-ups by token text (end-of-generation tokens, FIM
tokens). `spm_merges()` turns a SentencePiece vocabulary (scores, no merges) into the
ranked merge list that a `tokenizers` BPE model needs; `PRE_TOKENIZERS` holds the
pre-tokenizer regexes of byte-level BPE vocabularies, keyed by `tokenizer.ggml.pre`.
"""
from __future__ import annotations

import enum
import operator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import GGSightError

__all__ = ["TokenType", "Vocab", "VocabError", "PRE_TOKENIZERS", "spm_merges", "bpe_merges"]


class VocabError(GGSightError, ValueError):
    """The GGUF vocabulary is missing, inconsistent or of a kind we do not support."""


class TokenType(enum.IntEnum):
    """`tokenizer.ggml.token_type` values (llama.cpp's llama_token_type)."""
    UNDEFINED = 0
    NORMAL = 1
    UNKNOWN = 2
    CONTROL = 3
    USER_DEFINED = 4
    UNUSED = 5
    BYTE = 6


# Pre-tokenizer regexes, copied from llm_tokenizer_bpe in llama.cpp (rev 00ad355e), where
# "(?i:'s|...)" is spelled "'[sS]|..." (so no Unicode case folding, exactly as llama.cpp).
# gpt-4o and tekken keep the \p{Lu}/\p{Ll} classes of their tokenizer.json, which llama.cpp
# rewrites with lookaheads for its regex engine; Oniguruma (`tokenizers`) takes them as they
# are. Several regexes are applied in turn, each splitting the pieces of the previous one;
# text between matches is kept as pieces of its own ("isolated" splitting).
_CONTRACTIONS = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
_GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"
_LLAMA3 = (_CONTRACTIONS + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
           r"|\s*[\r\n]+|\s+(?!\S)|\s+")
_QWEN2 = _LLAMA3.replace(r"\p{N}{1,3}", r"\p{N}")
_UPPER, _LOWER = r"[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]", r"[\p{Ll}\p{Lm}\p{Lo}\p{M}]"
_GPT4O = (rf"[^\r\n\p{{L}}\p{{N}}]?{_UPPER}*{_LOWER}+{_CONTRACTIONS}?"
          rf"|[^\r\n\p{{L}}\p{{N}}]?{_UPPER}+{_LOWER}*{_CONTRACTIONS}?"
          r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")
_TEKKEN = (rf"[^\r\n\p{{L}}\p{{N}}]?{_UPPER}*{_LOWER}+|[^\r\n\p{{L}}\p{{N}}]?{_UPPER}+{_LOWER}*"
           r"|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")


@dataclass(frozen=True)
class PreTokenizer:
    regexes: tuple[str, ...]
    ignore_merges: bool = False  # a piece that is a token as a whole is taken as it is
    add_bos: bool = False        # llama.cpp's default when the GGUF has no add_bos_token


_DEFAULT = PreTokenizer((r"[\p{P}\$\+<=>\^~\|]+", _GPT2, r"\p{N}+", r"[0-9][0-9][0-9]"))
_PRE_GROUPS: list[tuple[tuple[str, ...], PreTokenizer]] = [
    (("default",), _DEFAULT),
    (("llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2",
      "dbrx", "smaug-bpe"), PreTokenizer((_LLAMA3,), ignore_merges=True, add_bos=True)),
    (("qwen2", "deepseek-r1-qwen", "megrez", "stablelm2"), PreTokenizer((_QWEN2,))),
    (("gpt-2", "gpt2", "phi-2", "mpt", "olmo", "jais", "exaone4", "roberta-bpe"),
     PreTokenizer((_GPT2,))),
    (("starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b"),
     PreTokenizer((r"\p{N}", _GPT2))),
    (("falcon",), PreTokenizer((r"[\p{P}\$\+<=>\^~\|`]+", _GPT2, r"[0-9][0-9][0-9]"))),
    (("gpt-4o", "llama4"), PreTokenizer((_GPT4O,))),
    (("tekken",), PreTokenizer((_TEKKEN,), ignore_merges=True, add_bos=True)),
]
PRE_TOKENIZERS: dict[str, PreTokenizer] = {name: p for names, p in _PRE_GROUPS for name in names}

# Token texts llama.cpp recognises when the GGUF has no id for them (llama_vocab::impl::load).
_EOT_TEXTS = ("<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
              "<|end_of_text|>", "<EOT>", "_<EOT>", "[EOT]", "<｜end▁of▁sentence｜>",
              "<end_of_utterance>")
_FIM_TEXTS = {  # only the FIM tokens that llama.cpp also counts as end of generation
    "fim_pad": ("<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"),
    "fim_rep": ("<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"),
    "fim_sep": ("<|file_sep|>",),
}
_EOG_TEXTS = frozenset(_EOT_TEXTS) | {
    "<|return|>", "<|call|>", "<|flush|>", "<|calls|>", "</s>", "<|eom_id|>", "[EOS]", "<eos>",
    "<turn|>", "<|tool_response>", "[e~["}
_ALWAYS_RENDERED = ("<|channel|>", "<|message|>", "<|start|>", "<|constrain|>")  # gpt-oss


def _token_id(gguf: Any, key: str, n: int) -> int | None:
    value = gguf.get(key)
    return int(value) if value is not None and 0 <= int(value) < n else None


@dataclass
class Vocab:
    model: str                  # tokenizer.ggml.model: "llama" (SentencePiece) or "gpt2"
    pre: str                    # tokenizer.ggml.pre
    tokens: list[str]
    to_id: dict[str, int]       # token text -> id
    types: np.ndarray           # [n_vocab] int32 TokenType, after llama.cpp's fix-ups
    scores: np.ndarray | None   # [n_vocab] float32 (SentencePiece)
    merges: list[str] | None    # "left right" strings, by rank (byte-level BPE)
    bos_id: int | None
    eos_id: int | None
    eot_id: int | None
    eom_id: int | None
    unk_id: int | None
    pad_id: int | None
    add_bos: bool
    add_eos: bool
    add_space_prefix: bool
    eog_ids: frozenset[int]
    chat_template: str | None

    @classmethod
    def from_gguf(cls, gguf: Any) -> "Vocab":
        model = gguf.get("tokenizer.ggml.model")
        tokens = gguf.get("tokenizer.ggml.tokens")
        if model not in ("llama", "gpt2"):
            raise VocabError(f"tokenizer.ggml.model {model!r} is not supported "
                             "(supported: 'llama' (SentencePiece), 'gpt2' (byte-level BPE))")
        if not tokens:
            raise VocabError("the GGUF file has no tokenizer.ggml.tokens")
        n = len(tokens)
        to_id = dict(zip(tokens, range(n)))
        if "" in to_id:  # llama.cpp renames empty tokens so that every text maps to one id
            tokens = [t if t else f"[EMPTY_{i}]" for i, t in enumerate(tokens)]
            to_id = dict(zip(tokens, range(n)))
        if len(to_id) != n:
            dup = next(t for i, t in enumerate(tokens) if to_id[t] != i)
            raise VocabError(f"duplicate token {dup!r} in the vocabulary")
        types = gguf.get("tokenizer.ggml.token_type")
        types = (np.full(n, TokenType.NORMAL, np.int32) if types is None
                 else np.array(types[:n], dtype=np.int32))
        scores = gguf.get("tokenizer.ggml.scores")
        scores = None if scores is None else np.asarray(scores[:n], dtype=np.float32)
        merges = gguf.get("tokenizer.ggml.merges")
        pre = gguf.get("tokenizer.ggml.pre") or "default"
        if len(types) != n or (scores is not None and len(scores) != n):
            raise VocabError(f"token_type/scores arrays are shorter than the {n} tokens")

        if model == "llama":
            pre, add_bos, add_space_prefix = "default", True, True
            if scores is None:  # llama.cpp then scores every token 0
                scores = np.zeros(n, np.float32)
        else:
            if pre not in PRE_TOKENIZERS:
                raise VocabError(f"pre-tokenizer {pre!r} is not supported; known: "
                                 + ", ".join(sorted(PRE_TOKENIZERS)))
            if merges is None:
                raise VocabError("a byte-level BPE ('gpt2') vocabulary needs tokenizer.ggml.merges")
            add_bos, add_space_prefix = PRE_TOKENIZERS[pre].add_bos, False
        add_bos = bool(_get(gguf, "tokenizer.ggml.add_bos_token", add_bos))
        add_eos = bool(_get(gguf, "tokenizer.ggml.add_eos_token", False))
        if model == "llama":
            add_space_prefix = bool(_get(gguf, "tokenizer.ggml.add_space_prefix", True))

        def special(name: str, *fallback: str) -> int | None:
            found = _token_id(gguf, f"tokenizer.ggml.{name}_token_id", n)
            return found if found is not None else next(
                (to_id[t] for t in fallback if t in to_id), None)

        # Ids come from the GGUF keys; where a key is missing we look the token up by its
        # text (llama.cpp falls back to literal ids such as 1/2/0 for SentencePiece).
        bos_id = special("bos", "<s>", "<bos>", "<|begin_of_text|>")
        eos_id = special("eos", "</s>", "<eos>", "<|endoftext|>", "<|end_of_text|>")
        unk_id = special("unknown", "<unk>")
        pad_id = special("padding")
        eot_id = special("eot", *_EOT_TEXTS)
        eom_id = special("eom", "<|eom_id|>")
        fim = [special(name, *texts) for name, texts in _FIM_TEXTS.items()]

        # End of generation: eos, eot, eom, the FIM pad/repo/file-separator tokens and every
        # token with an end-like text, as llama.cpp does. One deliberate difference: Gemma 3's
        # "</s>" is an HTML tag (user-defined, id 212), not an end token; llama.cpp (which
        # added "</s>" to its list for PaddleOCR) stops generation on it, we do not.
        by_text = {to_id[t] for t in _EOG_TEXTS if t in to_id
                   and not (t == "</s>" and types[to_id[t]] == TokenType.USER_DEFINED)}
        # llama.cpp makes these control tokens whatever the file says (a bad conversion would
        # otherwise let "<|im_end|>" through as plain text).
        for i in by_text | {i for i in (eot_id, eom_id, *fim) if i is not None}:
            types[i] = TokenType.CONTROL
        eog = by_text | {i for i in (eos_id, eot_id, eom_id, *fim) if i is not None}
        texts = {tokens[i] for i in eog}
        if "<|end|>" in texts and ({"<|return|>", "<|call|>"} <= texts
                                   or {"<|calls|>", "<|flush|>"} <= texts):
            # harmony / solar-open: "<|end|>" ends a message, not the generation
            eog.discard(to_id["<|end|>"])
            types[to_id["<|end|>"]] = TokenType.USER_DEFINED
        for t in _ALWAYS_RENDERED:
            if t in to_id:
                types[to_id[t]] = TokenType.USER_DEFINED
        if add_bos and bos_id is None:
            add_bos = False
        if add_eos and eos_id is None:
            add_eos = False
        return cls(model=model, pre=pre, tokens=tokens, to_id=to_id, types=types, scores=scores,
                   merges=list(merges) if merges is not None else None,
                   bos_id=bos_id, eos_id=eos_id, eot_id=eot_id, eom_id=eom_id, unk_id=unk_id,
                   pad_id=pad_id, add_bos=add_bos, add_eos=add_eos,
                   add_space_prefix=add_space_prefix, eog_ids=frozenset(eog),
                   chat_template=gguf.get("tokenizer.chat_template"))


def _get(gguf: Any, key: str, default: Any) -> Any:
    value = gguf.get(key)
    return default if value is None else value


# --- merges -------------------------------------------------------------------------------

_P = np.uint64(0x100000001B3)  # odd multiplier of the polynomial string hash


def _mix(h: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Hash of a string from its polynomial hash and its length (splitmix64 finaliser)."""
    x = h ^ (length.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15))
    x ^= x >> np.uint64(31)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(29)
    return x


def spm_merges(tokens: list[str], scores: np.ndarray,
               mergeable: np.ndarray) -> tuple[list[tuple[str, str]], list[str]]:
    """Every pair (a, b) of symbols whose concatenation is a mergeable token, best first;
    and the characters of mergeable tokens that are not tokens themselves.

    llama.cpp's SentencePiece tokenizer (like SentencePiece's BPE) starts from characters
    and repeatedly merges the adjacent pair whose concatenation is in the vocabulary with
    the highest score. A `tokenizers` BPE model does the same with ranked merges, so the
    merges are all splits of all tokens, ranked by the score of the merged token (ties:
    lower token id first, then shorter left part). SentencePiece breaks a tie between two
    splits of one token by position, which a rank cannot express; it only matters for
    periodic text such as "aaaaa" where both "aa"+"a" and "a"+"aa" are candidates at once
    (on Gemma 3's vocabulary, neither tie order changed an id for 33k periodic texts).
    A character that occurs only inside tokens (the "t" of "t1" in a toy vocabulary) is a
    symbol too; the caller gives those ids past the vocabulary, in the order returned.

    262k tokens have ~1.2M split points; testing them with Python strings takes seconds,
    so they are tested with 64-bit string hashes in numpy, and every pair found is then
    checked exactly (t == a + b) before use.
    """
    def layout(tokens: list[str]):
        lens = np.fromiter(map(len, tokens), np.int64, len(tokens))
        codes = np.frombuffer("".join(tokens).encode("utf-32-le", "surrogatepass"), np.uint32)
        starts = np.zeros(len(tokens), np.int64)
        np.cumsum(lens[:-1], out=starts[1:])
        return lens, codes, starts

    lens, codes, starts = layout(tokens)
    is_token = np.zeros(0x110000, bool)       # code point -> is a one-character token
    is_token[codes[starts[lens == 1]]] = True
    inner = codes[np.repeat(mergeable, lens)]
    extra = [chr(c) for c in np.unique(inner[~is_token[inner]]).tolist()]
    if extra:
        tokens = [*tokens, *extra]
        scores = np.concatenate([scores, np.zeros(len(extra), scores.dtype)])
        mergeable = np.concatenate([mergeable, np.zeros(len(extra), bool)])
        lens, codes, starts = layout(tokens)
    n = len(tokens)
    longest = int(lens.max())
    codes = codes.astype(np.uint64)
    power = np.ones(longest + 1, np.uint64)  # power[j] = P**j
    with np.errstate(over="ignore"):          # uint64 arithmetic wraps: hashes are mod 2**64
        power[1:] = np.cumprod(np.full(longest, _P, np.uint64))

        def prefix_hashes(alive: np.ndarray):  # yields (k, ids of len >= k, hashes of [:k])
            h = np.zeros(n, np.uint64)
            for k in range(1, longest + 1):
                alive = alive[lens[alive] >= k]
                hk = h[alive] * _P + codes[starts[alive] + k - 1]
                h[alive] = hk
                yield k, alive, hk

        full = np.zeros(n, np.uint64)
        for _, alive, hk in prefix_hashes(np.arange(n)):
            full[alive] = hk  # the last write for a token is the hash of all of it
        table = _KeyTable(_mix(full, lens))
        found = []
        for k, alive, hk in prefix_hashes(np.nonzero(mergeable & (lens > 1))[0]):
            more = lens[alive] > k
            t, hp = alive[more], hk[more]
            left = table.lookup(_mix(hp, np.full(len(t), k)))
            t, hp, left = t[left >= 0], hp[left >= 0], left[left >= 0]
            rest = lens[t] - k
            right = table.lookup(_mix(full[t] - hp * power[rest], rest))
            ok = right >= 0
            found.append((t[ok], np.full(ok.sum(), k), left[ok], right[ok]))
    if not found:  # no token longer than one character
        return [], extra
    target, k, left, right = (np.concatenate(x) for x in zip(*found))
    rank = np.empty(n, np.int64)              # best score first, then lower id
    rank[np.lexsort((np.arange(n), -scores.astype(np.float64)))] = np.arange(n)
    order = np.argsort(rank[target] * (longest + 1) + k, kind="stable")
    objs = np.array(tokens, dtype=object)
    a, b, t = objs[left[order]].tolist(), objs[right[order]].tolist(), objs[target[order]].tolist()
    if not all(map(operator.eq, map(operator.add, a, b), t)):
        # a hash collision (odds ~1e-8 per vocabulary): drop the false pairs
        keep = [x + y == z for x, y, z in zip(a, b, t)]
        a = [x for x, f in zip(a, keep) if f]
        b = [y for y, f in zip(b, keep) if f]
    return list(zip(a, b)), extra


class _KeyTable:
    """Exact lookup of 64-bit keys (uniformly spread) -> index, in numpy: keys sorted, plus
    the start of each bucket of their top bits, so a lookup touches one or two entries
    (np.searchsorted would make ~18 scattered reads per query)."""

    def __init__(self, keys: np.ndarray):
        self.by_key = np.argsort(keys)
        self.keys = keys[self.by_key]
        bits = max(int(len(keys)).bit_length(), 1)
        self.shift = np.uint64(64 - bits)
        counts = np.bincount((self.keys >> self.shift).astype(np.int64), minlength=1 << bits)
        self.start = np.zeros((1 << bits) + 1, np.int64)
        np.cumsum(counts, out=self.start[1:])
        self.depth = int(counts.max())

    def lookup(self, q: np.ndarray) -> np.ndarray:
        """Index of each query key in the original array, or -1."""
        bucket = (q >> self.shift).astype(np.int64)
        lo, count = self.start[bucket], self.start[bucket + 1] - self.start[bucket]
        found = np.full(len(q), -1, np.int64)
        for j in range(self.depth):
            at = np.nonzero(count > j)[0]
            slot = lo[at] + j
            hit = self.keys[slot] == q[at]
            found[at[hit]] = self.by_key[slot[hit]]
        return found


def bpe_merges(merges: list[str], to_id: dict[str, int]) -> list[tuple[str, str]]:
    """Parse "left right" merges (split at the first space after the first character, as
    llama.cpp does), keeping those whose parts and result are tokens (`tokenizers` needs
    that; llama.cpp could never emit the others as one token either)."""
    out = []
    for m in merges:
        i = m.find(" ", 1)
        if i > 0:
            a, b = m[:i], m[i + 1:]
            if a in to_id and b in to_id and a + b in to_id:
                out.append((a, b))
    return out
