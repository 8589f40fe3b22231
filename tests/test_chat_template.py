"""Chat template rendering (real templates, exact strings, HF extras, errors) and stop strings.

Stop-string tests live here too: both are the text layer's prompt/response plumbing.
"""
from __future__ import annotations

import datetime
import json
import random

import pytest

from ggsight.text.chat import DEFAULT_TEMPLATE, ChatTemplateError, render_chat, template_from_metadata
from ggsight.text.stops import StopMatcher

# Gemma 3 instruction-tuned models' `chat_template` (tokenizer_config.json of google/gemma-3-*-it,
# which llama.cpp's converter copies to `tokenizer.chat_template`). The bundled 270M base model's
# GGUF carries no template, so the text is kept here.
GEMMA3_TEMPLATE = r"""{{ bos_token }}
{%- if messages[0]['role'] == 'system' -%}
    {%- if messages[0]['content'] is string -%}
        {%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}
    {%- else -%}
        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}
    {%- endif -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set first_user_prefix = "" -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}
    {%- endif -%}
    {%- if (message['role'] == 'assistant') -%}
        {%- set role = "model" -%}
    {%- else -%}
        {%- set role = message['role'] -%}
    {%- endif -%}
    {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else "") }}
    {%- if message['content'] is string -%}
        {{ message['content'] | trim }}
    {%- elif message['content'] is iterable -%}
        {%- for item in message['content'] -%}
            {%- if item['type'] == 'image' -%}
                {{ '<start_of_image>' }}
            {%- elif item['type'] == 'text' -%}
                {{ item['text'] | trim }}
            {%- endif -%}
        {%- endfor -%}
    {%- else -%}
        {{ raise_exception("Invalid content type") }}
    {%- endif -%}
    {{ '<end_of_turn>\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{'<start_of_turn>model\n'}}
{%- endif -%}
"""

# Meta-Llama-3-8B-Instruct's template.
LLAMA3_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)

# Qwen2-Instruct's ChatML template (adds a default system turn).
QWEN2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

USER = {"role": "user", "content": "Hello"}


def gemma(messages, **kw):
    return render_chat(GEMMA3_TEMPLATE, messages, bos_token="<bos>", eos_token="<eos>", **kw)


# --- Gemma 3 -------------------------------------------------------------------------------

def test_gemma3_one_user_turn():
    assert gemma([USER]) == "<bos><start_of_turn>user\nHello<end_of_turn>\n<start_of_turn>model\n"


def test_gemma3_folds_system_into_first_user_turn():
    out = gemma([{"role": "system", "content": "Be brief."}, USER])
    assert out == "<bos><start_of_turn>user\nBe brief.\n\nHello<end_of_turn>\n<start_of_turn>model\n"


def test_gemma3_multi_turn_with_assistant():
    msgs = [{"role": "system", "content": "Be brief."},
            {"role": "user", "content": "  Hi \n"},            # trimmed by the template
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "How are you?"}]
    assert gemma(msgs) == ("<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n"
                           "<start_of_turn>model\nHello!<end_of_turn>\n"
                           "<start_of_turn>user\nHow are you?<end_of_turn>\n"
                           "<start_of_turn>model\n")


def test_gemma3_without_generation_prompt():
    msgs = [USER, {"role": "assistant", "content": "Hi there"}]
    assert gemma(msgs, add_generation_prompt=False) == (
        "<bos><start_of_turn>user\nHello<end_of_turn>\n<start_of_turn>model\nHi there<end_of_turn>\n")


def test_gemma3_raise_exception_on_roles_not_alternating():
    with pytest.raises(ChatTemplateError) as e:
        gemma([USER, {"role": "user", "content": "again"}])
    assert str(e.value) == "Conversation roles must alternate user/assistant/user/assistant/..."
    assert isinstance(e.value, ValueError)


