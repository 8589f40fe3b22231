"""Gemma 3 with images, end to end against transformers on a tiny random model (float32):
our converter (text) + mmproj writer, the engine's image layout, bidirectional image groups
wider than the sliding window, and images that never split across micro-batches."""
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.torch

from PIL import Image  # noqa: E402

import ggsight  # noqa: E402
from ggsight.models.gemma3.processor import Gemma3ImageConfig, preprocess  # noqa: E402
from ggsight.ggml import GGUFFile  # noqa: E402
from ggsight.store.convert import convert_hf, convert_mmproj  # noqa: E402
from ggsight.models.gemma3.convert_mmproj import write_mmproj  # noqa: E402

from make_conformance_gemma3 import build_hf  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The conformance fixtures' tiny model (every structural feature on), converted afresh."""
    out = tmp_path_factory.mktemp("tiny-gemma3-vl")
    model, _ = build_hf(out)
    text = convert_hf(out, out / "text.gguf", outtype="f32", progress=False)
    state = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    mmproj = write_mmproj(out / "mmproj.gguf", state, model.config.to_dict())
    # the CLI's path (safetensors in) writes the same tensors
    via_cli = convert_mmproj(out, out / "mmproj-cli.gguf")
    a, b = GGUFFile.open(mmproj), GGUFFile.open(via_cli)
    assert sorted(t.name for t in a.tensors) == sorted(t.name for t in b.tensors)
    assert all(np.array_equal(a.tensor_numpy(t.name), b.tensor_numpy(t.name)) for t in a.tensors)
    return model, str(text), mmproj


def image(seed, w=90, h=60):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def hf_logits(model, ids, images, image_token_id):
    ids_t = torch.tensor([ids])
    pixels = torch.from_numpy(np.concatenate([preprocess(im, Gemma3ImageConfig(image_size=56)) for im in images]))
    with torch.no_grad():
        return model(input_ids=ids_t, pixel_values=pixels, token_type_ids=(ids_t == image_token_id).long()
                     ).logits[0].numpy()


