"""A tokenizer built from a GGUF vocabulary with Hugging Face `tokenizers`, behaving like
llama.cpp's tokenizer on the same file.

    tok = Tokenizer.from_gguf(GGUFFile.open(path))
    ids = tok.encode("<start_of_turn>user\\nhi<end_of_turn>")   # BOS added when the model wants it
    tok.decode(ids, skip_special=True)
    stream = StreamDecoder(tok); text = "".join(stream.push(i) for i in ids) + stream.flush()

How llama.cpp tokenizes, and how each step is rebuilt here:

1. Special tokens are cut out of the text first, as whole strings: user-defined tokens
   always, control (and unknown) tokens only when `special=True`. Here they are `tokenizers`
   added tokens (control ones marked special, matched unless `encode_special_tokens`).
2. SentencePiece vocabularies ("llama"): spaces become "▁", a "▁" is prepended to each text
   piece unless `tokenizer.ggml.add_space_prefix` is false (Gemma 3: false), then adjacent
   symbols are merged by best score, and characters outside the vocabulary become <0xXX>
   byte tokens. Here: a Replace (+ Prepend) normalizer and a BPE model whose merges are
   all splits of all tokens ranked by score (`spm_merges`), with byte fallback.
3. Byte-level BPE vocabularies ("gpt2"): the regexes named by `tokenizer.ggml.pre` split the
   text, each piece is mapped to GPT-2's byte alphabet and merged by rank. Here: Split
   pre-tokenizers, a ByteLevel pre-tokenizer and a BPE model with the file's merges.

Checked against llama.cpp itself (libllama, vocabulary-only load) on Gemma 3's vocabulary:
the same ids for ~7.7k texts (source code, prose, random Unicode, random concatenations of
vocabulary pieces, periodic runs such as "=====" or "ababab"), each with special=True and
False, 33k periodic texts and a 470k-character text. Where we differ, on purpose or by
construction:
- `encode` adds no second BOS when the text already starts with it (llama.cpp adds it and
  warns): a rendered chat template begins with "<bos>".
- Gemma 3's "</s>" (an HTML tag, user-defined) stays an ordinary user-defined token. llama.cpp
  makes every "</s>" a control, end-of-generation token, so it stops on it and does not
  match it with special=False.
- `decode` drops the "▁" that add_space_prefix put before the text also after a BOS, and
  does not apply llama_detokenize's clean-up of spaces before punctuation (byte-level BPE
  vocabularies), so that decode(encode(s)) == s; llama.cpp's token_to_piece, which servers
  stream, does not clean up either.
- A character with no token and no <0xXX> token becomes the unknown token (llama.cpp aborts).
- Special tokens are matched leftmost-longest (llama.cpp: longest token first, anywhere),
  and two splits of one token competing at once are ordered by rank, not by position (see
  `spm_merges`); neither changed a single id in the comparison above.
"""
from __future__ import annotations

import codecs
import gc
from collections.abc import Iterable
from typing import Any

import numpy as np
from tokenizers import AddedToken, Regex
from tokenizers import Tokenizer as _HFTokenizer
from tokenizers import models, normalizers, pre_tokenizers

from .vocab import PRE_TOKENIZERS, TokenType, Vocab, bpe_merges, spm_merges

__all__ = ["Tokenizer", "StreamDecoder"]

_SPACE = "\u2581"  # SentencePiece's visible space, "▁"


def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte -> printable character table, inverted (character -> byte)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in printable]
    return {chr(c): b for c, b in [*zip(printable, printable),
                                    *zip(range(256, 256 + len(others)), others)]}


_BYTE_DECODER = _byte_decoder()


