// The x16 layout (see x16_kernels.cpp, x16_q6k.cpp) to and from the GGUF's, a block at a time.
#include "x16_layout.h"

#include <cstring>

#include "internal.h"

namespace gs_x16 {

int64_t x16_block_bytes(int type) { return kRows * (int64_t)ggml_type_size((ggml_type)type); }

namespace {

// One block of a row: its scale's fp16 bits and 32 unsigned values u (Q8_0: value + 128,
// Q5_0: value + 16, as the GGUF stores it).
struct BlockValues {
    uint16_t scale;
    uint8_t u[32];
};

// Where value v (0..255) of a Q6_K row sits. In the GGUF (ggml's dequantize_row_q6_K): half
// n = v / 128, quarter m of the half, l = v % 32: low nibble of ql[64n + l + 32(m & 1)] (its
// high nibble for m >= 2), bits 2m..2m+1 of qh[32n + l]. In the x16 layout: quad k = v / 4 has
// its low nibbles in 64-byte line k % 32 (high nibbles for k >= 32) and its 2 high bits in line
// k % 16 of the high-bit lines (bits 2 (k / 16)), row r's byte 4r + v % 4 of each line.
struct Q6Place {
    int ql, ql_shift, qh, qh_shift, line, line_shift, hline, hline_shift;
};

Q6Place q6_place(int v, int64_t r) {
    const int n = v / 128, m = (v % 128) / 32, l = v % 32, k = v / 4;
    const int byte = (int)(4 * r) + v % 4;
    return {64 * n + l + 32 * (m & 1), m >= 2 ? 4 : 0, 32 * n + l, 2 * m,
            64 * (k % 32) + byte, k >= 32 ? 4 : 0, (int)kQ6HighBits + 64 * (k % 16) + byte, 2 * (k / 16)};
}

// The loader packs whole files with this, so it writes whole bytes: value v = 128n + 32m + l
// (see q6_place) has its low nibble in line 8m + l / 4 (nibble n) and its high bits in high line
// 8(m % 2) + l / 4 (bits 4n + 2(m / 2)), byte 4r + l % 4 of each.
void store_q6k_row(const uint8_t *gguf, int64_t r, uint8_t *p) {
    const uint8_t *ql = gguf, *qh = gguf + 128;
    for (int m = 0; m < 4; ++m) {
        const int shift = m >= 2 ? 4 : 0, off = 32 * (m & 1);
        for (int l = 0; l < 32; ++l) {
            const int low = (ql[l + off] >> shift) & 0x0F, high = (ql[64 + l + off] >> shift) & 0x0F;
            p[64 * (8 * m + l / 4) + 4 * r + l % 4] = (uint8_t)(low | high << 4);
        }
    }
    for (int m = 0; m < 2; ++m) {
        for (int l = 0; l < 32; ++l) {
            const int h0 = qh[l], h1 = qh[32 + l];  // halves n = 0, 1: bits 2m' of value 32m' + l
            const int bits = ((h0 >> 2 * m) & 3) | ((h0 >> (2 * m + 4)) & 3) << 2 | ((h1 >> 2 * m) & 3) << 4 |
                             ((h1 >> (2 * m + 4)) & 3) << 6;
            p[kQ6HighBits + 64 * (8 * m + l / 4) + 4 * r + l % 4] = (uint8_t)bits;
        }
    }
    for (int s = 0; s < 16; ++s) p[kQ6Scales + 16 * s + r] = gguf[192 + s];
    std::memcpy(p + kQ6Deltas + 2 * r, gguf + 208, 2);
}

void load_q6k_row(const uint8_t *p, int64_t r, uint8_t *gguf) {
    std::memset(gguf, 0, 192);
    for (int v = 0; v < 256; ++v) {
        const Q6Place at = q6_place(v, r);
        gguf[at.ql] |= (uint8_t)(((p[at.line] >> at.line_shift) & 0x0F) << at.ql_shift);
        gguf[128 + at.qh] |= (uint8_t)(((p[at.hline] >> at.hline_shift) & 3) << at.qh_shift);
    }
    for (int s = 0; s < 16; ++s) gguf[192 + s] = p[kQ6Scales + 16 * s + r];
    std::memcpy(gguf + 208, p + kQ6Deltas + 2 * r, 2);
}

BlockValues read_gguf_block(int type, const uint8_t *blk) {
    BlockValues v;
    std::memcpy(&v.scale, blk, 2);
    if (type == GGML_TYPE_Q5_0) {
        uint32_t qh;
        std::memcpy(&qh, blk + 2, 4);
        for (int j = 0; j < 32; ++j) {
            const int low = j < 16 ? blk[6 + j] & 0x0F : blk[6 + j - 16] >> 4;
            v.u[j] = (uint8_t)(low | ((qh >> j) & 1) << 4);
        }
    } else {
        for (int j = 0; j < 32; ++j) v.u[j] = blk[2 + j] ^ 0x80;
    }
    return v;
}

void write_gguf_block(int type, const BlockValues &v, uint8_t *blk) {
    std::memcpy(blk, &v.scale, 2);
    if (type == GGML_TYPE_Q5_0) {
        uint32_t qh = 0;
        for (int j = 0; j < 32; ++j) qh |= (uint32_t)(v.u[j] >> 4) << j;
        std::memcpy(blk + 2, &qh, 4);
        for (int j = 0; j < 16; ++j) blk[6 + j] = (uint8_t)((v.u[j] & 0x0F) | (v.u[j + 16] & 0x0F) << 4);
    } else {
        for (int j = 0; j < 32; ++j) blk[2 + j] = v.u[j] ^ 0x80;
    }
}

void store_x16_row(int type, const BlockValues &v, int64_t r, uint8_t *p) {
    if (type == GGML_TYPE_Q5_0) {
        for (int i = 0; i < 4; ++i) {
            for (int j = 0; j < 4; ++j) p[64 * i + 4 * r + j] = (uint8_t)((v.u[4 * i + j] & 0x0F) | (v.u[16 + 4 * i + j] & 0x0F) << 4);
        }
        for (int k = 0; k < 8; ++k) {
            uint64_t mask;
            std::memcpy(&mask, p + kQ5HighBits + 8 * k, 8);
            for (int j = 0; j < 4; ++j) mask |= (uint64_t)(v.u[4 * k + j] >> 4) << (4 * r + j);
            std::memcpy(p + kQ5HighBits + 8 * k, &mask, 8);
        }
        std::memcpy(p + kQ5Scales + 2 * r, &v.scale, 2);
    } else {
        for (int k = 0; k < 8; ++k) std::memcpy(p + 64 * k + 4 * r, v.u + 4 * k, 4);
        std::memcpy(p + kQ8Scales + 2 * r, &v.scale, 2);
    }
}

BlockValues load_x16_row(int type, const uint8_t *p, int64_t r) {
    BlockValues v;
    if (type == GGML_TYPE_Q5_0) {
        for (int k = 0; k < 8; ++k) {
            uint64_t mask;
            std::memcpy(&mask, p + kQ5HighBits + 8 * k, 8);
            for (int j = 0; j < 4; ++j) {
                const uint8_t byte = p[64 * (k % 4) + 4 * r + j];
                v.u[4 * k + j] = (uint8_t)((k < 4 ? byte & 0x0F : byte >> 4) | ((mask >> (4 * r + j)) & 1) << 4);
            }
        }
        std::memcpy(&v.scale, p + kQ5Scales + 2 * r, 2);
    } else {
        for (int k = 0; k < 8; ++k) std::memcpy(v.u + 4 * k, p + 64 * k + 4 * r, 4);
        std::memcpy(&v.scale, p + kQ8Scales + 2 * r, 2);
    }
    return v;
}

}  // namespace

void store_block(int type, const uint8_t *gguf, int64_t r, uint8_t *p) {
    if (type == GGML_TYPE_Q6_K) {
        store_q6k_row(gguf, r, p);
    } else {
        store_x16_row(type, read_gguf_block(type, gguf), r, p);
    }
}

void load_block(int type, const uint8_t *p, int64_t r, uint8_t *gguf) {
    if (type == GGML_TYPE_Q6_K) {
        load_q6k_row(p, r, gguf);
    } else {
        write_gguf_block(type, load_x16_row(type, p, r), gguf);
    }
}

void dequantize_row(int type, const uint8_t *group, int64_t K, int64_t r, float *out) {
    const ggml_to_float_t to_float = ggml_get_type_traits((ggml_type)type)->to_float;
    const int64_t block = ggml_blck_size((ggml_type)type), step = x16_block_bytes(type);
    uint8_t gguf[kQ6GgufBytes];  // the largest block of the three types
    for (int64_t b = 0; b < K / block; ++b) {
        load_block(type, group + b * step, r, gguf);
        to_float(gguf, out + block * b, block);
    }
}

bool shape_ok(int type, int64_t n_in, int64_t n_rows, const char *what) {
    if (type != GGML_TYPE_Q8_0 && type != GGML_TYPE_Q5_0 && type != GGML_TYPE_Q6_K) {
        gs_fail(GS_ERR_INVALID, "%s: the x16 layout holds Q8_0, Q5_0 and Q6_K, not %s", what,
                ggml_type_name((ggml_type)type));
        return false;
    }
    const int64_t block = ggml_blck_size((ggml_type)type);
    if (n_in <= 0 || n_in % block != 0 || n_rows <= 0 || n_rows % 16 != 0) {
        gs_fail(GS_ERR_INVALID, "%s: the x16 layout of %s needs inputs a multiple of %lld and rows a multiple of "
                "16, got %lld x %lld", what, ggml_type_name((ggml_type)type), (long long)block, (long long)n_in,
                (long long)n_rows);
        return false;
    }
    return true;
}

}  // namespace gs_x16

