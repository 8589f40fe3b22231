"""Conformance fixtures for the tiny llama_mistral checkpoint of make_tiny_hf_llama.py, recorded from
transformers (cases and format: make_conformance_llama.py).

    python tests/make_conformance_llama_mistral.py [OUT_DIR]     (default: tests/data/conformance/llama_mistral)
"""
from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from make_conformance_llama import record_family  # noqa: E402


def record(out: Path) -> Path:
    return record_family(out, "llama_mistral")


if __name__ == "__main__":
    print(record(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "data" / "conformance" / "llama_mistral"))
