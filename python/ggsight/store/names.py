"""Model names and blob digests as Ollama writes them, checked before they touch the filesystem.

A name is `[host/][namespace/]model[:tag]` with defaults `registry.ollama.ai`, `library` and
`latest` (Ollama's types/model/name.go), so `phi4`, `library/phi4:latest` and
`registry.ollama.ai/library/phi4:latest` are one model, and `hf.co/USER/REPO:Q4_K_M` names a
Hugging Face file. Each part must be a plain path component: Ollama's CVE-2024-37032 was a
digest that walked out of the store, so nothing here can produce `..`, a separator or an
absolute part.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import InvalidArgumentError

DEFAULT_HOST = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
DEFAULT_TAG = "latest"

# Ollama's rules per part: a letter, digit or underscore first, then those and '-', '_', '.'
# (not in a namespace) and ':' (only a host's port); hosts up to 350 characters, the rest 80.
_PART = {
    "host": (re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,349}"), "letters, digits, '_', '-', '.' and a :port; at most 350"),
    "namespace": (re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,79}"), "letters, digits, '_' and '-'; at most 80"),
    "model": (re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,79}"), "letters, digits, '_', '-' and '.'; at most 80"),
    "tag": (re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,79}"), "letters, digits, '_', '-' and '.'; at most 80"),
}
_DIGEST = re.compile(r"sha256[:-]([0-9a-f]{64})")


@dataclass(frozen=True)
class ModelName:
    host: str
    namespace: str
    model: str
    tag: str

    def __str__(self) -> str:
        return f"{self.host}/{self.namespace}/{self.model}:{self.tag}"

    @property
    def short(self) -> str:
        """As `ollama list` shows it: the default host and namespace left out, the tag kept."""
        if self.host == DEFAULT_HOST and self.namespace == DEFAULT_NAMESPACE:
            return f"{self.model}:{self.tag}"
        if self.host == DEFAULT_HOST:
            return f"{self.namespace}/{self.model}:{self.tag}"
        return str(self)

    @property
    def parts(self) -> tuple[str, str, str, str]:
        """host, namespace, model, tag: the manifest's path under manifests/."""
        return self.host, self.namespace, self.model, self.tag


def parse_name(text: str) -> ModelName:
    """`[host/][namespace/]model[:tag]` -> ModelName with the defaults filled in; a name that
    breaks the rules raises InvalidArgumentError saying which part and why."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidArgumentError("a model name is empty; give one like 'phi4' or 'library/phi4:latest'")
    name = text.strip()
    path, tag = name, DEFAULT_TAG
    slash, colon = name.rfind("/"), name.rfind(":")
    if colon > slash:
        path, tag = name[:colon], name[colon + 1:]
    pieces = path.split("/")
    if len(pieces) > 3:
        raise InvalidArgumentError(f"model name {text!r} has {len(pieces)} parts; at most host/namespace/model[:tag]")
    host, namespace = DEFAULT_HOST, DEFAULT_NAMESPACE
    if len(pieces) == 3:
        host, namespace, model = pieces
    elif len(pieces) == 2:
        namespace, model = pieces
    else:
        (model,) = pieces
    for kind, value in (("host", host), ("namespace", namespace), ("model", model), ("tag", tag)):
        if not value:
            raise InvalidArgumentError(f"model name {text!r}: the {kind} is empty")
        pattern, allowed = _PART[kind]
        if not pattern.fullmatch(value):  # a first character that is not '.' also rules out '.' and '..'
            raise InvalidArgumentError(f"model name {text!r}: {kind} {value!r} is not allowed ({allowed} characters, "
                                       "starting with a letter, digit or '_')")
    return ModelName(host, namespace, model, tag)


def blob_file_name(digest: str) -> str:
    """`sha256:<hex>` or `sha256-<hex>` -> `sha256-<hex>`, the blob's file name; anything else
    (another algorithm, upper case, a path) raises InvalidArgumentError."""
    match = _DIGEST.fullmatch(digest) if isinstance(digest, str) else None
    if not match:
        raise InvalidArgumentError(f"invalid blob digest {digest!r}: expected sha256:<64 lowercase hex digits>")
    return f"sha256-{match.group(1)}"
