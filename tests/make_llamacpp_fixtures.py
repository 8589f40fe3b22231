"""GGUF pairs written by llama.cpp's own converter, with transformers' reference (needs torch +
transformers).

For each architecture the tiny random checkpoint of the conformance scripts is converted by
llama.cpp's `convert_hf_to_gguf.py` with llama.cpp's own gguf-py (a subprocess; text GGUF and
`--mmproj`, outtype f32), both taken from the llama-cpp-python sdist pinned in vendor/ggml/PIN
(GGSIGHT_GGML_SDIST or pip download, sha256 checked, as vendor/ggml/fetch.py does). transformers'
float32 logits at every position and its greedy tokens are recorded for a text prompt and an
image prompt into tests/data/llamacpp/<arch>/ (cases.json in test_conformance.py's format), which
tests/test_llamacpp_files.py reads without torch.

What the tiny models change so that llama.cpp's converter takes them (the converter itself is
run unchanged):
  - files a Hub checkpoint has and the tiny ones leave out: Gemma 3's tokenizer.model (a
    SentencePiece model equal to its tokenizer.json) and preprocessor_config.json (its
    image_seq_length gives the pooling llama.cpp writes), Qwen2.5-VL's preprocessor_config.json;
  - Gemma 3's vision tower under the Hub's `vision_tower.vision_model.` (transformers 5 drops it);
  - config values llama.cpp's files cannot express: Gemma 3's query_pre_attn_scalar = head_dim
    (llama.cpp derives the scale) and no final_logit_softcapping (llama.cpp writes the text
    config's value, which transformers' Gemma3ForConditionalGeneration does not apply);
    Qwen2.5-VL's full-attention blocks every 2nd (n_wa_pattern) and its 112 px window (clip.cpp's
    fixed value); Llama 4's chunk 8192, floor_scale 8192 and attn_scale 0.1 (llama.cpp's fixed
    values), its vision rope theta 10000 and tile budget 16 (clip.cpp's and HF's defaults) and 3
    vision layers (its name table numbers the adapter's fc2 like a block).
One thing no tiny model can satisfy: llama.cpp names a BPE pre-tokenizer by hashing the ids a
tokenizer gives for a test text, which only the real 150k-token vocabularies produce. Where the
hash is unknown, the converter is told the name the real checkpoint's hash gives ("qwen2",
"llama4"); everything else it computes itself.

The Gemma 3 checkpoint is also written as one file in Ollama's layout (tensor names and keys of
Ollama's converter, read from its source, not from ggsight's own rename table), into
tests/data/llamacpp/gemma3-ollama/model.gguf; it is checked against the same recording.

    python tests/make_llamacpp_fixtures.py [ARCH ...]     (default: all three)
"""
from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "vendor" / "ggml"))
from conformance_record import record_cases  # noqa: E402

OUT = HERE / "data" / "llamacpp"
_PARTS = ("convert_hf_to_gguf.py", "conversion/", "gguf-py/", "LICENSE")

# run as `python -c _RUNNER TREE PRE ARGS...`: llama.cpp's converter, with the pre-tokenizer
# name PRE where its hash table does not know the tiny vocabulary
_RUNNER = r"""
import runpy, sys
tree, pre = sys.argv[1], sys.argv[2]
sys.path[:0] = [tree, tree + "/gguf-py"]
from conversion import base
known = base.TextModel.get_vocab_base_pre
def get_vocab_base_pre(self, tokenizer):
    try:
        return known(self, tokenizer)
    except NotImplementedError:
        if pre == "-":
            raise
        return pre
base.TextModel.get_vocab_base_pre = get_vocab_base_pre
sys.argv = [tree + "/convert_hf_to_gguf.py", *sys.argv[3:]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def llamacpp_tree(work: Path) -> Path:
    """llama.cpp's converter and gguf-py from the pinned sdist, unpacked under work."""
    import fetch
    pin = fetch.read_pin()
    sdist = fetch.obtain_sdist(pin, work)
    top = f"{pin['package'].replace('-', '_')}-{pin['package_version']}/vendor/llama.cpp/"
    with tarfile.open(sdist, "r:gz") as tar:
        members = []
        for m in tar.getmembers():
            rest = m.name[len(top):] if m.name.startswith(top) else None
            if rest and (m.isfile() or m.isdir()) and any(rest == p or rest.startswith(p) for p in _PARTS):
                m.name = rest
                members.append(m)
        tar.extractall(work / "llama.cpp", members=members, filter="data")
    return work / "llama.cpp"


