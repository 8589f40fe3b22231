// Q6_K matrix products on AVX512-VNNI, 16 rows at a time (the x16 layout of x16_kernels.cpp).
//
// Q6_K is what llama.cpp's Q4_K_M files keep for the lm head (often the tied embedding table)
// and half the attn_v / ffn_down matrices: about a third of a decode step's weight bytes. ggml
// has no repacked form of it on x86 and its dot product goes one row at a time, at about 80 % of
// the bandwidth two cores can stream; prompts run through the same one-row dot product.
//
// The x16 layout of one 256-value superblock of 16 rows (3360 bytes, what they take in the GGUF):
//   [32 lines of 64 bytes] low nibbles: line k % 32 holds quad k (values 4k..4k+3) of each row,
//                          in the low nibble for k < 32, the high one for k >= 32;
//   [16 lines] high 2 bits: line k % 16 holds quad k's at bits 2 (k / 16);
//   [16 sub-blocks][16 rows] int8 scales, then [16] fp16 row scales d.
// Row r's bytes of a line are 4r..4r+3, so one line unpacks to one register of 16 rows' quads.
//
// Bit for bit ggml's two Q6_K paths, with activations quantized by ggml's own
// quantize_row_q8_K_ref. Both first form exact integers per superblock, so the order inside is
// free; the float steps are ggml's:
// - under 8 tokens, ggml_vec_dot_q6_K_q8_K (its AVX2 code, which AVX512 builds use too): 8 int32
//   lanes, lane i = the sum over the superblock's 32-value chunks c of scale * u * y for values
//   32c+4i..32c+4i+3 (u the unsigned 6-bit value) minus 32 * bsum * scale of sub-blocks 2i and
//   2i+1; acc_i = fma(y.d * d, float(lane_i), acc_i); the 8 lanes summed as hsum_float_8 does;
// - from 8 tokens on, the tiled K-quant matmul (ggml-cpu/tiled, its VNNI microkernel): the
//   superblock's whole sum S, out += (float(S) * d) * y.d, superblock after superblock.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "x16_kernels.h"
#include "x16_layout.h"
#include "x16_simd.h"

extern "C" {
// ggml-base's (exported; ggml-quants.h is not a public header): the CPU backend's Q8_K
// quantization on x86 is this one.
void quantize_row_q8_K_ref(const float *x, void *y, int64_t k);
}

namespace {

using gs_x16::kRows;
constexpr int kTokenTile = 2;   // tokens per pass of the lane kernel (its accumulators fill the registers)
constexpr int64_t kChunkBytes = 640 * 1024;  // tokens' activations kept in L2 while a thread's groups pass
constexpr int64_t kTiledFrom = 8;  // tokens from which ggml takes its tiled matmul (ggml_tiled_min_batch)

int env_int(const char *name, int unset) {
    const char *v = std::getenv(name);
    return v ? std::atoi(v) : unset;
}

// ggml's switches for that path (ggml-cpu/tiled/tiled.cpp), read the same way
bool takes_tiled(int64_t n_tokens) {
    static const bool enabled = env_int("GGML_CPU_TILED_MM", 1) != 0;
    static const bool forced = env_int("GGML_CPU_TILED_MM_FORCE", 0) == 1;
    return enabled && (n_tokens >= kTiledFrom || forced);
}

struct BlockQ8K {  // ggml's block_q8_K
    float d;
    int8_t qs[256];
    int16_t bsums[16];
};
static_assert(sizeof(BlockQ8K) == 292, "block_q8_K layout");

// 16 rows' int8 scales of sub-block s as int32 lanes whose high 16 bits are zero: VPDPWSSD then
// multiplies only the low halves (a signed dot of |value| < 2^15 sits in the low half of its lane).
inline __m512i scales_of(const uint8_t *p, int s) {
    const __m512i wide = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(p + gs_x16::kQ6Scales + 16 * s)));
    return _mm512_and_si512(wide, _mm512_set1_epi32(0xFFFF));
}

// Under 8 tokens (ggml_vec_dot_q6_K_q8_K's sums): T tokens per pass over a group, each quad's
// dot product scaled on its own (its lane must stay apart).
// Quad j + 16g (g = 0..3) of the 16 rows: the low nibbles of line j (g = 0, 2) or j + 16 (g = 1,
// 3), low for g < 2, high after; the 2 high bits at bits 2g of high-bit line j.
inline __m512i quad(const uint8_t *p, int j, int g, __m512i low4, __m512i high2) {
    const __m512i n = _mm512_loadu_si512(p + 64 * (j + 16 * (g & 1)));
    const __m512i h = _mm512_loadu_si512(p + gs_x16::kQ6HighBits + 64 * j);
    const __m512i nib = _mm512_and_si512(g >= 2 ? _mm512_srli_epi16(n, 4) : n, low4);
    const __m512i hi = g == 0 ? _mm512_slli_epi16(h, 4) : g == 1 ? _mm512_slli_epi16(h, 2) : g == 2 ? h : _mm512_srli_epi16(h, 2);
    return _mm512_or_si512(nib, _mm512_and_si512(hi, high2));
}

