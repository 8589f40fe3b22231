"""llama.cpp-converted GGUFs of the dense Llama-style decoders (tests/make_tiny_hf_llama.py's tiny
checkpoints), with transformers' reference, in tests/make_llamacpp_fixtures.py's format (needs
torch + transformers): its converter runner, recorder and suite layout, these builders.

What the tiny models change for llama.cpp's converter (run unchanged): the Mistral checkpoint
has no sliding window (llama.cpp's files cannot carry one: its "llama" graph has none, so a
recording with a window would hold llama.cpp to something it does not claim), and the BPE
pre-tokenizer is named where the tiny vocabularies' hash is unknown: what the released
checkpoints' hashes give ("llama-bpe" for Llama 3, "tekken" for Mistral Nemo / Small, "qwen2"
for Qwen2.5 and Qwen3, "refact" for Granite 3). llama_spm (make_tiny_hf_llama_spm.py) has a
SentencePiece tokenizer.model only, which llama.cpp reads itself.

    python tests/make_llamacpp_fixtures_llama.py [SUITE ...]     (default: all)
"""
from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import make_llamacpp_fixtures as base  # noqa: E402

PRE = {"llama": "llama-bpe", "llama_tied": "llama-bpe", "llama_mistral": "tekken", "qwen2": "qwen2",
       "qwen3": "qwen2", "granite": "refact"}


def _builder(name: str):
    def build(hf_dir: Path):
        import transformers
        from make_conformance_llama import hf_cases
        from make_tiny_hf_llama import make_tiny_hf
        model = make_tiny_hf(name, hf_dir, window=None)
        cases, hf_inputs = hf_cases(transformers.AutoTokenizer.from_pretrained(hf_dir))
        return model, cases, hf_inputs, None, None, PRE[name]
    return build


def _llama_spm(hf_dir: Path):
    """Llama 2 style: tokenizer.model only, which llama.cpp's converter reads as SentencePiece
    (no pre-tokenizer name needed)."""
    import transformers
    from make_conformance_llama_spm import cases
    from make_tiny_hf_llama_spm import make_tiny_hf_llama_spm
    model = make_tiny_hf_llama_spm(hf_dir)
    suite_cases, hf_inputs = cases(transformers.AutoTokenizer.from_pretrained(hf_dir))
    return model, suite_cases, hf_inputs, None, None, "-"


ARCHS = {**{name: _builder(name) for name in PRE}, "llama_spm": _llama_spm}
llamacpp_tree = base.llamacpp_tree


def record(arch: str, out: Path, tree: Path) -> Path:
    return base.record(arch, out, tree, ARCHS, script=Path(__file__).stem)


def main(argv: list[str]) -> int:
    return base.main(argv, record, ARCHS)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