class Tokenizer:
    """Text <-> token ids for one GGUF vocabulary (see the module docstring)."""

    def __init__(self, vocab: Vocab):
        self.vocab = vocab
        self.n_vocab: int = len(vocab.tokens)
        self.bos_id: int | None = vocab.bos_id
        self.eos_id: int | None = vocab.eos_id
        self.eot_id: int | None = vocab.eot_id
        self.pad_id: int | None = vocab.pad_id
        self.unk_id: int | None = vocab.unk_id
        self.add_bos: bool = vocab.add_bos
        self.add_eos: bool = vocab.add_eos
        self.eog_ids: frozenset[int] = vocab.eog_ids
        self.chat_template: str | None = vocab.chat_template
        types = vocab.types
        self._hidden = (types == TokenType.CONTROL) | (types == TokenType.UNKNOWN)
        self._special = self._hidden | (types == TokenType.USER_DEFINED)
        self._pieces: list[bytes | None] = [None] * self.n_vocab  # filled on first use
        self._with_special, self._without_special, self._extra_chars = _build(vocab)

    @classmethod
    def from_gguf(cls, gguf: Any) -> "Tokenizer":
        """From a GGUFFile, or anything with .get(key) returning GGUF metadata values."""
        # Building makes ~1M short-lived tuples and strings; the cyclic GC would walk the
        # heap hundreds of times meanwhile (a third of the build time), for nothing.
        enabled = gc.isenabled()
        gc.disable()
        try:
            return cls(Vocab.from_gguf(gguf))
        finally:
            if enabled:
                gc.enable()

    def __len__(self) -> int:
        return self.n_vocab

    def __repr__(self) -> str:
        return (f"Tokenizer({self.vocab.model}/{self.vocab.pre}, n_vocab={self.n_vocab}, "
                f"bos={self.bos_id}, eos={self.eos_id}, eog={sorted(self.eog_ids)})")

    # --- text -> ids ----------------------------------------------------------------------

    def encode(self, text: str, *, special: bool = True, add_bos: bool | None = None,
               add_eos: bool | None = None) -> list[int]:
        """Token ids of `text`. special=True: control-token texts such as "<start_of_turn>"
        become their ids (user-defined tokens always do); special=False: they are plain text.
        add_bos/add_eos: None follows the model (tokenizer.ggml.add_bos_token/add_eos_token)."""
        hf = self._with_special if special else self._without_special
        ids = hf.encode(text, add_special_tokens=False).ids if text else []
        if self._extra_chars and ids and max(ids) >= self.n_vocab:
            ids = self._resegment(ids)
        if (self.add_bos if add_bos is None else add_bos) and self.bos_id is not None:
            if not ids or ids[0] != self.bos_id:
                ids.insert(0, self.bos_id)
        if (self.add_eos if add_eos is None else add_eos) and self.eos_id is not None:
            ids.append(self.eos_id)
        return ids

    def _resegment(self, ids: list[int]) -> list[int]:
        """Replace the characters that are not tokens (ids past the vocabulary, see _build)
        by their UTF-8 bytes' <0xXX> tokens, or by the unknown token when there are none."""
        out = []
        for i in ids:
            if i < self.n_vocab:
                out.append(i)
                continue
            data = self._extra_chars[i - self.n_vocab].encode()
            byte_ids = [self.vocab.to_id.get(f"<0x{b:02X}>") for b in data]
            if None not in byte_ids:
                out.extend(byte_ids)
            elif self.unk_id is not None:
                out.append(self.unk_id)
        return out

    # --- ids -> text ----------------------------------------------------------------------

    def piece(self, token_id: int, *, special: bool = True) -> bytes:
        """The bytes of one token as llama.cpp's token_to_piece renders them: "▁" -> " ",
        <0xAB> -> that byte, byte-level BPE characters -> their bytes, control tokens as
        their text (or b"" with special=False), user-defined tokens always as their text."""
        token_id = int(token_id)
        if not 0 <= token_id < self.n_vocab:
            raise IndexError(f"token id {token_id} is outside the vocabulary (0..{self.n_vocab - 1})")
        if not special and self._hidden[token_id]:
            return b""
        piece = self._pieces[token_id]
        if piece is None:
            piece = self._pieces[token_id] = self._render(token_id)
        return piece

    def _render(self, i: int) -> bytes:
        text, kind = self.vocab.tokens[i], self.vocab.types[i]
        if kind in (TokenType.CONTROL, TokenType.UNKNOWN, TokenType.USER_DEFINED):
            return text.encode()
        if kind == TokenType.NORMAL:
            if self.vocab.model == "llama":
                return text.replace(_SPACE, " ").encode()
            if all(c in _BYTE_DECODER for c in text):
                return bytes(_BYTE_DECODER[c] for c in text)
            return text.encode()  # not byte-level text (llama.cpp prints "[UNK_BYTE_...]")
        if kind == TokenType.BYTE and len(text) == 6 and text.startswith("<0x"):
            return bytes([int(text[3:5], 16)])
        return b""  # unused / undefined tokens render as nothing, as in llama.cpp

    def decode_bytes(self, ids: Iterable[int], *, skip_special: bool = False) -> bytes:
        """The bytes of a sequence of ids (see decode)."""
        ids = [int(i) for i in ids]
        pieces = [self.piece(i, special=not skip_special) for i in ids]
        if self.vocab.add_space_prefix and pieces:
            # encode() put a "▁" before the text: drop it from the first text token (after a
            # leading BOS), as HF's Metaspace decoder does (llama.cpp keeps it after a BOS).
            j = 1 if ids[0] == self.bos_id else 0
            if j < len(ids) and self.vocab.types[ids[j]] == TokenType.NORMAL:
                pieces[j] = pieces[j].removeprefix(b" ")
        return b"".join(pieces)

    def decode(self, ids: Iterable[int], *, skip_special: bool = False) -> str:
        """Text of a sequence of ids; invalid UTF-8 (a cut multi-byte character) becomes U+FFFD.
        skip_special drops control tokens (BOS, EOS, <end_of_turn>); user-defined tokens stay."""
        return self.decode_bytes(ids, skip_special=skip_special).decode("utf-8", errors="replace")

    # --- vocabulary -----------------------------------------------------------------------

    def token_id(self, text: str) -> int | None:
        """The id of the token whose text is exactly `text` (e.g. "<end_of_turn>"), or None."""
        return self.vocab.to_id.get(text)

    def token_text(self, token_id: int) -> str:
        """The token's text as stored in the GGUF file ("▁hello", "<0x0A>", "Ġworld")."""
        return self.vocab.tokens[int(token_id)]

    def is_special(self, token_id: int) -> bool:
        """True for control, unknown and user-defined tokens."""
        return bool(self._special[int(token_id)])

    def is_eog(self, token_id: int) -> bool:
        return int(token_id) in self.eog_ids