def test_gemma3_content_parts_pass_through():
    msg = {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": " What is it? "}]}
    assert gemma([msg]) == ("<bos><start_of_turn>user\n<start_of_image>What is it?<end_of_turn>\n"
                            "<start_of_turn>model\n")


def test_images_are_dropped_unless_kept():
    msg = {"role": "user", "content": "Hello", "images": [b"\x89PNG"]}
    assert gemma([msg]) == gemma([USER])
    assert msg["images"] == [b"\x89PNG"]                     # the caller's dict is untouched
    t = "{% for m in messages %}{{ m.images | length if m.images is defined else 'none' }}{% endfor %}"
    assert render_chat(t, [msg]) == "none"
    assert render_chat(t, [msg], keep_images=True) == "1"


# --- other families ------------------------------------------------------------------------

def test_llama3_template():
    msgs = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi "}]
    out = render_chat(LLAMA3_TEMPLATE, msgs, bos_token="<|begin_of_text|>")
    assert out == ("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|>"
                   "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
                   "<|start_header_id|>assistant<|end_header_id|>\n\n")


def test_qwen2_chatml_template():
    out = render_chat(QWEN2_TEMPLATE, [{"role": "user", "content": "Hi"}])
    assert out == ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
                   "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    out = render_chat(QWEN2_TEMPLATE, [{"role": "system", "content": "S"}, {"role": "user", "content": "Hi"},
                                       {"role": "assistant", "content": "Yo"}], add_generation_prompt=False)
    assert out == ("<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                   "<|im_start|>assistant\nYo<|im_end|>\n")


def test_default_template_when_model_has_none():
    msgs = [{"role": "system", "content": "S"}, USER]
    expected = "<s><|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n"
    assert render_chat(None, msgs, bos_token="<s>") == expected
    assert render_chat("", msgs, bos_token="<s>") == expected
    assert render_chat(DEFAULT_TEMPLATE, msgs, bos_token="<s>") == expected


# --- the HF environment --------------------------------------------------------------------

def test_trim_blocks_and_lstrip_blocks_as_transformers():
    t = ("{% for message in messages %}\n"
         "    {% if message.role == 'user' %}\n"
         "U: {{ message.content }}\n"
         "    {% endif %}\n"
         "{% endfor %}\n")
    assert render_chat(t, [USER, {"role": "assistant", "content": "x"}]) == "U: Hello\n"


def test_tojson_matches_transformers():
    tools = [{"type": "function", "function": {"name": "météo", "description": "<b>x</b> & y's"}}]
    out = render_chat("{{ tools | tojson }}|{{ tools[0] | tojson(indent=2) }}", [USER], tools=tools)
    assert out == json.dumps(tools, ensure_ascii=False) + "|" + json.dumps(tools[0], ensure_ascii=False, indent=2)
    assert "météo" in out and "<b>" in out                   # no \u escapes, no HTML escaping


def test_tools_none_is_falsy_and_extra_variables_pass_through():
    t = "{% if tools %}T{% endif %}{{ enable_thinking }}{{ eos_token }}"
    assert render_chat(t, [USER], enable_thinking=False, eos_token="</s>") == "False</s>"


def test_strftime_now_and_loopcontrols():
    assert render_chat("{{ strftime_now('%Y') }}", [USER]) == str(datetime.datetime.now().year)
    t = ("{% for i in range(6) %}{% if i == 1 %}{% continue %}{% endif %}"
         "{% if i == 4 %}{% break %}{% endif %}{{ i }}{% endfor %}")
    assert render_chat(t, [USER]) == "023"


def test_generation_block_renders_its_body():
    t = "{% for m in messages %}{% generation %}{{ m.content }}{% endgeneration %}{% endfor %}"
    assert render_chat(t, [USER]) == "Hello"


def test_missing_attribute_renders_empty_like_transformers():
    assert render_chat("[{{ messages[0].tool_calls }}]", [USER]) == "[]"


# --- errors --------------------------------------------------------------------------------

def test_syntax_error():
    with pytest.raises(ChatTemplateError, match="syntax error at line 2"):
        render_chat("{{ bos_token }}\n{% for m in messages %}{{ m.content }}", [USER])


def test_undefined_access():
    with pytest.raises(ChatTemplateError, match="undefined.*'nothing' is undefined"):
        render_chat("{{ nothing.attr }}", [USER])


@pytest.mark.parametrize("template", [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__ }}",
    "{% if ''.__class__ %}yes{% endif %}",
    "{{ messages.__class__.__base__.__subclasses__() }}",
    "{% set x = [] %}{{ x.append(1) }}",                      # the immutable sandbox
])
def test_sandbox_violations(template):
    with pytest.raises(ChatTemplateError, match="unsafe"):
        render_chat(template, [USER])


def test_type_errors_inside_the_template():
    with pytest.raises(ChatTemplateError, match="TypeError"):
        render_chat("{{ 'a' + messages[0].content }}", [{"role": "user", "content": None}])


