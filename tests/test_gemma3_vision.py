"""Gemma 3 vision tower + projector vs transformers on a tiny random model (float32)."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("gguf")
pytestmark = pytest.mark.torch

from PIL import Image  # noqa: E402

from ggsight.ggml import Backend, GGUFFile, Scheduler, load_weights  # noqa: E402
from ggsight.models.gemma3.processor import Gemma3ImageConfig, preprocess  # noqa: E402
from ggsight.models.gemma3.vision import Gemma3Vision  # noqa: E402
from ggsight.models.gemma3.convert_mmproj import vision_tensor_name, write_mmproj  # noqa: E402


def tiny_hf_model():
    torch.manual_seed(0)
    cfg = transformers.Gemma3Config(
        text_config=dict(vocab_size=300, hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, head_dim=24, sliding_window=8),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                           image_size=56, patch_size=7),   # 8 x 8 patches
        mm_tokens_per_image=16)                             # pooled 2 x 2 -> 4 x 4 tokens
    model = transformers.Gemma3ForConditionalGeneration(cfg).eval()
    with torch.no_grad():  # HF zero-initialises norm scales; make them matter
        for name, p in model.named_parameters():
            if "norm" in name or not p.abs().max():  # also the zero-initialised projection
                p.add_(0.3 * torch.randn_like(p))
    return model


def test_names_accept_hub_and_transformers5_layouts():
    assert vision_tensor_name("vision_tower.vision_model.encoder.layers.3.mlp.fc1.weight") == "v.blk.3.ffn_up.weight"
    assert vision_tensor_name("model.vision_tower.encoder.layers.3.mlp.fc1.weight") == "v.blk.3.ffn_up.weight"
    assert vision_tensor_name("model.multi_modal_projector.mm_input_projection_weight") == \
        "mm.input_projection.weight"
    assert vision_tensor_name("model.language_model.layers.0.mlp.up_proj.weight") is None


def test_image_embeddings_match_transformers(tmp_path):
    model = tiny_hf_model()
    state = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    path = write_mmproj(tmp_path / "mmproj.gguf", state, model.config.to_dict())
    f = GGUFFile.open(path)
    vision = Gemma3Vision(f, load_weights(f))
    assert not vision.binder.missing and vision.config.n_tokens == 16

    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (90, 120, 3), dtype=np.uint8))
    pixels = preprocess(img, Gemma3ImageConfig(image_size=56))
    with torch.no_grad():
        ref = model.model.get_image_features(pixel_values=torch.from_numpy(pixels)).pooler_output[0].numpy()
    got = vision.encode(Scheduler(Backend(n_threads=2)), pixels[0])
    assert got.shape == ref.shape == (16, 48)
    err = np.abs(got - ref).max() / np.abs(ref).max()
    print(f"\ngemma3 vision tower + projector vs transformers: max err / max |ref| = {err:.2e}")
    assert err < 1e-5


def test_bf16_mmproj_runs_on_tiles_where_the_cpu_has_them(tmp_path):
    from ggsight.ggml.tiles import amx_bf16_usable
    model = tiny_hf_model()
    state = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    path = write_mmproj(tmp_path / "mmproj-bf16.gguf", state, model.config.to_dict(), outtype="bf16")
    f = GGUFFile.open(path)
    # the tiles are bound at load, as the loader asks for an mmproj (load_weights(..., tiles=True))
    tiled, untiled = load_weights(f, tiles=True), load_weights(f, tiles=False)
    matrices = {f"v.blk.{il}.{n}.weight" for il in range(2) for n in ("attn_q", "attn_k", "attn_v", "attn_out",
                                                                      "ffn_up", "ffn_down")}
    assert (set(tiled.tiles) >= matrices) == amx_bf16_usable() and not untiled.tiles
    assert "v.position_embd.weight" not in tiled.tiles and "v.patch_embd.weight" not in tiled.tiles
    auto, plain = Gemma3Vision(f, tiled), Gemma3Vision(f, untiled)
    pixels = np.random.default_rng(1).uniform(-1, 1, (1, 3, 56, 56)).astype(np.float32)
    with torch.no_grad():
        ref = model.model.get_image_features(pixel_values=torch.from_numpy(pixels)).pooler_output[0].numpy()
    sched = Scheduler(Backend(n_threads=2))
    errs = {}
    for name, vision in (("tiles" if tiled.tiles else "ggml", auto), ("ggml bf16", plain)):
        got = vision.encode(sched, pixels[0])
        errs[name] = np.abs(got - ref).max() / np.abs(ref).max()
    print(f"\nbf16 mmproj vs transformers f32: " + ", ".join(f"{k} {v:.1e}" for k, v in errs.items()))
    # bf16 weights (and, on tiles, bf16 products) cost about two decimal digits, no more
    assert max(errs.values()) < 3e-2


@pytest.mark.parametrize("outtype,matrix_type", [("f16", "F16"), ("bf16", "BF16")])
def test_mmproj_outtype_converts_matrices_only(tmp_path, outtype, matrix_type):
    model = tiny_hf_model()
    state = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    f = GGUFFile.open(write_mmproj(tmp_path / "m.gguf", state, model.config.to_dict(), outtype=outtype))
    types = {t.name: t.dtype.name for t in f.tensors}
    assert types["v.blk.0.attn_q.weight"] == types["v.blk.1.ffn_down.weight"] == matrix_type
    assert types["mm.input_projection.weight"] == matrix_type
    for kept in ("v.patch_embd.weight", "v.position_embd.weight", "v.blk.0.ln1.weight", "v.blk.0.attn_q.bias"):
        assert types[kept] == "F32"
    with pytest.raises(ValueError, match="outtype"):
        write_mmproj(tmp_path / "q.gguf", state, model.config.to_dict(), outtype="q4_0")
