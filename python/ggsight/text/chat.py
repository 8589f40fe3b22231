"""Chat templates: render the Jinja template a GGUF carries in `tokenizer.chat_template`.

The environment copies Hugging Face transformers' (`apply_chat_template`), because that is
the environment the template authors wrote and tested against: a sandboxed, immutable Jinja
environment with trim_blocks/lstrip_blocks, the loopcontrols extension, a no-op
`{% generation %}` block, `raise_exception`, `strftime_now` and a `tojson` that does not
escape HTML or non-ASCII text.

    render_chat(template, [{"role": "user", "content": "hi"}], bos_token="<bos>")

The rendered text normally begins with the BOS token when the template writes one (almost all
do), so the caller tokenizes it with special tokens parsed and without adding another BOS.
"""
from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import jinja2
import jinja2.ext
import jinja2.nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ..errors import GGSightError

__all__ = ["ChatTemplateError", "DEFAULT_TEMPLATE", "render_chat", "template_from_metadata"]


class ChatTemplateError(GGSightError, ValueError):
    """A chat template failed to compile or render, or called raise_exception()."""


# Used when a model carries no template (base models such as Gemma 3 270M). ChatML is the
# format most chat fine-tunes without a template of their own were trained on. It writes
# bos_token like real templates do, so the caller's "template includes BOS" rule holds.
DEFAULT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|im_start|>' ~ message['role'] ~ '\\n' ~ (message['content'] or '') ~ '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def _raise_exception(message: str) -> None:
    # The template's own words are the clearest message (e.g. "Conversation roles must
    # alternate user/assistant/..."), so they are passed on unchanged.
    raise ChatTemplateError(str(message))


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


def _tojson(value: Any, ensure_ascii: bool = False, indent: int | None = None,
            separators: tuple[str, str] | None = None, sort_keys: bool = False) -> str:
    # Jinja's built-in tojson HTML-escapes '<', '>', '&' and "'" and has no ensure_ascii;
    # templates render tool schemas with it, so it must match transformers byte for byte.
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent,
                      separators=separators, sort_keys=sort_keys)


class _GenerationBlock(jinja2.ext.Extension):
    """`{% generation %}...{% endgeneration %}` renders its body unchanged.

    transformers uses the block to mark assistant tokens for training masks; some templates
    (SmolLM3, several fine-tunes) contain it and would be syntax errors without this.
    """

    tags = {"generation"}

    def parse(self, parser: Any) -> jinja2.nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_render_body"), [], [], body).set_lineno(lineno)

    def _render_body(self, caller: Any) -> str:
        return caller()


class _Undefined(jinja2.Undefined):
    """Jinja's default Undefined, except that a blocked (unsafe) attribute always fails.

    The default renders `{{ ''.__class__ }}` as an empty string and is falsy in an `if`;
    a template poking at dunders is broken or hostile, and the user should hear about it.
    Ordinary missing values keep the default, lenient behaviour templates rely on.
    """

    __slots__ = ()

    def _check_unsafe(self) -> None:
        if self._undefined_exception is SecurityError:
            self._fail_with_undefined_error()

    def __str__(self) -> str:
        self._check_unsafe()
        return super().__str__()

    def __iter__(self):  # type: ignore[override]
        self._check_unsafe()
        return super().__iter__()

    def __bool__(self) -> bool:
        self._check_unsafe()
        return super().__bool__()

    def __len__(self) -> int:
        self._check_unsafe()
        return super().__len__()


@functools.lru_cache(maxsize=1)
def _environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, undefined=_Undefined,
        extensions=[jinja2.ext.loopcontrols, _GenerationBlock])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env


@functools.lru_cache(maxsize=32)
def _compile(source: str) -> jinja2.Template:
    # Chat turns re-render the same template; compiling costs milliseconds, rendering less.
    try:
        return _environment().from_string(source)
    except jinja2.TemplateSyntaxError as e:
        raise ChatTemplateError(f"chat template syntax error at line {e.lineno}: {e.message}") from e


def _prepare(messages: Sequence[Mapping[str, Any]], keep_images: bool) -> list[dict[str, Any]]:
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise TypeError(f"messages must be a list of dicts, not {type(messages).__name__}")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping):
            raise TypeError(f"message {i} must be a dict, not {type(m).__name__}")
        if not isinstance(m.get("role"), str):
            raise ValueError(f"message {i} has no 'role' string: {dict(m)!r}")
        # Images are placed by the model's prompt layout, not by the template: Ollama-style
        # messages carry them beside the text, which templates would otherwise print.
        out.append({k: v for k, v in m.items() if keep_images or k != "images"})
    return out


def render_chat(template: str | None, messages: Sequence[Mapping[str, Any]], *,
                add_generation_prompt: bool = True, bos_token: str = "", eos_token: str = "",
                tools: Sequence[Mapping[str, Any]] | None = None, keep_images: bool = False,
                **extra: Any) -> str:
    """Render `messages` (Ollama-style dicts) with a GGUF chat template.

    template: the `tokenizer.chat_template` text; None or "" uses DEFAULT_TEMPLATE.
    tools: OpenAI/Ollama-style tool schemas, passed to the template as `tools`.
    extra: further template variables (e.g. `enable_thinking=False`, `date_string=...`).
    Raises ChatTemplateError for syntax errors, undefined access, sandbox violations,
    raise_exception() calls and errors raised while rendering.
    """
    compiled = _compile(template or DEFAULT_TEMPLATE)
    context = dict(extra, messages=_prepare(messages, keep_images), tools=tools,
                   add_generation_prompt=add_generation_prompt,
                   bos_token=bos_token, eos_token=eos_token)
    try:
        return compiled.render(**context)
    except ChatTemplateError:
        raise
    except SecurityError as e:
        raise ChatTemplateError(f"chat template attempted an unsafe operation: {e}") from e
    except jinja2.UndefinedError as e:
        raise ChatTemplateError(f"chat template used an undefined value: {e}") from e
    except jinja2.TemplateError as e:
        raise ChatTemplateError(f"chat template failed: {e}") from e
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, ZeroDivisionError,
            OverflowError, RecursionError) as e:
        # Operations inside the template on the caller's data (e.g. 'a' + None).
        raise ChatTemplateError(f"chat template failed: {type(e).__name__}: {e}") from e


def template_from_metadata(metadata: Mapping[str, Any], name: str | None = None) -> str | None:
    """The chat template stored in GGUF metadata, or None when there is none.

    name selects a named variant (`tokenizer.chat_template.<name>`, e.g. "tool_use"), which
    llama.cpp's converter writes when a model ships several templates.
    """
    key = "tokenizer.chat_template" + (f".{name}" if name else "")
    value = metadata.get(key)
    return value if isinstance(value, str) and value else None
