"""The Llama 2 / Mistral 7B SentencePiece path ("llama" vocabulary from tokenizer.model, no
tokenizer.json) beyond test_conformance.py / test_llamacpp_files.py's logits and greedy tokens:
on the GGUFs of ggsight's and llama.cpp's converters (tests/make_conformance_llama_spm.py,
make_llamacpp_fixtures_llama.py) the tokenizer gives transformers' ids for texts with spaces,
newlines, digits, unicode and byte-fallback characters, and the Llama 2 chat template renders a
multi-turn conversation with a system prompt as apply_chat_template did. No torch needed."""
import json
from pathlib import Path

import pytest

import ggsight

DATA = Path(__file__).parent / "data"
CONVERTERS = ["conformance", "llamacpp"]
SUITE = json.loads((DATA / "conformance" / "llama_spm" / "cases.json").read_text(encoding="utf-8"))
_models: dict = {}


def model(converter: str) -> ggsight.Model:
    if converter not in _models:
        _models[converter] = ggsight.load(DATA / converter / "llama_spm" / "text.gguf", n_ctx=256, kv_type="f32")
    return _models[converter]


@pytest.mark.parametrize("converter", CONVERTERS)
def test_the_vocabulary_is_sentencepiece_with_byte_fallback(converter):
    tok = model(converter).tokenizer
    assert tok.vocab.model == "llama" and tok.vocab.add_space_prefix
    assert all(f"<0x{b:02X}>" in tok.vocab.to_id for b in range(256))
    assert (tok.bos_id, tok.eos_id, tok.unk_id) == (1, 2, 0)


@pytest.mark.parametrize("converter", CONVERTERS)
@pytest.mark.parametrize("i", range(len(SUITE["tokenize"])))
def test_token_ids_equal_sentencepiece_and_transformers(converter, i):
    """SentencePiece's own ids always; transformers' wherever they agree with SentencePiece's."""
    case = SUITE["tokenize"][i]
    ids = model(converter).tokenize(case["text"])
    if case["sentencepiece"] is not None:
        assert ids == case["sentencepiece"], case["text"]
    if case["sentencepiece"] in (None, case["ids"]):
        assert ids == case["ids"], case["text"]


def test_transformers_differs_from_sentencepiece_only_before_a_leading_space():
    """transformers 5's LlamaTokenizer (built from tokenizer.model, Metaspace prepend_scheme
    "always") prepends no "▁" to a text that begins with a space; SentencePiece does, and
    llama.cpp and ggsight with it. No other text of the fixture differs."""
    differ = [c["text"] for c in SUITE["tokenize"] if c["sentencepiece"] not in (None, c["ids"])]
    assert differ == [" leading space"]
    case = SUITE["tokenize"][1]
    assert case["sentencepiece"][:2] + case["sentencepiece"][3:] == case["ids"]   # one "▁" fewer


def test_the_texts_cover_byte_fallback_and_unicode_pieces():
    to_id = model("conformance").tokenizer.vocab.to_id
    byte_ids = {to_id[f"<0x{b:02X}>"] for b in range(256)}
    merged_unicode = {i for i, t in enumerate(model("conformance").tokenizer.vocab.tokens)
                      if any(ord(c) > 127 for c in t) and t not in ("\u2581",)}
    ids = [i for case in SUITE["tokenize"] for i in case["ids"]]
    assert byte_ids & set(ids) - {to_id["<0x0A>"], to_id["<0x09>"]}   # "€", "🙂": no piece, bytes
    assert merged_unicode & set(ids)


@pytest.mark.parametrize("converter", CONVERTERS)
def test_chat_template_renders_as_transformers(converter):
    m, chat = model(converter), SUITE["chat"]
    assert chat["messages"][0]["role"] == "system" and len(chat["messages"]) >= 4
    assert "<<SYS>>" in chat["rendered"] and chat["rendered"].count("[INST]") == 2
    rendered = m._render(chat["messages"])
    assert rendered == chat["rendered"]
    assert m.tokenize(rendered) == chat["ids"]


@pytest.mark.parametrize("converter", CONVERTERS)
def test_decode_inverts_encode(converter):
    tok = model(converter).tokenizer
    for case in SUITE["tokenize"]:
        if not case["text"].startswith("<s>"):
            assert tok.decode(tok.encode(case["text"]), skip_special=True) == case["text"]
