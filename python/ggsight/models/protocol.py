"""What a model folder provides, as the engine uses it: its MODEL (the text decoder) and its IMAGES
(the image glue between a prompt and the vision tower), as typing.Protocols.

The folders implement them structurally (no base class to inherit); `conformance(cls, protocol)`
lists what a class lacks, method by method with its arguments, and the suite runs it over every
folder found (tests/test_protocol.py). Shapes are in ggml order.
"""
from __future__ import annotations

import inspect
from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class TextModel(Protocol):
    """The text decoder of one architecture (models/<arch>/text.py)."""

    config: Any        # frozen dataclass from the GGUF; the engine reads n_embd, n_layer, head_dim, n_head_kv
    binder: Any        # nn.WeightBinder over its weights (the planner reads .weights)
    n_vocab: int
    # optional: rope_sections, set (not None) by M-RoPE models, whose batches then carry
    # [4, n_tokens] positions that image chunks' grids decide

    def __init__(self, gguf, weights, config=None) -> None:
        """gguf: the text GGUF (or a view of one); weights: its ggml Weights; config: to override the file's."""

    def cache_kinds(self) -> list:
        """One cache.CacheKind per layer (full, window, chunked)."""

    def embed(self, tokens) -> Any:
        """Token ids i32 [n_tokens] -> the decoder's input embeddings [n_embd, n_tokens]."""

    def forward(self, inp, cache, embeddings=None) -> Any:
        """cache.BatchInputs of a micro-batch + the KV cache -> logits [n_vocab, n_outputs]
        (named "result_output"); embeddings: inputs instead of embed(inp.tokens)."""


@runtime_checkable
class ImageGlue(Protocol):
    """How one vision family puts images into prompts (models/<arch>/images.py): an image becomes
    one or more views, each a run of image tokens whose embeddings the tower makes."""

    marker: str            # the text that marks an image in a prompt (what chat templates write)
    bidirectional: bool    # an image's tokens attend to each other both ways: never split across batches
    largest_group: int     # tokens that must share one micro-batch (0: images may split anywhere)
    image_token: str       # the token each image position carries
    image_token_id: int
    vision: Any            # the tower; the planner reads vision.binder.weights
    # optional: bind_text_model(net), called at load for glue whose embeddings include rows of
    # the text model's own token table (Mistral 3's [IMG_BREAK] rows)

    def __init__(self, mmproj_gguf, weights, tokenizer, n_embd_text=None, **image_options) -> None:
        """The mmproj GGUF and its Weights, the text model's tokenizer and width (the pairing is
        checked), and load()'s image_options (unknown ones refused)."""

    def pixels(self, image, max_tokens=None) -> Any:
        """An image (path, bytes, PIL, numpy) -> its views, preprocessed as HF's processor does;
        max_tokens: this call's token budget per image, where the family's sizes vary."""

    def layout(self, views) -> str:
        """The prompt text one image's views become (image tokens and their frame)."""

    def tokens_of(self, view) -> int:
        """Image-token positions of one view in the prompt."""

    def grid(self, view) -> tuple[int, int] | None:
        """(rows, cols) of a view's tokens for M-RoPE positions; None for 1-D positions."""

    def largest_view(self) -> np.ndarray:
        """Pixels of the most costly view to encode (zeros): what the memory planner reserves."""

    def embed(self, sched, pixels) -> np.ndarray:
        """One view's pixels -> embeddings [n, n_embd_text] (numpy order) through the tower on
        `sched` (the planner passes a scheduler that only reserves: then whatever it returns)."""


_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def _calls(method) -> list[tuple[list[str], dict]]:
    """The calls the engine may make of a protocol method: its required arguments by position,
    with each optional one by name, and with an unknown keyword where it takes **kwargs."""
    params = list(inspect.signature(method).parameters.values())[1:]   # without self
    required = [p.name for p in params if p.kind in _POSITIONAL and p.default is p.empty]
    calls = [(required, {})]
    calls += [(required, {p.name: None}) for p in params if p.kind in _POSITIONAL and p.default is not p.empty]
    calls += [(required, {"some_option": None}) for p in params if p.kind == inspect.Parameter.VAR_KEYWORD]
    return calls


def conformance(cls, protocol) -> list[str]:
    """What `cls` lacks to satisfy `protocol` structurally: each protocol method must exist and
    accept every call _calls() names (checked by binding them to its signature). Attributes set in
    __init__ are not seen here."""
    problems = []
    for name, member in vars(protocol).items():
        if not inspect.isfunction(member) or (name.startswith("_") and name != "__init__"):
            continue
        impl = getattr(cls, name, None)
        if not callable(impl):
            problems.append(f"{cls.__name__}.{name}() is missing")
            continue
        signature = inspect.signature(impl)
        for args, kwargs in _calls(member):
            try:
                signature.bind(None, *args, **kwargs)   # None for self
            except TypeError as e:
                call = ", ".join([*args, *(f"{k}=..." for k in kwargs)])
                problems.append(f"{cls.__name__}.{name}({call}): {e}")
    for attr in ("marker", "bidirectional", "largest_group") if protocol is ImageGlue else ():
        if not hasattr(cls, attr):   # class attributes (or properties) the engine reads
            problems.append(f"{cls.__name__}.{attr} is not declared on the class")
    return problems