def convert_llamacpp(tree: Path, hf_dir: Path, out: Path, pre: str = "-", mmproj: bool = True) -> None:
    """text.gguf and (mmproj=True) mmproj.gguf in out, f32, by llama.cpp's converter."""
    import os
    env = {**os.environ, "PYTHONPATH": str(tree / "gguf-py")}
    for mmproj, name in ((False, "text.gguf"), (True, "mmproj.gguf"))[:2 if mmproj else 1]:
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, "-c", _RUNNER, str(tree), pre, str(hf_dir), "--outtype", "f32",
                   "--outfile", str(Path(tmp) / name), *(["--mmproj"] if mmproj else [])]
            subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
            written, = Path(tmp).glob("*.gguf")   # --mmproj prefixes the name with "mmproj-"
            written.replace(out / name)


# ------------------------------------------------------------------ what the tiny models add

def _relayout(hf_dir: Path, old: str, new: str) -> None:
    """Tensor names starting with `old` renamed to start with `new`, in place."""
    from safetensors.numpy import load_file, save_file
    path = hf_dir / "model.safetensors"
    tensors = load_file(str(path))
    save_file({(new + k[len(old):] if k.startswith(old) else k): v for k, v in tensors.items()}, str(path),
              metadata={"format": "pt"})


def _sentencepiece_model(tj: dict, path: Path) -> None:
    """A SentencePiece BPE model with tokenizer.json's pieces, ids and kinds; scores rank pieces
    by id, the order in which the tiny tokenizer's merges are ranked."""
    from sentencepiece import sentencepiece_model_pb2 as pb
    vocab = {**tj["model"]["vocab"], **{t["content"]: t["id"] for t in tj["added_tokens"]}}
    special = {t["content"] for t in tj["added_tokens"] if t["special"]}
    unk = tj["model"]["unk_token"]
    m = pb.ModelProto()
    P = pb.ModelProto.SentencePiece
    for tok, i in sorted(vocab.items(), key=lambda kv: kv[1]):
        kind = (P.UNKNOWN if tok == unk else P.CONTROL if tok in special
                else P.BYTE if tok.startswith("<0x") and len(tok) == 6 else P.NORMAL)
        m.pieces.add(piece=tok, score=-float(i) if kind == P.NORMAL else 0.0, type=kind)
    ids = {t: vocab[t] for t in ("<unk>", "<bos>", "<eos>", "<pad>")}
    m.trainer_spec.model_type = pb.TrainerSpec.BPE
    m.trainer_spec.vocab_size = len(vocab)
    m.trainer_spec.byte_fallback = True
    m.trainer_spec.unk_id, m.trainer_spec.bos_id = ids["<unk>"], ids["<bos>"]
    m.trainer_spec.eos_id, m.trainer_spec.pad_id = ids["<eos>"], ids["<pad>"]
    m.normalizer_spec.name = "identity"
    m.normalizer_spec.add_dummy_prefix = False
    m.normalizer_spec.remove_extra_whitespaces = False
    m.normalizer_spec.escape_whitespaces = True
    path.write_bytes(m.SerializeToString())


def _write_json(path: Path, obj: dict) -> None:
    path.write_text(json.dumps(obj), encoding="utf-8")


# ------------------------------------------------------------------ Ollama's single file

