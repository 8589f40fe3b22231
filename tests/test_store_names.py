"""Model names and blob digests (store/names.py): Ollama's defaults and rules, and nothing that
could leave the store."""
from __future__ import annotations

import pytest

from ggsight.errors import InvalidArgumentError
from ggsight.store.names import ModelName, blob_file_name, parse_name


@pytest.mark.parametrize("text, parts", [
    ("gemma3", ("registry.ollama.ai", "library", "gemma3", "latest")),
    ("gemma3:270m", ("registry.ollama.ai", "library", "gemma3", "270m")),
    ("library/gemma3:latest", ("registry.ollama.ai", "library", "gemma3", "latest")),
    ("me/my-model.v2", ("registry.ollama.ai", "me", "my-model.v2", "latest")),
    ("hf.co/unsloth/gemma-3-4b-it-GGUF:Q4_K_M", ("hf.co", "unsloth", "gemma-3-4b-it-GGUF", "Q4_K_M")),
    ("localhost:5000/team/model:v1.0", ("localhost:5000", "team", "model", "v1.0")),
    ("  padded  ", ("registry.ollama.ai", "library", "padded", "latest")),
])
def test_names_get_ollamas_defaults(text, parts):
    assert parse_name(text).parts == parts


def test_short_form():
    assert parse_name("gemma3").short == "gemma3:latest"
    assert parse_name("me/m:q4").short == "me/m:q4"
    assert parse_name("hf.co/u/r:Q8_0").short == "hf.co/u/r:Q8_0"
    assert str(parse_name("gemma3")) == "registry.ollama.ai/library/gemma3:latest"
    assert parse_name("x") == ModelName("registry.ollama.ai", "library", "x", "latest")


@pytest.mark.parametrize("text, says", [
    ("", "empty"),
    ("   ", "empty"),
    ("a/b/c/d", "4 parts"),
    ("../../etc/passwd", "4 parts"),
    ("../etc/passwd", "host '..'"),
    ("library/..", "model '..'"),
    ("/abs/model", "host is empty"),
    ("model:", "tag is empty"),
    ("ns.dots/model", "namespace 'ns.dots'"),
    ("model:-bad", "tag '-bad'"),
    ("-model", "model '-model'"),
    ("mo del", "model 'mo del'"),
    ("a\\b", "model 'a\\\\b'"),
    ("m" * 81, "at most 80"),
])
def test_bad_names_are_refused_by_part(text, says):
    with pytest.raises(InvalidArgumentError) as err:
        parse_name(text)
    assert says in str(err.value)


def test_blob_digests():
    hexd = "0123456789abcdef" * 4
    assert blob_file_name(f"sha256:{hexd}") == f"sha256-{hexd}"
    assert blob_file_name(f"sha256-{hexd}") == f"sha256-{hexd}"
    for bad in (f"sha256:{hexd.upper()}", f"sha512:{hexd}", f"sha256:{hexd[:-1]}", f"sha256:../{hexd}",
                f"sha256:{hexd}/x", "", None):
        with pytest.raises(InvalidArgumentError, match="invalid blob digest"):
            blob_file_name(bad)