template <int T, bool stream>
void group_lanes(const uint8_t *group, int64_t nb, const BlockQ8K *const *act, float *const *out) {
    const __m512i low4 = _mm512_set1_epi8(0x0F), high2 = _mm512_set1_epi8(0x30), low16 = _mm512_set1_epi32(0xFFFF);
    const __m512i zero = _mm512_setzero_si512();
    __m512 acc[T][8];
    for (int t = 0; t < T; ++t) gs_x16::zero_lanes(acc[t]);
    for (int64_t b = 0; b < nb; ++b) {
        const uint8_t *p = group + b * gs_x16::kQ6BlockBytes;
        if (stream) gs_x16::prefetch(p + 2 * nb * gs_x16::kQ6BlockBytes, gs_x16::kQ6BlockBytes);
        __m512i lane[T][8];
        for (int t = 0; t < T; ++t) {
            for (int i = 0; i < 8; ++i) lane[t][i] = zero;
        }
#pragma GCC unroll 4
        for (int jb = 0; jb < 4; ++jb) {
            __m512i scale[4];  // sub-blocks jb + 4g: those of quads j + 16g for j in 4jb..4jb+3
#pragma GCC unroll 4
            for (int g = 0; g < 4; ++g) {
                const int s = jb + 4 * g;
                scale[g] = scales_of(p, s);
                // ggml's -32 offset: 32 * bsum * scale of sub-block s, in lane s / 2
                const __m512i scale32 = _mm512_and_si512(_mm512_slli_epi32(scale[g], 5), low16);
                for (int t = 0; t < T; ++t) {
                    const __m512i bsum = _mm512_set1_epi32((uint16_t)(-act[t][b].bsums[s]));
                    lane[t][s / 2] = _mm512_dpwssd_epi32(lane[t][s / 2], scale32, bsum);
                }
            }
#pragma GCC unroll 4
            for (int jj = 0; jj < 4; ++jj) {
                const int j = 4 * jb + jj;
                __m512i u[4];  // quads j, j + 16, j + 32, j + 48: all in lane j % 8
                for (int g = 0; g < 4; ++g) u[g] = quad(p, j, g, low4, high2);
                for (int t = 0; t < T; ++t) {
                    const int32_t *y = (const int32_t *)act[t][b].qs;
#pragma GCC unroll 4
                    for (int g = 0; g < 4; ++g) {
                        const __m512i dot = _mm512_dpbusd_epi32(zero, u[g], _mm512_set1_epi32(y[j + 16 * g]));
                        lane[t][j % 8] = _mm512_dpwssd_epi32(lane[t][j % 8], dot, scale[g]);
                    }
                }
            }
        }
        const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p + gs_x16::kQ6Deltas)));
        for (int t = 0; t < T; ++t) {
            const __m512 d = _mm512_mul_ps(_mm512_set1_ps(act[t][b].d), dw);
            for (int i = 0; i < 8; ++i) acc[t][i] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(lane[t][i]), acc[t][i]);
        }
    }
    for (int t = 0; t < T; ++t) _mm512_storeu_ps(out[t], gs_x16::sum_lanes_as_ggml(acc[t]));
}

// From 8 tokens (the tiled matmul's sums) only a superblock's total counts, so a sub-block's 4
// quads chain in one register (from -32 * bsum) and are scaled once. A superblock is unpacked
// once per chunk of tokens and stays in L1 while every tile of the chunk multiplies it; the
// tokens' float sums wait in memory between superblocks, added in ggml's (superblock) order.
struct Unpacked {
    __m512i quad[64];    // quad k of the 16 rows (values 4k..4k+3), unsigned 6-bit
    __m512i scale[16];   // sub-block s's int8 scales, sign-extended
    __m512 d;            // the rows' fp16 scales
};

void unpack(const uint8_t *p, Unpacked &u) {
    const __m512i low4 = _mm512_set1_epi8(0x0F), high2 = _mm512_set1_epi8(0x30);
    for (int s = 0; s < 16; ++s) {   // quads 4s..4s+3 = quads j + 16g of lines j = 4(s % 4)..+3, g = s / 4
        for (int jj = 0; jj < 4; ++jj) u.quad[4 * s + jj] = quad(p, 4 * (s % 4) + jj, s / 4, low4, high2);
        u.scale[s] = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(p + gs_x16::kQ6Scales + 16 * s)));
    }
    u.d = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p + gs_x16::kQ6Deltas)));
}