def test_bad_messages():
    with pytest.raises(TypeError):
        render_chat(None, "hello")
    with pytest.raises(ValueError, match="message 0 has no 'role'"):
        render_chat(None, [{"content": "x"}])


def test_template_from_metadata():
    meta = {"tokenizer.chat_template": "A", "tokenizer.chat_template.tool_use": "B", "general.name": "x"}
    assert template_from_metadata(meta) == "A"
    assert template_from_metadata(meta, "tool_use") == "B"
    assert template_from_metadata({"general.name": "x"}) is None
    assert template_from_metadata({"tokenizer.chat_template": ""}) is None


# --- stop strings --------------------------------------------------------------------------

def feed(stops, pieces):
    """(emitted pieces, stopped, final text) after pushing pieces until a stop."""
    m = StopMatcher(stops)
    out = []
    for p in pieces:
        emit, stopped = m.push(p)
        out.append(emit)
        if stopped:
            return out, True, "".join(out), m
    out.append(m.flush())
    return out, False, "".join(out), m


def test_stops_none_pass_through_without_holding():
    m = StopMatcher([])
    for p in ["Hel", "<", "lo", "</s>"]:
        assert m.push(p) == (p, False)
    assert m.flush() == "" and m.pending == ""


def test_stop_inside_one_piece_drops_the_rest():
    out, stopped, text, m = feed(["</s>"], ["Hello</s>world"])
    assert stopped and out == ["Hello"] and m.matched == "</s>"
    assert m.push("more") == ("", True) and m.flush() == ""


def test_stop_split_across_pieces():
    out, stopped, text, _ = feed(["</s>"], ["Hel", "lo <", "/", "s> more"])
    assert stopped and out == ["Hel", "lo ", "", ""] and text == "Hello "


def test_partial_match_released_when_it_fails():
    out, stopped, text, _ = feed(["</s>"], ["a<", "/x", "b<"])
    assert not stopped and out == ["a", "</x", "b", "<"]      # the last "<" comes from flush()


def test_overlapping_stops():
    # "bc" completes inside "abcd" first: generation would halt there.
    out, stopped, text, m = feed(["abcd", "bc"], ["ab", "c", "d"])
    assert stopped and text == "a" and m.matched == "bc"
    # A stop overlapping itself: "aa" is held, one "a" released as "aaa" shows it cannot start.
    out, stopped, text, m = feed(["aab"], ["a", "a", "a", "b!"])
    assert stopped and out == ["", "", "a", ""] and text == "a"
    # Two stops ending at the same place: the longer one is reported.
    _, _, text, m = feed(["</s>", "x</s>"], ["yx</s>"])
    assert text == "y" and m.matched == "x</s>"


def test_stops_with_unicode():
    _, stopped, text, _ = feed(["。終"], ["こんにちは。", "終わり"])
    assert stopped and text == "こんにちは"
    _, stopped, text, _ = feed(["🛑"], ["go 🚦", "🛑 no"])
    assert stopped and text == "go 🚦"
    _, stopped, text, _ = feed(["é!"], ["caf", "é", "?"])
    assert not stopped and text == "café?"


def test_stop_arguments():
    with pytest.raises(TypeError):
        StopMatcher("</s>")
    with pytest.raises(TypeError):
        StopMatcher([1])
    assert StopMatcher(["", "x"]).stops == ("x",)                # "" would stop before any text


def reference_stop(text, stops):
    """Brute force: cut at the stop that completes first (the longest of those ending there)."""
    for end in range(1, len(text) + 1):
        hits = [s for s in stops if text[:end].endswith(s)]
        if hits:
            return text[:end - max(map(len, hits))]
    return text


def test_stops_random_splits_match_reference():
    rng = random.Random(0)
    for _ in range(2000):
        stops = ["".join(rng.choice("ab") for _ in range(rng.randint(1, 4))) for _ in range(rng.randint(1, 3))]
        text = "".join(rng.choice("abc") for _ in range(rng.randint(0, 12)))
        cuts = sorted(rng.sample(range(len(text) + 1), rng.randint(0, len(text) + 1)))
        pieces = [text[i:j] for i, j in zip([0] + cuts, cuts + [len(text)])]
        _, _, got, _ = feed(stops, pieces)
        assert got == reference_stop(text, stops), (stops, pieces)