# Ollama's convert/convert_gemma3.go (v0.24.0, the last release with its Go engine): its HF ->
# GGUF name replacements, applied as Go's strings.Replacer does (left to right; where several
# match at one place, the first listed wins)
OLLAMA_GEMMA3_REPLACEMENTS = [
    ("lm_head", "output"), ("model.embed_tokens", "token_embd"), ("model.norm", "output_norm"),
    ("vision_tower.vision_model.embeddings", "v"), ("vision_tower.vision_model", "v"),
    ("vision_model.vision_model.embeddings", "v"), ("vision_model.vision_model", "v"),
    ("language_model.", ""), ("model.layers", "blk"), ("encoder.layers", "blk"),
    ("input_layernorm", "attn_norm"), ("self_attn.q_proj", "attn_q"), ("self_attn.q_norm", "attn_q_norm"),
    ("self_attn.k_proj", "attn_k"), ("self_attn.k_norm", "attn_k_norm"), ("self_attn.v_proj", "attn_v"),
    ("self_attn.o_proj", "attn_output"), ("self_attn.out_proj", "attn_output"), ("mlp.gate_proj", "ffn_gate"),
    ("mlp.down_proj", "ffn_down"), ("mlp.up_proj", "ffn_up"), ("post_attention_layernorm", "post_attention_norm"),
    ("pre_feedforward_layernorm", "ffn_norm"), ("post_feedforward_layernorm", "post_ffw_norm"),
    ("input_projection_weight", "input_projection.weight"), ("multi_modal_projector", "mm"),
]


def ollama_name(hf_name: str, table=OLLAMA_GEMMA3_REPLACEMENTS) -> str:
    out, i = [], 0
    while i < len(hf_name):
        hit = next(((old, new) for old, new in table if hf_name.startswith(old, i)), None)
        out.append(hit[1] if hit else hf_name[i])
        i += len(hit[0]) if hit else 1
    return "".join(out)


def write_ollama_gemma3(hf_dir: Path, llamacpp_text: Path, path: Path) -> None:
    """The checkpoint as Ollama's converter lays out a Gemma3ForConditionalGeneration: one file,
    its tensor names, its keys (the `gemma3.vision.*` / `gemma3.mm.tokens_per_image` of its KV()),
    its value change (+1 on norms outside `v.`). The tokenizer.ggml.* keys, which Ollama names as
    llama.cpp does, are copied from llama.cpp's text GGUF of the same checkpoint."""
    import gguf
    import numpy as np
    from safetensors.numpy import load_file

    from ggsight.ggml import GGUFFile
    cfg = json.loads((hf_dir / "config.json").read_text())
    tc, vc = cfg["text_config"], cfg["vision_config"]
    path.parent.mkdir(parents=True, exist_ok=True)
    w = gguf.GGUFWriter(str(path), "gemma3")
    w.add_uint32("general.file_type", 0)
    for key, value in {
            "block_count": tc["num_hidden_layers"], "attention.head_count": tc["num_attention_heads"],
            "attention.head_count_kv": tc["num_key_value_heads"], "context_length": 131072,
            "embedding_length": tc["hidden_size"], "feed_forward_length": tc["intermediate_size"],
            "attention.sliding_window": tc["sliding_window"], "vision.block_count": vc["num_hidden_layers"],
            "vision.embedding_length": vc["hidden_size"], "vision.feed_forward_length": vc["intermediate_size"],
            "vision.image_size": vc["image_size"], "vision.patch_size": vc["patch_size"], "vision.num_channels": 3,
            "vision.attention.head_count": vc["num_attention_heads"], "attention.key_length": tc["head_dim"],
            "attention.value_length": tc["head_dim"], "mm.tokens_per_image": cfg["mm_tokens_per_image"]}.items():
        w.add_uint32(f"gemma3.{key}", int(value))
    w.add_float32("gemma3.vision.attention.layer_norm_epsilon", vc.get("layer_norm_eps", 1e-6))
    # the key Ollama's runtime reads for linear rope scaling (model_text.go), which its converter
    # leaves out for the multimodal models (and Ollama then sets 8 by layer count)
    w.add_float32("gemma3.rope.scaling.factor", float(tc["rope_parameters"]["full_attention"]["factor"]))
    text = GGUFFile.open(llamacpp_text)
    for key, value in text.metadata.items():
        if key.startswith("tokenizer."):
            vtype = text.metadata_types[key]
            if vtype == gguf.GGUFValueType.ARRAY:
                w.add_array(key, value.tolist() if hasattr(value, "tolist") else list(value))
            else:
                w.add_key_value(key, value.item() if hasattr(value, "item") else value, vtype)
    for hf_name, data in load_file(str(hf_dir / "model.safetensors")).items():
        if ".head." in hf_name:   # SigLIP's pooling head: in the tiny model, not in released ones
            continue
        name = ollama_name(hf_name)
        data = data.astype(np.float32)
        if not name.startswith("v.") and name.endswith("_norm.weight"):
            data = data + np.float32(1.0)
        # Ollama writes 2-D weights f16 by default; this one so, to hold what llama.cpp's f32
        # file holds (its f16 input projection), so that one recording serves both
        if name == "mm.mm_input_projection.weight":
            data = data.astype(np.float16)
        w.add_tensor(name, data)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


