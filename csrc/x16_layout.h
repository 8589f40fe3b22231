// Private to the shim: the x16 layout (described in x16_kernels.cpp and x16_q6k.cpp), converted
// one GGUF block at a time. Plain C++ for the baseline CPU: the loader and get_rows use it everywhere.
#pragma once

#include <cstdint>

namespace gs_x16 {

// Byte offsets inside one x16 block (all 16 rows of a group, 32 values each).
constexpr int64_t kQ8BlockBytes = 544, kQ8Scales = 512;                  // [8][16][4] values, [16] fp16
constexpr int64_t kQ5BlockBytes = 352, kQ5HighBits = 256, kQ5Scales = 320;  // [4][16][4] nibbles, [8] masks, [16] fp16
// Q6_K: one 256-value superblock of all 16 rows (x16_q6k.cpp describes it)
constexpr int64_t kQ6BlockBytes = 3360, kQ6HighBits = 2048, kQ6Scales = 3072, kQ6Deltas = 3328;
constexpr int64_t kQ6GgufBytes = 210;  // ggml's block_q6_K: ql[128], qh[64], int8 scales[16], fp16 d

constexpr int64_t kRows = 16;  // rows per interleaved group

int64_t x16_block_bytes(int type);  // one block of all 16 rows of a group: 16 GGUF blocks' bytes
// Row r's GGUF block (ggml_type_size bytes) into its share of the x16 block at p (zeroed before
// the first row is stored), and back.
void store_block(int type, const uint8_t *gguf, int64_t r, uint8_t *p);
void load_block(int type, const uint8_t *p, int64_t r, uint8_t *gguf);
// Row r (K values) of the group at `group`, dequantized by ggml's own to_float for the type.
void dequantize_row(int type, const uint8_t *group, int64_t K, int64_t r, float *out);
// Q8_0, Q5_0 or Q6_K, inputs a multiple of the block, rows of whole groups; otherwise sets the error.
bool shape_ok(int type, int64_t n_in, int64_t n_rows, const char *what);

}  // namespace gs_x16
