// Q8_0 and Q5_0 matrix products on AVX512-VNNI, run as ggml custom ops on the CPU backend
// (Q6_K's are in x16_q6k.cpp).
//
// ggml's CPU dot products for these types work one row and one 32-value block at a time. When
// decoding, that reads the weights at about half the speed two cores can stream them here (the
// 262k-row Q8_0 embedding table a tied lm head multiplies: 12 ms per token, 6 ms at full
// bandwidth); in a prefill it runs far below the integer rate (Q5_0 640x2048 x 512 tokens:
// 8.3 ms). Interleaving 16 rows lets one VPDPBUSD do 4 products for each of 16 rows against a
// broadcast of 4 activation bytes, so the loop is loads, a little unpacking and dot products.
//
// The "x16" layout of a matrix of n_rows rows (a multiple of 16) with nb = K/32 blocks per row:
// each group of 16 rows keeps exactly the bytes those rows take in the GGUF, reordered per block.
//   Q8_0 block, 544 bytes: [8 quads][16 rows][4] uint8 (value + 128), then [16] fp16 scales.
//   Q5_0 block, 352 bytes: [4][16 rows][4] low nibbles (byte = value 4i+j | value 4(i+4)+j << 4),
//                          [8 quads] 64-bit masks (bit 4r+j: bit 4 of row r's value 4k+j),
//                          then [16] fp16 scales. Values are stored as ggml does, + 16.
// A quad k of a block holds values 4k..4k+3 of each of the 16 rows: one 512-bit register of
// unsigned bytes u. sum(u * y) - offset * sum(y) is the signed dot product, exactly, and sum(y)
// is one number per quad of the activations (offset 128 for Q8_0, 16 for Q5_0).
//
// Activations are quantized to Q8_0 as ggml's x86 code does for both types (scale max|x|/127
// kept as fp16, values times 127/max rounded to nearest even), and the float sums go in ggml's
// order (group_times), so each product is bit for bit ggml's.
//
// This file is compiled with AVX512 flags; nothing here runs unless gs_x16_usable() (in
// cpu_kernels.cpp, built for the baseline CPU) said yes.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "x16_kernels.h"
#include "x16_layout.h"
#include "x16_simd.h"




namespace {

using gs_x16::kRows;
constexpr int kTokenTile = 2;  // tokens multiplied per pass over a group (its bytes stay in L1)

struct Activations {  // one token's activations quantized to Q8_0
    const int8_t *q;
    const float *d;       // fp16-rounded scales, as ggml's dot products read them
    const int32_t *bias;  // per block and quad of 4 values: -offset * their sum
};

void quantize_row(const float *x, int64_t nb, int32_t offset, int8_t *q, float *d, int32_t *bias) {
    for (int64_t b = 0; b < nb; ++b) {
        const __m512 v0 = _mm512_loadu_ps(x + 32 * b), v1 = _mm512_loadu_ps(x + 32 * b + 16);
        const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
        d[b] = _cvtsh_ss(_cvtss_sh(amax / 127.f, _MM_FROUND_TO_NEAREST_INT));
        const __m512 mul = _mm512_set1_ps(amax != 0.f ? 127.f / amax : 0.f);
        // cvtps rounds to nearest even under the default MXCSR, as ggml's explicit round does
        const __m128i q0 = _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(v0, mul)));
        const __m128i q1 = _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(v1, mul)));
        _mm_storeu_si128((__m128i *)(q + 32 * b), q0);
        _mm_storeu_si128((__m128i *)(q + 32 * b + 16), q1);
        for (int k = 0; k < 8; ++k) {
            const int8_t *quad = q + 32 * b + 4 * k;
            bias[8 * b + k] = -offset * (quad[0] + quad[1] + quad[2] + quad[3]);
        }
    }
}

struct Q8Block {
    static constexpr int64_t kBytes = gs_x16::kQ8BlockBytes, kScales = gs_x16::kQ8Scales, kOffset = 128;
    static void quads(const uint8_t *p, __m512i u[8]) {
        for (int k = 0; k < 8; ++k) u[k] = _mm512_loadu_si512(p + 64 * k);
    }
};

struct Q5Block {
    static constexpr int64_t kBytes = gs_x16::kQ5BlockBytes, kScales = gs_x16::kQ5Scales, kOffset = 16;
    static void quads(const uint8_t *p, __m512i u[8]) {
        const __m512i low4 = _mm512_set1_epi8(0x0F), bit4 = _mm512_set1_epi8(0x10);
        for (int i = 0; i < 4; ++i) {
            const __m512i v = _mm512_loadu_si512(p + 64 * i);
            u[i] = _mm512_and_si512(v, low4);
            u[i + 4] = _mm512_and_si512(_mm512_srli_epi16(v, 4), low4);
        }
        const uint64_t *high = (const uint64_t *)(p + gs_x16::kQ5HighBits);
        for (int k = 0; k < 8; ++k) u[k] = _mm512_mask_add_epi8(u[k], high[k], u[k], bit4);
    }
};

