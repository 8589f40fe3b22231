"""Checks every architecture's image glue makes when it is loaded (not a model of its own)."""
from __future__ import annotations

import dataclasses
from typing import Iterable


def check_pairing(mmproj_gguf, projector_width: int, n_embd_text: int | None, tokenizer,
                  tokens: Iterable[str], model: str) -> None:
    """The mmproj feeds embeddings as wide as the text model's, whose vocabulary has the
    image tokens: otherwise the two files belong to different models."""
    if n_embd_text is not None and projector_width != n_embd_text:
        raise ValueError(f"{mmproj_gguf.path}: the projector makes {projector_width}-wide embeddings but the text "
                         f"model is {n_embd_text} wide: this mmproj belongs to another model")
    for name in tokens:
        if tokenizer.token_id(name) is None:
            raise ValueError(f"the text model's vocabulary has no {name} token: not a {model} vision model")


def check_options(options: dict, config_class, model: str, extra: Iterable[str] = ()) -> None:
    """image_options must name fields of the model's image config (or its `extra` names)."""
    known = {f.name for f in dataclasses.fields(config_class)} | set(extra)
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"image_options {unknown} unknown to {model}; it takes {', '.join(sorted(known))}")