def rel(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.mark.parametrize("n_images", [1, 2])
def test_logits_with_images_match_transformers(tiny, n_images):
    model, text, mmproj = tiny
    # f32 cache with f32 weights: greedy ties of a random model must not hinge on KV rounding
    m = ggsight.load(text, mmproj=mmproj, n_ctx=256, n_batch=64, kv_type="f32")
    prompt = "hello world" + ggsight.IMAGE + " the tiny model" + (ggsight.IMAGE + " and" if n_images == 2 else "")
    imgs = [image(0), image(1, w=40, h=70)][:n_images]  # non-native sizes, different from each other
    ids, logits = m.evaluate(prompt, images=imgs)
    img_id = m.images.image_token_id
    # the layout HF's processor writes: \n\n<start_of_image> + 16 soft tokens + <end_of_image>\n\n
    assert ids.count(img_id) == 16 * n_images
    first = ids.index(img_id)
    assert ids[first - 1] == m.tokenizer.token_id("<start_of_image>") and ids[first + 16] == \
        m.tokenizer.token_id("<end_of_image>")
    ref = hf_logits(model, ids, imgs, img_id)
    err = rel(logits, ref)
    print(f"\n{n_images} image(s), {len(ids)} tokens: max err / max |logit| = {err:.2e}")
    assert err < 1e-5
    assert [int(t) for t in logits.argmax(1)] == [int(t) for t in ref.argmax(1)]
    # greedy 16 tokens: ours vs transformers' generate on the same ids and pixels
    ours = m.generate(prompt, images=imgs, raw=True, max_tokens=16, temperature=0).tokens
    ids_t = torch.tensor([ids])
    pixels = torch.from_numpy(np.concatenate([preprocess(im, Gemma3ImageConfig(image_size=56)) for im in imgs]))
    with torch.no_grad():
        out = model.generate(input_ids=ids_t, pixel_values=pixels, token_type_ids=(ids_t == img_id).long(),
                             max_new_tokens=16, do_sample=False, eos_token_id=None)
    theirs = out[0, len(ids):].tolist()
    print(f"greedy 16: ours {ours}\n           hf   {theirs}")
    assert ours == theirs[:len(ours)] and len(ours) == 16


def test_image_wider_than_batch_is_not_split(tiny):
    model, text, mmproj = tiny
    prompt = "hello" + ggsight.IMAGE + " world model"
    # an f32 cache: with f16 K/V, ggml's flash attention rounds q to f16 on one path and not on
    # the other, so batch sizes differ by ~6e-4 for reasons that have nothing to do with the image
    big = ggsight.load(text, mmproj=mmproj, n_ctx=128, n_batch=64, kv_type="f32")
    small = ggsight.load(text, mmproj=mmproj, n_ctx=128, n_batch=5, kv_type="f32")   # image: 16 tokens
    ids, ref = big.evaluate(prompt, images=[image(3)])
    ids2, got = small.evaluate(prompt, images=[image(3)])
    # only summation order differs (batched sgemm vs single-row kernels)
    assert ids == ids2 and rel(got, ref) < 1e-5
    assert (got.argmax(1) == ref.argmax(1)).all()


def test_generate_and_chat_with_images_reuse_the_embedding(tiny):
    _, text, mmproj = tiny
    m = ggsight.load(text, mmproj=mmproj, n_ctx=256, n_batch=32)
    img = image(5)
    a = m.generate("hello" + ggsight.IMAGE, images=[img], raw=True, max_tokens=5, temperature=0)
    b = m.generate("hello" + ggsight.IMAGE, images=[img], raw=True, max_tokens=5, temperature=0)
    assert a.tokens == b.tokens and m.image_encodes == 1 and b.prompt_eval_count == 1
    r = m.chat([{"role": "user", "content": "hello", "images": [img]}], options={"temperature": 0, "num_predict": 3})
    assert r.done and m.image_encodes == 1   # a new chat with the same image: no tower run
    other = m.generate("hello" + ggsight.IMAGE, images=[image(6)], raw=True, max_tokens=5, temperature=0)
    assert other.prompt_eval_count > 16  # a different image is not mistaken for the cached one


def test_image_errors(tiny):
    _, text, mmproj = tiny
    plain = ggsight.load(text, n_ctx=128)
    with pytest.raises(ggsight.InvalidArgumentError, match="mmproj"):
        plain.generate("hi", images=[image(1)], raw=True, max_tokens=1)
    m = ggsight.load(text, mmproj=mmproj, n_ctx=128)
    with pytest.raises(ggsight.InvalidArgumentError, match="2 image"):
        m.generate(ggsight.IMAGE + ggsight.IMAGE, images=[image(1)], raw=True, max_tokens=1)
    with pytest.raises(ValueError, match="not a readable image"):
        m.generate(ggsight.IMAGE, images=[b"not an image"], raw=True, max_tokens=1)
    with pytest.raises(ValueError, match="max_image_tokens does not apply"):
        m.generate(ggsight.IMAGE, images=[image(1)], raw=True, max_tokens=1, max_image_tokens=64)
    with pytest.raises(ggsight.InvalidArgumentError, match="image tokens"):
        m.generate("<image_soft_token>" + ggsight.IMAGE, images=[image(1)], raw=True, max_tokens=1)
    with pytest.raises(ValueError, match="not a readable image"):
        m.generate(ggsight.IMAGE, images=[b"\x89PNG\r\n\x1a\n" + b"\0" * 40], raw=True, max_tokens=1)  # truncated


def test_mmproj_of_another_model_is_refused(tiny, tmp_path):
    model, text, _ = tiny
    cfg = model.config.to_dict()
    cfg["text_config"] = dict(cfg["text_config"], hidden_size=48)   # a projector for a 48-wide model
    state = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    state["model.multi_modal_projector.mm_input_projection_weight"] = np.zeros((32, 48), np.float32)
    other = write_mmproj(tmp_path / "other.gguf", state, cfg)
    with pytest.raises(ValueError, match="belongs to another model"):
        ggsight.load(text, mmproj=other, n_ctx=64)


def test_ollama_single_file_layout_loads_and_matches(tiny, tmp_path):
    """Rewrite text + mmproj into one file with Ollama's names and keys; same logits."""
    import gguf
    _, text, mmproj = tiny
    t, v = GGUFFile.open(text), GGUFFile.open(mmproj)
    ollama_names = {"v.patch_embd": "v.patch_embedding", "v.position_embd": "v.position_embedding",
                    "v.post_ln": "v.post_layernorm", "ln1": "layer_norm1", "ln2": "layer_norm2",
                    "attn_out": "attn_output", "ffn_up": "mlp.fc1", "ffn_down": "mlp.fc2",
                    "mm.input_projection": "mm.mm_input_projection", "mm.soft_emb_norm": "mm.mm_soft_emb_norm"}
    w = gguf.GGUFWriter(str(tmp_path / "ollama.gguf"), "gemma3")
    for key, value in t.metadata.items():
        if key.startswith("general.architecture"):
            continue
        vtype = t.metadata_types[key]
        if key == "gemma3.attention.sliding_window_pattern":   # Ollama: one bool per layer
            n = t.get("gemma3.block_count")
            w.add_array(key, [bool((i + 1) % value) for i in range(n)])
        elif vtype == gguf.GGUFValueType.ARRAY:
            w.add_array(key, value.tolist() if hasattr(value, "tolist") else list(value))
        else:
            w.add_key_value(key, value.item() if hasattr(value, "item") else value, vtype)
    for k in ("image_size", "patch_size", "embedding_length", "feed_forward_length", "block_count",
              "attention.head_count", "attention.layer_norm_epsilon"):
        value = v.get(f"clip.vision.{k}")
        w.add_key_value(f"gemma3.vision.{k}", value.item() if hasattr(value, "item") else value,
                        v.metadata_types[f"clip.vision.{k}"])
    w.add_uint32("gemma3.mm.tokens_per_image", v.get("clip.vision.mm_tokens_per_image"))
    for f in (t, v):
        for info in f.tensors:
            name = info.name
            for a, b in (ollama_names.items() if f is v else ()):
                name = name.replace(a, b)
            w.add_tensor(name, f.tensor_numpy(info))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    prompt = "hello" + ggsight.IMAGE + " world"
    ids_a, ref = ggsight.load(text, mmproj=mmproj, n_ctx=128).evaluate(prompt, images=[image(7)])
    one = ggsight.load(tmp_path / "ollama.gguf", n_ctx=128)
    assert one.images is not None and not one.net.binder.unused
    ids_b, got = one.evaluate(prompt, images=[image(7)])
    assert ids_a == ids_b and rel(got, ref) < 1e-6


def test_pan_and_scan_crops_match_transformers(tiny):
    """A wide image with pan-and-scan: HF's sentence around the original and its 3 crops, the
    crops' pixels from HF's own processor, logits equal."""
    from types import SimpleNamespace
    model, text, mmproj = tiny
    m = ggsight.load(text, mmproj=mmproj, n_ctx=512, n_batch=64, kv_type="f32", image_options={"pan_and_scan": True})
    img = image(8, w=1200, h=400)
    ids, logits = m.evaluate("hello" + ggsight.IMAGE + " world", images=[img])
    hf_proc = transformers.Gemma3ImageProcessorPil(size={"height": 56, "width": 56}, image_mean=[0.5] * 3,
                                                  image_std=[0.5] * 3)
    hf = hf_proc(images=img, do_pan_and_scan=True, pan_and_scan_min_crop_size=256, pan_and_scan_max_num_crops=4,
                 pan_and_scan_min_ratio_to_activate=1.2, return_tensors="np")
    n_crops = int(np.asarray(hf["num_crops"]).reshape(-1)[0])
    assert n_crops == 3
    one = m.images.expansion(1)
    layout = transformers.Gemma3Processor.replace_image_token(SimpleNamespace(full_image_sequence=one),
                                                              {"num_crops": [n_crops]}, 0)
    assert ids == m.tokenize("hello" + layout + " world", special=True)
    assert ids.count(m.images.image_token_id) == 16 * (1 + n_crops)
    pixels = torch.from_numpy(np.asarray(hf["pixel_values"], np.float32))
    ids_t = torch.tensor([ids])
    with torch.no_grad():
        ref = model(input_ids=ids_t, pixel_values=pixels,
                    token_type_ids=(ids_t == m.images.image_token_id).long()).logits[0].numpy()
    err = rel(logits, ref)
    print(f"\npan-and-scan (1 image + 3 crops, {len(ids)} tokens): max err / max |logit| = {err:.2e}")
    assert err < 1e-5 and (logits.argmax(1) == ref.argmax(1)).all()


def test_unknown_image_option_is_refused(tiny):
    _, text, mmproj = tiny
    with pytest.raises(ValueError, match="unknown to Gemma 3"):
        ggsight.load(text, mmproj=mmproj, n_ctx=64, image_options={"pan_scan": True})