// out[t][0..15] = the 16 rows of one group times token t's activations, for T tokens.
//
// The sums follow ggml's order exactly (ggml_vec_dot_q8_0_q8_0 / _q5_0_q8_0 and llamafile's
// tinyBLAS_Q0_AVX, which agree): for each quad k, across the blocks,
// acc_k = fma(d_w * d_y, float(dot of the quad), acc_k), then
// ((acc_0 + acc_4) + (acc_2 + acc_6)) + ((acc_1 + acc_5) + (acc_3 + acc_7)). So the products
// are bit for bit what llama.cpp computes on the same file.
//
// With `stream` (one pass over the weights: decoding), the next group but one is prefetched
// meanwhile; that is worth 10 % per token here. A longer batch finds its weights in L2 instead.
template <class Block, int T, bool stream>
void group_times(const uint8_t *group, int64_t nb, const Activations *act, float *const *out) {
    __m512 acc[T][8];
    for (int t = 0; t < T; ++t) gs_x16::zero_lanes(acc[t]);
    for (int64_t b = 0; b < nb; ++b) {
        const uint8_t *p = group + b * Block::kBytes;
        if (stream) gs_x16::prefetch(p + 2 * nb * Block::kBytes, Block::kBytes);
        __m512i u[8];
        Block::quads(p, u);
        const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p + Block::kScales)));
        for (int t = 0; t < T; ++t) {
            const int32_t *y = (const int32_t *)(act[t].q + 32 * b);
            const int32_t *bias = act[t].bias + 8 * b;
            const __m512 d = _mm512_mul_ps(dw, _mm512_set1_ps(act[t].d[b]));
            for (int k = 0; k < 8; ++k) {
                // starting from -offset * sum(y quad), the dot product comes out signed and exact
                const __m512i dot = _mm512_dpbusd_epi32(_mm512_set1_epi32(bias[k]), u[k], _mm512_set1_epi32(y[k]));
                acc[t][k] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(dot), acc[t][k]);
            }
        }
    }
    for (int t = 0; t < T; ++t) _mm512_storeu_ps(out[t], gs_x16::sum_lanes_as_ggml(acc[t]));
}

template <class Block, int T, bool stream>
void groups_times(const uint8_t *w, int64_t nb, int64_t g0, int64_t g1, const Activations *act, float *const *out) {
    float *rows[T];
    for (int64_t g = g0; g < g1; ++g) {
        for (int t = 0; t < T; ++t) rows[t] = out[t] + g * kRows;
        group_times<Block, T, stream>(w + g * nb * Block::kBytes, nb, act, rows);
    }
}

template <class Block>
void mul_mat(ggml_tensor *dst, int ith, int nth) {
    const ggml_tensor *w = dst->src[0], *x = dst->src[1];
    const int64_t K = x->ne[0], nb = K / 32, n_tokens = ggml_nrows(x), n_groups = w->ne[1] / kRows;
    // every thread quantizes all tokens itself (K values each): cheaper than waiting for one
    thread_local std::vector<int8_t> q;
    thread_local std::vector<float> d;
    thread_local std::vector<int32_t> bias;
    q.resize((size_t)(n_tokens * K));
    d.resize((size_t)(n_tokens * nb));
    bias.resize((size_t)(n_tokens * nb * 8));
    for (int64_t t = 0; t < n_tokens; ++t) {
        const float *row = (const float *)((const char *)x->data + t * x->nb[1]);
        quantize_row(row, nb, (int32_t)Block::kOffset, q.data() + t * K, d.data() + t * nb, bias.data() + t * nb * 8);
    }
    const int64_t g0 = n_groups * ith / nth, g1 = n_groups * (ith + 1) / nth;
    const uint8_t *wp = (const uint8_t *)w->data;
    for (int64_t t0 = 0; t0 < n_tokens; t0 += kTokenTile) {
        const int n = (int)std::min<int64_t>(kTokenTile, n_tokens - t0);
        Activations act[kTokenTile];
        float *out[kTokenTile];
        for (int t = 0; t < n; ++t) {
            act[t] = {q.data() + (t0 + t) * K, d.data() + (t0 + t) * nb, bias.data() + (t0 + t) * nb * 8};
            out[t] = (float *)((char *)dst->data + (t0 + t) * dst->nb[1]);
        }
        if (n_tokens <= kTokenTile) {
            if (n == 2) {
                groups_times<Block, 2, true>(wp, nb, g0, g1, act, out);
            } else {
                groups_times<Block, 1, true>(wp, nb, g0, g1, act, out);
            }
        } else if (n == 2) {
            groups_times<Block, 2, false>(wp, nb, g0, g1, act, out);
        } else {
            groups_times<Block, 1, false>(wp, nb, g0, g1, act, out);
        }
    }
}

}  // namespace

void gs_x16_mul_mat(ggml_tensor *dst, int ith, int nth, void *) {
    if (dst->src[0]->type == GGML_TYPE_Q6_K) {
        gs_x16_q6k_mul_mat(dst, ith, nth);
    } else if (dst->src[0]->type == GGML_TYPE_Q5_0) {
        mul_mat<Q5Block>(dst, ith, nth);
    } else {
        mul_mat<Q8Block>(dst, ith, nth);
    }
}

// Dequantized rows for an embedding lookup: a handful of rows per step, so plain code.
void gs_x16_get_rows(ggml_tensor *dst, int ith, int nth, void *) {
    const ggml_tensor *w = dst->src[0], *ids = dst->src[1];
    const int64_t K = w->ne[0], n_ids = ggml_nelements(ids);
    const int64_t group_bytes = K / ggml_blck_size(w->type) * gs_x16::x16_block_bytes(w->type);
    for (int64_t i = ith; i < n_ids; i += nth) {
        const int64_t row = ((const int32_t *)ids->data)[i];
        float *out = (float *)((char *)dst->data + i * dst->nb[1]);
        if (row < 0 || row >= w->ne[1]) {  // ggml would abort the process; a zero row is caught upstream
            std::memset(out, 0, (size_t)K * sizeof(float));
            continue;
        }
        gs_x16::dequantize_row(w->type, (const uint8_t *)w->data + (row / kRows) * group_bytes, K, row % kRows, out);
    }
}