class StreamDecoder:
    """Turns generated ids into text as they come: push() returns the newly completed text,
    holding back a multi-byte character until all its bytes (byte tokens) have arrived;
    flush() returns what is left (an incomplete character becomes U+FFFD).

    Pieces are rendered as llama.cpp streams them (token_to_piece): no leading space is
    removed, since streamed tokens continue a prompt."""

    def __init__(self, tokenizer: Tokenizer, skip_special: bool = True):
        self.tokenizer = tokenizer
        self.skip_special = skip_special
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, token_id: int) -> str:
        return self._utf8.decode(self.tokenizer.piece(token_id, special=not self.skip_special))

    def flush(self) -> str:
        text = self._utf8.decode(b"", final=True)
        self._utf8.reset()
        return text


def _build(vocab: Vocab) -> tuple[_HFTokenizer, _HFTokenizer, list[str]]:
    """Two `tokenizers` tokenizers over one shared BPE model: one matches control tokens in
    the text, one (encode_special_tokens) treats them as text. Sharing the model makes the
    second one free and keeps encode() free of shared mutable state (thread-safe). Also the
    characters given ids past the vocabulary (see below)."""
    types, n = vocab.types, len(vocab.tokens)
    extra: list[str] = []
    if vocab.model == "llama":
        # llama.cpp starts from characters whether or not they are tokens, so a character that
        # only occurs inside tokens (the "t" of "t1" in a toy vocabulary) can still merge. Such
        # characters get ids past the vocabulary here; encode() turns the ones left unmerged
        # into byte tokens as llama.cpp does. (Gemma 3 has none.)
        merges, extra = spm_merges(vocab.tokens, vocab.scores, types != TokenType.USER_DEFINED)
        model_vocab = vocab.to_id
        if extra:
            model_vocab = {**vocab.to_id, **{c: n + i for i, c in enumerate(extra)}}
        model = models.BPE(vocab=model_vocab, merges=merges,
                           byte_fallback=bool((types == TokenType.BYTE).any()),
                           unk_token=vocab.tokens[vocab.unk_id] if vocab.unk_id is not None else None)
        normalizer = normalizers.Replace(" ", _SPACE)
        if vocab.add_space_prefix:
            normalizer = normalizers.Sequence([normalizers.Prepend(_SPACE), normalizer])
        pre_tokenizer = None
    else:
        pre = PRE_TOKENIZERS[vocab.pre]
        model = models.BPE(vocab=vocab.to_id, merges=bpe_merges(vocab.merges, vocab.to_id),
                           ignore_merges=pre.ignore_merges)
        normalizer = None
        pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Split(Regex(r), behavior="isolated") for r in pre.regexes]
            + [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])

    control = np.nonzero((types == TokenType.CONTROL) | (types == TokenType.UNKNOWN))[0]
    user = np.nonzero(types == TokenType.USER_DEFINED)[0]
    tokens = vocab.tokens
    out = []
    for encode_special_tokens in (False, True):
        hf = _HFTokenizer(model)
        if normalizer is not None:
            hf.normalizer = normalizer
        if pre_tokenizer is not None:
            hf.pre_tokenizer = pre_tokenizer
        hf.add_special_tokens([AddedToken(tokens[i], special=True, normalized=False)
                               for i in control.tolist()])
        hf.add_tokens([AddedToken(tokens[i], special=False, normalized=False) for i in user.tolist()])
        hf.encode_special_tokens = encode_special_tokens
        out.append(hf)
    return out[0], out[1], extra