# ------------------------------------------------------------------ the three architectures

def gemma3(hf_dir: Path):
    import make_conformance_gemma3 as conf
    import torch
    model, processor = conf.build_hf(hf_dir, text={"query_pre_attn_scalar": 8, "final_logit_softcapping": None})
    # llama.cpp stores this one matrix f16 even in an f32 file (its issue 13025); the reference is
    # the checkpoint as the file holds it
    with torch.no_grad():
        proj = model.model.multi_modal_projector.mm_input_projection_weight
        proj.copy_(proj.to(torch.float16).to(torch.float32))
    _relayout(hf_dir, "vision_tower.", "vision_tower.vision_model.")
    _sentencepiece_model(json.loads((hf_dir / "tokenizer.json").read_text(encoding="utf-8")),
                         hf_dir / "tokenizer.model")
    _write_json(hf_dir / "preprocessor_config.json", {
        "image_processor_type": "Gemma3ImageProcessor", "image_seq_length": 16, "size": {"height": 56, "width": 56},
        "image_mean": [0.5] * 3, "image_std": [0.5] * 3})

    def hf_inputs(prompt, images):
        inputs = processor(text=prompt, images=images or None, return_tensors="pt")
        extra = {} if not images else {"pixel_values": inputs["pixel_values"], "token_type_ids": inputs["token_type_ids"]}
        return inputs["input_ids"], extra, {}
    cases = [c for c in conf.CASES if c[0] in ("text_longer_than_window", "two_images_different_sizes")]
    return model, cases, hf_inputs, None, "<start_of_image>", "-"


