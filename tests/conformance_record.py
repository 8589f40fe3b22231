"""Shared by the tests/make_conformance_<arch>.py scripts: convert with `ggsight convert`, run
transformers on each case, write tests/data/conformance/<arch>/ (read by test_conformance.py)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Callable

import numpy as np

N_GREEDY = 16


def convert(hf_dir: Path, out: Path, mmproj: bool = True) -> None:
    """`ggsight convert` to f32: out/text.gguf, and out/mmproj.gguf unless mmproj=False (text only)."""
    subprocess.run([sys.executable, "-m", "ggsight", "convert", str(hf_dir), "-o", str(out / "text.gguf"),
                    *(["--mmproj", str(out / "mmproj.gguf")] if mmproj else []), "--outtype", "f32", "--quiet"],
                   check=True, stdout=subprocess.DEVNULL)


def case_image(width: int, height: int, seed: int):
    from PIL import Image
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


def _greedy_by_forward(logits_of: Callable, ids, extra: dict, n: int) -> list[int]:
    """Greedy tokens by re-running the whole sequence (for models whose generate() is broken)."""
    import torch
    out = []
    for _ in range(n):
        nxt = int(logits_of(ids, extra)[0, -1].argmax())
        out.append(nxt)
        ids = torch.cat([ids, torch.tensor([[nxt]])], dim=1)
    return out


def record_cases(out: Path, model, cases, hf_inputs: Callable, image_marker: str, tolerance: float = 1e-5,
                 logits_of: Callable | None = None) -> Path:
    """cases: (name, prompt, [(width, height, seed) per image]); hf_inputs(prompt, images) ->
    (input_ids tensor, the other model inputs, extra facts to record). logits_of(ids, extra):
    the model's forward when its own forward/generate cannot be called."""
    import torch
    recorded = []
    for name, prompt, specs in cases:
        images = [case_image(*s) for s in specs]
        files = []
        for k, img in enumerate(images):
            files.append(f"{name}-{k}.png")
            img.save(out / files[-1])
        ids, extra, facts = hf_inputs(prompt, images)
        with torch.no_grad():
            if logits_of is not None:
                logits = logits_of(ids, extra)[0].float().numpy()
                greedy = _greedy_by_forward(logits_of, ids, extra, N_GREEDY)
            else:
                logits = model(input_ids=ids, **extra).logits[0].float().numpy()
                greedy = model.generate(input_ids=ids, **extra, max_new_tokens=N_GREEDY, do_sample=False,
                                        eos_token_id=None)[0, ids.shape[1]:].tolist()
        np.save(out / f"{name}.npy", logits.astype(np.float32))
        recorded.append({"name": name, "prompt": prompt, "images": files, "ids": ids[0].tolist(),
                         "greedy": greedy, **facts})
    import transformers
    # where transformers' generate() would stop (its generation config's end tokens): the
    # greedy tokens above run past them, so an engine that stops there can be checked
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    eos = [] if eos is None else [eos] if isinstance(eos, int) else list(eos)
    (out / "cases.json").write_text(json.dumps({
        "model": "text.gguf", "mmproj": "mmproj.gguf", "image_marker": image_marker,
        "logits_tolerance": tolerance, "transformers_version": transformers.__version__,
        "eos_token_ids": sorted(int(t) for t in eos), "cases": recorded}, indent=1), encoding="utf-8")
    return out
