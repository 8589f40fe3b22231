"""What a loaded model's cache sequences hold between calls, and how a new prompt meets it:
prompt assembly (text and images -> token ids and image chunks), positions (1-D, or M-RoPE grids
from each chunk), and prefix reuse (the longest common prefix of tokens and image keys is not
evaluated again)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import InvalidArgumentError
from .batch_decode import SequenceState
from .image_prompt import ImageChunk, expand_images
from .positions import mrope_positions

# Where an image goes in a raw prompt (one marker per image); chat templates place images themselves.
IMAGE = "<__ggsight_image__>"


@dataclass
class Prompt:
    """A prompt as the cache sees it: token ids (image positions carry the image token id) and
    the image chunks that replace those positions' embeddings."""
    ids: list[int]
    chunks: list[ImageChunk]

    def cache_keys(self) -> list:
        """What each position holds, for prefix reuse: the token id, or (id, image key, row)."""
        keys: list = list(self.ids)
        for chunk in self.chunks:
            for j in range(len(chunk)):
                keys[chunk.first + j] = (self.ids[chunk.first + j], chunk.key, j)
        return keys

    def images_from(self, n: int) -> list[tuple[int, np.ndarray]]:
        """(index in ids[n:], embeddings) of the image rows at or after position n."""
        return [(max(c.first - n, 0), c.embeddings[max(0, n - c.first):]) for c in self.chunks if c.end > n]

    def rope_positions(self) -> tuple[np.ndarray, int]:
        """[4, n] M-RoPE positions, and the offset of what follows (see positions.py)."""
        return mrope_positions(len(self.ids), [(c.first, *c.grid) for c in self.chunks])


class Conversation:
    """The state of every cache sequence of one model, and the prompts run against them."""

    def __init__(self, net, images, tokenizer, runner, cache, image_cache, sched, n_ctx: int, n_seq: int):
        self.net, self.images, self.tokenizer = net, images, tokenizer
        self.runner, self.cache, self.image_cache, self.sched = runner, cache, image_cache, sched
        self.n_ctx = n_ctx
        self.sequences = [SequenceState(i) for i in range(n_seq)]  # what each cache sequence holds
        self.image_encodes = 0         # vision tower runs (a cached image costs none)

    @property
    def n_vocab(self) -> int:
        return self.net.n_vocab

    @property
    def mrope(self) -> bool:
        return getattr(self.net, "rope_sections", None) is not None

    @property
    def bidirectional_images(self) -> bool:
        return bool(self.images and self.images.bidirectional)

    # ---- prompt assembly -------------------------------------------------------------
    def token_ids(self, prompt) -> list[int]:
        ids = self.tokenizer.encode(prompt) if isinstance(prompt, str) else [int(t) for t in prompt]
        if not ids:
            raise InvalidArgumentError("the prompt is empty")
        if len(ids) >= self.n_ctx:
            raise InvalidArgumentError(f"the prompt has {len(ids)} tokens; the context holds {self.n_ctx}")
        bad = [t for t in ids if not 0 <= t < self.n_vocab]
        if bad:
            raise InvalidArgumentError(f"token ids out of range: {bad[:5]}")
        return ids

    def prompt(self, prompt, images: Sequence | None = None, max_image_tokens: int | None = None) -> Prompt:
        """Token ids and image chunks of a text prompt (IMAGE marks where each image goes) or of token ids."""
        images = list(images or [])
        if not images:
            text = prompt.replace(IMAGE, "") if isinstance(prompt, str) else prompt
            return Prompt(self.token_ids(text), [])
        if self.images is None:
            raise InvalidArgumentError("this model was loaded without a vision projector: pass mmproj=... to load()")
        if not isinstance(prompt, str):
            raise InvalidArgumentError("images need a text prompt (token ids cannot mark where they go)")
        ids, chunks, encoded = expand_images(self.images, prompt.replace(IMAGE, self.images.marker), images,
                                             self.token_ids, self.image_cache, self.sched, max_image_tokens)
        self.image_encodes += encoded
        return Prompt(ids, chunks)

    # ---- positions -------------------------------------------------------------------
    def _rope_positions(self, prompt: Prompt, seq: SequenceState) -> np.ndarray | None:
        """[4, len(ids)] M-RoPE positions of a whole prompt (None for 1-D rope models); the
        sequence's offset for what comes after it is kept with the sequence."""
        if not self.mrope:
            return None
        pos, seq.rope_offset = prompt.rope_positions()
        return pos

    # ---- evaluation ------------------------------------------------------------------
    def evaluate(self, prompt: Prompt) -> np.ndarray:
        """Logits of every position [n_tokens, n_vocab], from an empty sequence 0."""
        seq = self.sequences[0]
        self.cache.clear(0)
        seq.keys = []
        logits = self.runner.evaluate(prompt.ids, 0, all_logits=True, images=prompt.images_from(0),
                                      bidirectional=self.bidirectional_images,
                                      rope_positions=self._rope_positions(prompt, seq))
        seq.keys = prompt.cache_keys()
        return logits

    def prefill(self, prompt: Prompt, index: int = 0) -> np.ndarray:
        """Logits after the prompt in sequence `index`, evaluating only what it does not already hold."""
        seq = self.sequences[index]
        ids, keys = prompt.ids, prompt.cache_keys()
        cached = seq.keys
        n = 0
        while n < min(len(cached), len(ids) - 1) and cached[n] == keys[n]:
            n += 1
        # never resume inside an image whose tokens must be evaluated together
        for chunk in prompt.chunks if self.bidirectional_images else ():
            if chunk.first < n < chunk.end:
                n = chunk.first
        if n < len(cached) and not self.cache.truncate(n, index):
            n = 0
        if n == 0:
            self.cache.clear(index)
        seq.last_reused = n
        seq.keys = []
        rope = self._rope_positions(prompt, seq)
        logits = self.runner.evaluate(ids[n:], n, images=prompt.images_from(n), bidirectional=self.bidirectional_images,
                                      rope_positions=None if rope is None else rope[:, n:], seq=index)[-1]
        seq.keys = keys
        return logits