// acc[t] (16 rows) += superblock b times token t, for n tokens. Token by token: the unpacked
// quads come back from L1, and the sub-blocks of one token are straight-line code.
void superblock_times(const Unpacked &u, int64_t b, const BlockQ8K *const *act, int64_t n, float *acc) {
    for (int64_t t = 0; t < n; ++t) {
        const BlockQ8K &y = act[t][b];
        const int32_t *quads = (const int32_t *)y.qs;
        __m512i total = _mm512_setzero_si512();
#pragma GCC unroll 16
        for (int s = 0; s < 16; ++s) {
            __m512i raw = _mm512_set1_epi32(-32 * y.bsums[s]);
            for (int jj = 0; jj < 4; ++jj) {
                raw = _mm512_dpbusd_epi32(raw, u.quad[4 * s + jj], _mm512_set1_epi32(quads[4 * s + jj]));
            }
            total = _mm512_add_epi32(total, _mm512_mullo_epi32(raw, u.scale[s]));
        }
        const __m512 part = _mm512_mul_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(total), u.d), _mm512_set1_ps(y.d));
        _mm512_storeu_ps(acc + 16 * t, _mm512_add_ps(_mm512_loadu_ps(acc + 16 * t), part));
    }
}

// Groups g0..g1 times tokens t0..t1 (a chunk whose activations stay in L2).
void groups_whole(const uint8_t *w, int64_t nb, int64_t g0, int64_t g1, const BlockQ8K *q, int64_t t0, int64_t t1,
                  ggml_tensor *dst) {
    thread_local std::vector<float> acc;
    thread_local std::vector<const BlockQ8K *> act;
    const int64_t n = t1 - t0;
    acc.resize((size_t)(16 * n));
    act.resize((size_t)n);
    for (int64_t t = 0; t < n; ++t) act[t] = q + (t0 + t) * nb;
    Unpacked u;
    for (int64_t g = g0; g < g1; ++g) {
        std::fill(acc.begin(), acc.end(), 0.0f);
        for (int64_t b = 0; b < nb; ++b) {
            unpack(w + (g * nb + b) * gs_x16::kQ6BlockBytes, u);
            superblock_times(u, b, act.data(), n, acc.data());
        }
        for (int64_t t = 0; t < n; ++t) {
            std::memcpy((char *)dst->data + (t0 + t) * dst->nb[1] + g * kRows * sizeof(float), acc.data() + 16 * t,
                        16 * sizeof(float));
        }
    }
}

// Under 8 tokens: one group times n (1 or 2) tokens.
void group_times(const uint8_t *gp, int64_t nb, int n, bool stream, const BlockQ8K *const *act, float *const *out) {
    if (n == 2) {
        stream ? group_lanes<2, true>(gp, nb, act, out) : group_lanes<2, false>(gp, nb, act, out);
    } else {
        stream ? group_lanes<1, true>(gp, nb, act, out) : group_lanes<1, false>(gp, nb, act, out);
    }
}

}  // namespace

void gs_x16_quantize_q8k(ggml_tensor *dst, int ith, int nth, void *) {
    const ggml_tensor *x = dst->src[0];
    const int64_t nb = x->ne[0] / 256, b0 = nb * ith / nth, b1 = nb * (ith + 1) / nth;
    if (b0 == b1) return;
    for (int64_t t = 0; t < ggml_nrows(x); ++t) {  // each thread its share of every row, as ggml splits it
        BlockQ8K *row = (BlockQ8K *)((char *)dst->data + t * dst->nb[1]) + b0;
        std::memset((void *)row, 0, (size_t)(b1 - b0) * sizeof(BlockQ8K));  // ggml leaves a zero block's bsums unset
        quantize_row_q8_K_ref((const float *)((const char *)x->data + t * x->nb[1]) + 256 * b0, row, 256 * (b1 - b0));
    }
}

void gs_x16_q6k_mul_mat(ggml_tensor *dst, int ith, int nth) {
    const ggml_tensor *w = dst->src[0], *x = dst->src[1];  // x: the activations as gs_x16_quantize_q8k wrote them
    const int64_t nb = w->ne[0] / 256, n_tokens = ggml_nrows(x), n_groups = w->ne[1] / kRows;
    const BlockQ8K *q = (const BlockQ8K *)x->data;  // rows are contiguous: nb blocks each
    const int64_t g0 = n_groups * ith / nth, g1 = n_groups * (ith + 1) / nth;
    const uint8_t *wp = (const uint8_t *)w->data;
    if (takes_tiled(x->ne[1])) {  // ggml's rule: the tokens of one matrix
        const int64_t chunk = std::max<int64_t>(16, kChunkBytes / (nb * (int64_t)sizeof(BlockQ8K)));
        for (int64_t c0 = 0; c0 < n_tokens; c0 += chunk) groups_whole(wp, nb, g0, g1, q, c0, std::min(n_tokens, c0 + chunk), dst);
        return;
    }
    const bool stream = n_tokens <= kTokenTile;  // one pass over the weights: prefetch them
    for (int64_t g = g0; g < g1; ++g) {
        for (int64_t t0 = 0; t0 < n_tokens; t0 += kTokenTile) {
            const int n = (int)std::min<int64_t>(kTokenTile, n_tokens - t0);
            const BlockQ8K *act[kTokenTile];
            float *out[kTokenTile];
            for (int t = 0; t < n; ++t) {
                act[t] = q + (t0 + t) * nb;
                out[t] = (float *)((char *)dst->data + (t0 + t) * dst->nb[1]) + g * kRows;
            }
            group_times(wp + g * nb * gs_x16::kQ6BlockBytes, nb, n, stream, act, out);
        }
    }
}
