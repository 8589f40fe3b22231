"""llama.cpp-converted GGUFs of the tiny Mistral3ForConditionalGeneration
(tests/make_tiny_hf_mistral3.py), with transformers' reference, in tests/make_llamacpp_fixtures.py's
format (needs torch + transformers): its converter runner, recorder and suite layout, this builder.

llama.cpp's converter (run unchanged) writes the text as arch "mistral3" and an mmproj of
projector type "pixtral" without the [IMG_BREAK] row (its mmproj pass drops the checkpoint's
language_model. tensors before looking for it); the BPE pre-tokenizer is named "tekken", what
Mistral Small 3.1's hash gives, since the tiny vocabulary's hash is unknown to it. The cases are
tests/make_conformance_mistral3.py's: text only, one non-square image that is resized, two images.

    python tests/make_llamacpp_fixtures_mistral3.py
"""
from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import make_llamacpp_fixtures as base  # noqa: E402


def mistral3(hf_dir: Path):
    import make_conformance_mistral3 as conf
    from make_tiny_hf_mistral3 import make_tiny_hf_mistral3
    model = make_tiny_hf_mistral3(hf_dir)
    return model, conf.CASES, conf.case_inputs(hf_dir), None, conf.IMAGE, "tekken"


ARCHS = {"mistral3": mistral3}
llamacpp_tree = base.llamacpp_tree


def record(arch: str, out: Path, tree: Path) -> Path:
    return base.record(arch, out, tree, ARCHS, script=Path(__file__).stem)


def main(argv: list[str]) -> int:
    return base.main(argv, record, ARCHS)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