using namespace gs_x16;

extern "C" {

int gs_pack_x16(int type, const void *src, void *dst, int64_t n_in, int64_t n_rows) {
    if (!src || !dst) return gs_fail(GS_ERR_INVALID, "gs_pack_x16: NULL argument");
    if (!shape_ok(type, n_in, n_rows, "gs_pack_x16")) return GS_ERR_INVALID;
    const int64_t nb = n_in / ggml_blck_size((ggml_type)type), in_block = ggml_type_size((ggml_type)type);
    const int64_t out_block = x16_block_bytes(type);
    std::memset(dst, 0, (size_t)(n_rows * nb * in_block));  // Q5_0's high bits are ORed in
    for (int64_t row = 0; row < n_rows; ++row) {
        uint8_t *group = (uint8_t *)dst + (row / kRows) * nb * out_block;
        for (int64_t b = 0; b < nb; ++b) {
            store_block(type, (const uint8_t *)src + (row * nb + b) * in_block, row % kRows, group + b * out_block);
        }
    }
    return GS_OK;
}

int gs_unpack_x16(int type, const void *src, void *dst, int64_t n_in, int64_t n_rows) {
    if (!src || !dst) return gs_fail(GS_ERR_INVALID, "gs_unpack_x16: NULL argument");
    if (!shape_ok(type, n_in, n_rows, "gs_unpack_x16")) return GS_ERR_INVALID;
    const int64_t nb = n_in / ggml_blck_size((ggml_type)type), in_block = x16_block_bytes(type);
    const int64_t out_block = ggml_type_size((ggml_type)type);
    for (int64_t row = 0; row < n_rows; ++row) {
        const uint8_t *group = (const uint8_t *)src + (row / kRows) * nb * in_block;
        for (int64_t b = 0; b < nb; ++b) {
            load_block(type, group + b * in_block, row % kRows, (uint8_t *)dst + (row * nb + b) * out_block);
        }
    }
    return GS_OK;
}

}  // extern "C"
