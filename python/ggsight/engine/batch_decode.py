"""The decode loop: what each cache sequence holds, and decode steps of one or several
sequences run together (one token of each per micro-batch), each sampled and stopped on its own."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from ..errors import InvalidArgumentError
from ..text.stops import StopMatcher
from ..text.tokenizer import StreamDecoder
from .positions import text_positions
from .sampler import Sampler, SamplingParams


@dataclass
class SequenceState:
    """One sequence of the cache: what its cells hold (for prefix reuse) and its M-RoPE offset."""
    index: int                                 # the cache sequence id (its region of cells)
    keys: list = field(default_factory=list)   # token ids, (id, image hash, row) for image tokens
    rope_offset: int = 0                       # M-RoPE: position minus sequence index after the prompt
    last_reused: int = 0                       # prompt tokens the last prefill found cached


class Stream:
    """One sequence being generated: its sampler, history, text so far and why it ended."""

    def __init__(self, seq: SequenceState, ids, logits, params: SamplingParams, n_vocab: int, budget: int,
                 stops, tokenizer, t_start: int, t_prompt: int):
        self.seq, self.history, self.logits = seq, list(ids), logits
        self.n_prompt = len(ids)
        self.sampler = Sampler(params, n_vocab)   # its own sampler: draws as it would alone
        self.budget = budget
        self.tokens: list[int] = []
        self.decoder = StreamDecoder(tokenizer, skip_special=True)
        self.matcher = StopMatcher(stops or [])
        self.pieces: list[str] = []               # the text, as decoded step by step
        self.done_reason: str | None = None
        self.hit_stop_string = False
        self.t_start, self.t_prompt, self.t_end = t_start, t_prompt, 0

    def step(self, n_ctx: int, eog_ids) -> bool:
        """Sample the next token; True when it must be evaluated. Ends (reason "stop") on an
        end-of-generation token or a stop string, ("length") at the budget or the context's end."""
        if not (len(self.tokens) < self.budget and len(self.history) < n_ctx):
            return self._finish("length")
        token = self.sampler.sample(self.logits, self.history)
        if token in eog_ids:
            return self._finish("stop")
        self.tokens.append(token)
        self.history.append(token)
        text, self.hit_stop_string = self.matcher.push(self.decoder.push(token))
        self.pieces.append(text)
        if self.hit_stop_string:
            return self._finish("stop")
        if len(self.tokens) < self.budget:
            return True
        return self._finish("length")

    def _finish(self, reason: str) -> bool:
        self.done_reason = reason
        if not self.hit_stop_string:
            tail, _ = self.matcher.push(self.decoder.flush())
            self.pieces.append(tail + self.matcher.flush())
        self.t_end = time.perf_counter_ns()
        return False

    def response(self, kind, load_duration: int = 0, with_text: bool = False):
        """The final response (`kind`: GenerateResponse or ChatResponse), with its text or none."""
        # as Ollama: prompt tokens actually evaluated (a reused prefix costs nothing)
        r = kind(done=True, done_reason=self.done_reason, tokens=self.tokens, load_duration=load_duration,
                 prompt_eval_count=self.n_prompt - self.seq.last_reused, eval_count=len(self.tokens),
                 total_duration=self.t_end - self.t_start, prompt_eval_duration=self.t_prompt - self.t_start,
                 eval_duration=self.t_end - self.t_prompt)
        if with_text:
            r.set_text("".join(self.pieces))
        return r


def batch_images(prompts, images, n_seq: int) -> tuple[list, list]:
    """The prompts of a batch and one image list (or None) per prompt; refuses a batch the cache
    has no room for."""
    prompts = list(prompts)
    if not prompts or len(prompts) > n_seq:
        raise InvalidArgumentError(f"generate_batch takes 1 to {n_seq} prompts (the model's n_seq), got "
                                   f"{len(prompts)}" + (": load the model with a larger n_seq" if prompts else ""))
    images = [None] * len(prompts) if images is None else list(images)
    if len(images) != len(prompts):
        raise InvalidArgumentError(f"images needs one entry (a list or None) per prompt: {len(prompts)} prompts, "
                                   f"{len(images)} entries")
    return prompts, images


def decode_together(runner, streams: list[Stream], n_ctx: int, eog_ids, mrope: bool) -> Iterator[tuple]:
    """Until every stream ends: sample each active one, then evaluate all their new tokens in
    one micro-batch (each at its own position in its own sequence; every row is an output).
    Yields (stream, text) as text arrives, so one stream's caller can pass it on."""
    active = list(streams)
    while True:
        still = []
        for s in active:
            n_pieces = len(s.pieces)
            if s.step(n_ctx, eog_ids):
                still.append(s)
            text = "".join(s.pieces[n_pieces:])
            if text:
                yield s, text
        active = still
        if not active:
            return
        tokens = [s.history[-1] for s in active]
        positions = [len(s.history) - 1 for s in active]
        seqs = [s.seq.index for s in active]
        rope = np.concatenate([text_positions(p, 1, s.seq.rope_offset) for p, s in zip(positions, active)],
                              axis=1) if mrope else None
        logits = runner.decode(tokens, positions, list(range(len(active))), rope_positions=rope, seqs=seqs)
        for row, s in zip(logits, active):
            s.logits = row
            s.seq.keys.append(s.history[-1])