def qwen25vl(hf_dir: Path):
    import make_conformance_qwen25vl as conf
    from make_tiny_hf_qwen25vl import make_tiny_hf_qwen25vl
    model = make_tiny_hf_qwen25vl(hf_dir, vision={"fullatt_block_indexes": [1, 3], "window_size": 112})
    _write_json(hf_dir / "preprocessor_config.json", {
        "image_processor_type": "Qwen2VLImageProcessor", "patch_size": 14, "merge_size": 2, "temporal_patch_size": 2,
        "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711]})

    def hf_inputs(prompt, images):
        got = conf.hf_inputs(hf_dir, prompt, images)
        extra = {k: got[k] for k in ("pixel_values", "image_grid_thw", "mm_token_type_ids") if k in got}
        return got["input_ids"], extra, {"grids": got["image_grid_thw"].tolist() if images else []}
    cases = [c for c in conf.CASES if c[0] in ("text_only", "one_image_non_square")]
    return model, cases, hf_inputs, None, conf.IMAGE, "qwen2"


# what llama.cpp hard-codes for every Llama 4 file (its files carry no such keys)
_LLAMA4_RELEASED = {"attention_chunk_size": 8192, "floor_scale": 8192, "attn_scale": 0.1}
_LLAMA4_VISION_ROPE = {"rope_type": "default", "rope_theta": 10_000.0}


def llama4(hf_dir: Path):
    import make_conformance_llama4 as conf
    from make_tiny_hf_llama4 import make_tiny_hf_llama4
    model = make_tiny_hf_llama4(hf_dir, vision={"num_hidden_layers": 3, "rope_parameters": _LLAMA4_VISION_ROPE},
                                text=_LLAMA4_RELEASED)
    pre = json.loads((hf_dir / "preprocessor_config.json").read_text())
    _write_json(hf_dir / "preprocessor_config.json", {**pre, "max_patches": 16})   # HF's default: no key says it
    hf_inputs, logits_of = conf.case_inputs(model, hf_dir)
    cases = [c for c in conf.CASES if c[0] in ("text_several_chunks", "image_2x2_grid")]
    return model, cases, hf_inputs, logits_of, conf.IMAGE, "llama4"


# ------------------------------------------------------------------ text-only architectures
# (their builders return image marker None: no mmproj, no image case)

def gemma2(hf_dir: Path):
    import make_conformance_gemma2 as conf
    # query_pre_attn_scalar = head_dim: what llama.cpp derives for a model that is not 27B-sized
    model, tok = conf.build_hf(hf_dir, query_pre_attn_scalar=conf.TINY["head_dim"])
    _sentencepiece_model(json.loads((hf_dir / "tokenizer.json").read_text(encoding="utf-8")),
                         hf_dir / "tokenizer.model")   # llama.cpp's Gemma 2 reads only this

    def hf_inputs(prompt, images):
        return tok(prompt, return_tensors="pt")["input_ids"], {}, {}
    return model, conf.text_cases(tok), hf_inputs, None, None, "-"


def qwen3moe(hf_dir: Path):
    import make_conformance_qwen3moe as conf
    model, tok = conf.build_hf(hf_dir)

    def hf_inputs(prompt, images):
        return tok(prompt, return_tensors="pt")["input_ids"], {}, {}
    return model, conf.text_cases(tok), hf_inputs, None, None, "qwen2"


ARCHS = {"gemma3": gemma3, "qwen25vl": qwen25vl, "llama4": llama4, "gemma2": gemma2, "qwen3moe": qwen3moe}


def record(arch: str, out: Path, tree: Path, archs: dict = ARCHS, script: str | None = None) -> Path:
    """Convert arch's tiny checkpoint (built by archs[arch]) with llama.cpp and record it in out;
    script: the make_llamacpp_fixtures_<family> module whose archs these are, written down for
    test_llamacpp_files.py to re-run (None: this one)."""
    import transformers
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        hf_dir = Path(tmp) / "hf"
        model, cases, hf_inputs, logits_of, marker, pre = archs[arch](hf_dir)
        convert_llamacpp(tree, hf_dir, out, pre, mmproj=marker is not None)
        if arch == "gemma3":
            write_ollama_gemma3(hf_dir, out / "text.gguf", out.parent / "gemma3-ollama" / "model.gguf")
        record_cases(out, model, cases, hf_inputs, marker, logits_of=logits_of)
    suite = json.loads((out / "cases.json").read_text())
    suite = {"converter": "llama.cpp convert_hf_to_gguf.py, " + _pinned(), "transformers_version":
             transformers.__version__, **suite, **({} if marker is not None else {"mmproj": None}),
             **({} if script is None else {"script": script})}
    (out / "cases.json").write_text(json.dumps(suite, indent=1), encoding="utf-8")
    return out


def _pinned() -> str:
    import fetch
    pin = fetch.read_pin()
    return f"{pin['package']} {pin['package_version']} sdist"


def main(argv: list[str], record=record, archs: dict = ARCHS) -> int:
    """Record the suites named in argv (default: all of archs) with one llama.cpp tree."""
    with tempfile.TemporaryDirectory(prefix="ggsight-llamacpp-") as tmp:
        tree = llamacpp_tree(Path(tmp))
        for arch in argv or list(archs):
            print(record(arch, OUT / arch, tree))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
