"""Every model folder found by scanning models/ provides what models/protocol.py declares (no torch)."""
from pathlib import Path

import pytest

import ggsight
from ggsight.models import folders
from ggsight.models.protocol import ImageGlue, TextModel, conformance

CONF = Path(__file__).parent / "data" / "conformance"
FOLDERS = {f.name: f for f in folders()}


@pytest.mark.parametrize("name", sorted(FOLDERS))
def test_folder_classes_satisfy_the_protocol(name):
    folder = FOLDERS[name]
    assert conformance(folder.model, TextModel) == []
    if folder.images is not None:
        assert conformance(folder.images, ImageGlue) == []


def test_the_check_names_what_is_missing():
    class Half:
        marker = "<img>"

        def __init__(self, mmproj_gguf, weights, tokenizer, n_embd_text=None):   # no **image_options
            pass

        def pixels(self, image):                             # no max_tokens
            pass

        def tokens_of(self):                                 # no view
            pass

        def embed(self, sched, pixels, extra):               # one argument too many
            pass
    problems = conformance(Half, ImageGlue)
    for part in ("__init__(mmproj_gguf, weights, tokenizer, some_option=...): got an unexpected keyword",
                 "pixels(image, max_tokens=...): got an unexpected keyword argument 'max_tokens'",
                 "tokens_of(view): too many positional arguments",
                 "embed(sched, pixels): missing a required argument: 'extra'",
                 "layout() is missing", "bidirectional is not declared"):
        assert any(part in p for p in problems), (part, problems)
    assert not any(p.startswith(("Half.__init__(mmproj_gguf, weights, tokenizer):",
                                 "Half.__init__(mmproj_gguf, weights, tokenizer, n_embd_text")) for p in problems)


@pytest.mark.parametrize("name", sorted(d.name for d in CONF.iterdir() if (d / "text.gguf").is_file()))
def test_loaded_instances_have_the_attributes(name):
    mmproj = CONF / name / "mmproj.gguf"
    m = ggsight.load(CONF / name / "text.gguf", mmproj=mmproj if mmproj.is_file() else None, n_ctx=64, n_threads=1)
    assert isinstance(m.net, TextModel)
    assert all(hasattr(m.net.config, k) for k in ("n_embd", "n_layer", "head_dim", "n_head_kv"))
    if m.images is not None:
        assert isinstance(m.images, ImageGlue)
