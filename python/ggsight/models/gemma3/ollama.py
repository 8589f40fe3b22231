"""Ollama's single-file Gemma 3 vision GGUF: its tensor names -> llama.cpp's (models/ollama_layout.py
applies them over the same mmap)."""

# (Ollama name pattern, llama.cpp name template)
OLLAMA_TENSORS = (
    (r"v\.patch_embedding\.(weight|bias)", r"v.patch_embd.\1"),
    (r"v\.position_embedding\.weight", "v.position_embd.weight"),
    (r"v\.post_layernorm\.(weight|bias)", r"v.post_ln.\1"),
    (r"v\.blk\.(\d+)\.layer_norm1\.(weight|bias)", r"v.blk.\1.ln1.\2"),
    (r"v\.blk\.(\d+)\.layer_norm2\.(weight|bias)", r"v.blk.\1.ln2.\2"),
    (r"v\.blk\.(\d+)\.attn_output\.(weight|bias)", r"v.blk.\1.attn_out.\2"),
    (r"v\.blk\.(\d+)\.attn_([qkv])\.(weight|bias)", r"v.blk.\1.attn_\2.\3"),
    (r"v\.blk\.(\d+)\.mlp\.fc1\.(weight|bias)", r"v.blk.\1.ffn_up.\2"),
    (r"v\.blk\.(\d+)\.mlp\.fc2\.(weight|bias)", r"v.blk.\1.ffn_down.\2"),
    (r"mm\.mm_input_projection\.weight", "mm.input_projection.weight"),
    (r"mm\.mm_soft_emb_norm\.weight", "mm.soft_emb_norm.weight"),
)
