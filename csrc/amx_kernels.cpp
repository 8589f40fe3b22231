// bf16 kernels on Intel AMX tiles (Sapphire Rapids and later), run as ggml custom ops on the
// CPU backend. ggml's own CPU matmul tops out at the f32 FMA rate on these machines (bf16
// weights included: its AVX512-BF16 path is no faster), while one AMX tile multiply does 16x16x32
// bf16 FMAs. This file is compiled with AMX/AVX512 flags; nothing here runs unless
// gs_amx_usable() (cpu_kernels.cpp, built without them) said yes.
//
// Tile use, the same in both kernels: tiles 0-3 accumulate a 32x32 f32 block of the output
// (2 row tiles x 2 column tiles), tiles 4-5 hold 32 rows of the left operand (bf16, 32 values
// of the inner dimension each), tiles 6-7 two 16-column blocks of the right operand in AMX's
// pair-interleaved layout ("VNNI": row p holds, for each column n, elements 2p and 2p+1).
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "amx_kernels.h"

namespace {

constexpr int kTileElems = 16 * 32;  // bf16 values in one 16-row x 64-byte tile

struct TileConfig {
    uint8_t palette_id;
    uint8_t start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
};

void configure_tiles() {
    // Other code (ggml's own AMX kernels) may have loaded another configuration in this thread.
    TileConfig cfg = {};
    cfg.palette_id = 1;
    for (int t = 0; t < 8; ++t) {
        cfg.rows[t] = 16;
        cfg.colsb[t] = 64;
    }
    _tile_loadconfig(&cfg);
}

int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// n floats -> bf16 (round to nearest even), zero-filled up to n_padded.
void to_bf16(const float *src, int64_t n, uint16_t *dst, int64_t n_padded) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256bh h = _mm512_cvtneps_pbh(_mm512_loadu_ps(src + i));
        _mm256_storeu_si256((__m256i *)(dst + i), (__m256i)h);
    }
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        __m256bh h = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, src + i));
        _mm256_mask_storeu_epi16(dst + i, m, (__m256i)h);
        i = n;
    }
    if (n_padded > n) std::memset(dst + n, 0, (n_padded - n) * sizeof(uint16_t));
}

// C[32 x 32] (4 accumulating tiles) = A[32 x 32*n_k] * B, A rows `a_stride` bytes apart,
// B given as per-k tile pointers b0 + k*b_step (left column block) and b1 + k*b_step.
inline void block_32x32(const uint16_t *a, int64_t a_stride, const uint16_t *b0, const uint16_t *b1,
                        int64_t b_step, int64_t n_k) {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    const char *a_lo = (const char *)a;
    const char *a_hi = a_lo + 16 * a_stride;
    for (int64_t k = 0; k < n_k; ++k) {
        _tile_loadd(4, a_lo + k * 64, a_stride);
        _tile_loadd(5, a_hi + k * 64, a_stride);
        _tile_loadd(6, b0 + k * b_step, 64);
        _tile_loadd(7, b1 + k * b_step, 64);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
}

// The 32x32 accumulator into c (f32, rows `c_stride` bytes apart).
inline void store_32x32(float *c, int64_t c_stride) {
    char *p = (char *)c;
    _tile_stored(0, p, c_stride);
    _tile_stored(1, p + 64, c_stride);
    _tile_stored(2, p + 16 * c_stride, c_stride);
    _tile_stored(3, p + 16 * c_stride + 64, c_stride);
}

// e^x for x <= 0 (softmax after subtracting the row maximum); 1 ulp-level polynomial.
inline __m512 exp_nonpositive(__m512 x) {
    x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504089f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}

// 16 floats of a row starting at d (zeros past n): the tails of heads that are not multiples of 16
inline __m512 load_row16(const float *r, int64_t d, int64_t n) {
    const int64_t live = std::clamp<int64_t>(n - d, 0, 16);
    return _mm512_maskz_loadu_ps((__mmask16)(live == 16 ? 0xffff : (1u << live) - 1), r + d);
}

// K^T tiles [key blk 16][d chunk][p][key][2]: a key's 32 values of one d chunk are 16 bf16 pairs,
// pair p going to tile row p at the key's column - one scatter of 16 words per key and chunk.
template <class Row>
void pack_keys(uint16_t *kt, Row row, int64_t n_keys, int64_t hd, int64_t n_dchunk) {
    const __m512i rows = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                            _mm512_set1_epi32(16));
    for (int64_t key = 0; key < n_keys; ++key) {
        const float *r = row(key);
        const __m512i index = _mm512_add_epi32(rows, _mm512_set1_epi32((int)(key % 16)));
        for (int64_t dch = 0; dch < n_dchunk; ++dch) {
            const int64_t d = dch * 32;
            __m512i words = (__m512i)_mm512_cvtne2ps_pbh(load_row16(r, d + 16, hd), load_row16(r, d, hd));
            _mm512_i32scatter_epi32(kt + ((key / 16) * n_dchunk + dch) * kTileElems, index, words, 4);
        }
    }
}

// V tiles [d blk 16][key chunk][p][d][2]: tile row p interleaves keys 2p and 2p+1 value by value.
template <class Row>
void pack_values(uint16_t *vt, Row row, int64_t n_keys, int64_t hd, int64_t Dp, int64_t n_kchunk) {
    alignas(64) static const uint16_t order[32] = {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23,
                                                   8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
    const __m512i interleave = _mm512_load_si512(order);
    for (int64_t key = 0; key < n_keys; key += 2) {
        const float *r0 = row(key), *r1 = key + 1 < n_keys ? row(key + 1) : nullptr;
        const int64_t kch = key / 32, p = (key % 32) / 2;
        for (int64_t dblk = 0; dblk < Dp / 16; ++dblk) {
            const __m256bh a = _mm512_cvtneps_pbh(load_row16(r0, dblk * 16, hd));
            const __m256bh b = r1 ? _mm512_cvtneps_pbh(load_row16(r1, dblk * 16, hd)) : (__m256bh)_mm256_setzero_si256();
            const __m512i both = _mm512_inserti64x4(_mm512_castsi256_si512((__m256i)a), (__m256i)b, 1);
            _mm512_storeu_si512(vt + ((dblk * n_kchunk + kch) * 16 + p) * 32, _mm512_permutexvar_epi16(interleave, both));
        }
    }
}

template <class T>
T *scratch(std::vector<T> &v, size_t n) {
    if (v.size() < n) v.resize(n);
    return v.data();
}

}  // namespace

// ---- matmul: dst[M, N] = W[M, K] x[K, N], W packed by pack_bf16_tiles ----------------------

void gs_amx_mul_mat(ggml_tensor *dst, int ith, int nth, void *) {
    const ggml_tensor *w = dst->src[0];
    const ggml_tensor *x = dst->src[1];
    const int64_t K = x->ne[0], N = ggml_nrows(x), M = dst->ne[0];
    const int64_t Kp = round_up(K, 32), n_kb = Kp / 32, n_ob = round_up(M, 32) / 32;
    constexpr int64_t kRows = 128;  // tokens converted at once: A block + a weight strip stay in L2
    const int64_t n_sb = (N + kRows - 1) / kRows;
    // split outputs too when there are few token blocks, so every thread has work
    const int64_t n_oc = std::min<int64_t>(n_ob, std::max<int64_t>(1, (2 * nth + n_sb - 1) / n_sb));
    const uint16_t *wp = (const uint16_t *)w->data;

    thread_local std::vector<uint16_t> a_buf;
    uint16_t *a = scratch(a_buf, (size_t)(kRows * Kp));
    float c[32 * 32];
    configure_tiles();
    for (int64_t item = ith; item < n_sb * n_oc; item += nth) {
        const int64_t sb = item / n_oc, oc = item % n_oc;
        const int64_t t0 = sb * kRows, rows = std::min(kRows, N - t0);
        for (int64_t r = 0; r < round_up(rows, 32); ++r) {
            if (r < rows) {
                to_bf16((const float *)((const char *)x->data + (t0 + r) * x->nb[1]), K, a + r * Kp, Kp);
            } else {
                std::memset(a + r * Kp, 0, Kp * sizeof(uint16_t));
            }
        }
        const int64_t ob0 = oc * n_ob / n_oc, ob1 = (oc + 1) * n_ob / n_oc;
        for (int64_t ob = ob0; ob < ob1; ++ob) {
            const uint16_t *b0 = wp + (2 * ob) * n_kb * kTileElems;
            const uint16_t *b1 = b0 + n_kb * kTileElems;
            const int64_t cols = std::min<int64_t>(32, M - ob * 32);
            for (int64_t tb = 0; tb * 32 < rows; ++tb) {
                block_32x32(a + tb * 32 * Kp, Kp * 2, b0, b1, kTileElems, n_kb);
                store_32x32(c, 32 * sizeof(float));
                for (int64_t r = 0; r < 32 && tb * 32 + r < rows; ++r) {
                    float *out = (float *)((char *)dst->data + (t0 + tb * 32 + r) * dst->nb[1]) + ob * 32;
                    std::memcpy(out, c + r * 32, cols * sizeof(float));
                }
            }
        }
    }
    _tile_release();
}

// ---- attention over all keys, no mask: dst[hd * H, N] from q, k, v [hd, H, N] --------------

void gs_amx_attention(ggml_tensor *dst, int ith, int nth, void *userdata) {
    const ggml_tensor *q = dst->src[0], *k = dst->src[1], *v = dst->src[2];
    float scale;
    std::memcpy(&scale, &userdata, sizeof(float));
    const int64_t hd = q->ne[0], H = q->ne[1], N = q->ne[2];
    const int64_t Dp = round_up(hd, 32), Np = round_up(N, 32);
    const int64_t n_dchunk = Dp / 32, n_kchunk = Np / 32;
    // queries of one head split over several threads only when there are fewer heads than threads
    const int64_t n_split = std::max<int64_t>(1, (nth + H - 1) / H);
    const int64_t n_qblk = Np / 32;

    thread_local std::vector<uint16_t> kt_buf, vt_buf, q_buf, p_buf;
    thread_local std::vector<float> s_buf, o_buf;
    uint16_t *kt = scratch(kt_buf, (size_t)(Np * Dp));   // K^T tiles: [key blk 16][d chunk][p][key][2]
    uint16_t *vt = scratch(vt_buf, (size_t)(Np * Dp));   // V tiles:   [d blk 16][key chunk][p][d][2]
    uint16_t *qb = scratch(q_buf, (size_t)(32 * Dp));
    uint16_t *pb = scratch(p_buf, (size_t)(32 * Np));
    float *s = scratch(s_buf, (size_t)(32 * Np));
    float *o = scratch(o_buf, (size_t)(32 * Dp));
    auto row = [](const ggml_tensor *t, int64_t head, int64_t token) {
        return (const float *)((const char *)t->data + head * t->nb[1] + token * t->nb[2]);
    };
    configure_tiles();
    for (int64_t item = ith; item < H * n_split; item += nth) {
        const int64_t h = item / n_split, split = item % n_split;
        std::memset(kt, 0, Np * Dp * sizeof(uint16_t));
        std::memset(vt, 0, Np * Dp * sizeof(uint16_t));
        pack_keys(kt, [&](int64_t key) { return row(k, h, key); }, N, hd, n_dchunk);
        pack_values(vt, [&](int64_t key) { return row(v, h, key); }, N, hd, Dp, n_kchunk);
        const int64_t qb0 = split * n_qblk / n_split, qb1 = (split + 1) * n_qblk / n_split;
        for (int64_t blk = qb0; blk < qb1; ++blk) {
            const int64_t t0 = blk * 32, rows = std::min<int64_t>(32, N - t0);
            for (int64_t r = 0; r < 32; ++r) {
                if (r < rows) to_bf16(row(q, h, t0 + r), hd, qb + r * Dp, Dp);
                else std::memset(qb + r * Dp, 0, Dp * sizeof(uint16_t));
            }
            for (int64_t kc = 0; kc < n_kchunk; ++kc) {   // scores for 32 keys at a time
                const uint16_t *b0 = kt + (2 * kc) * n_dchunk * kTileElems;
                block_32x32(qb, Dp * 2, b0, b0 + n_dchunk * kTileElems, kTileElems, n_dchunk);
                store_32x32(s + kc * 32, Np * sizeof(float));
            }
            float inv_sum[32];
            for (int64_t r = 0; r < 32; ++r) {
                float *sr = s + r * Np;
                uint16_t *pr = pb + r * Np;
                __m512 vmax = _mm512_set1_ps(-INFINITY);
                int64_t j = 0;
                for (; j + 16 <= N; j += 16) vmax = _mm512_max_ps(vmax, _mm512_loadu_ps(sr + j));
                float mx = _mm512_reduce_max_ps(vmax);
                for (int64_t t = j; t < N; ++t) mx = std::max(mx, sr[t]);
                const __m512 vscale = _mm512_set1_ps(scale), vshift = _mm512_set1_ps(-scale * mx);
                __m512 vsum = _mm512_setzero_ps();
                for (j = 0; j < Np; j += 16) {
                    const int64_t live = std::clamp<int64_t>(N - j, 0, 16);
                    const __mmask16 m = (__mmask16)(live == 16 ? 0xffff : (1u << live) - 1);
                    __m512 e = exp_nonpositive(_mm512_fmadd_ps(_mm512_loadu_ps(sr + j), vscale, vshift));
                    e = _mm512_maskz_mov_ps(m, e);   // padded keys weigh nothing
                    vsum = _mm512_add_ps(vsum, e);
                    _mm256_storeu_si256((__m256i *)(pr + j), (__m256i)_mm512_cvtneps_pbh(e));
                }
                inv_sum[r] = 1.0f / _mm512_reduce_add_ps(vsum);
            }
            for (int64_t dc = 0; dc < n_dchunk; ++dc) {   // output columns 32 at a time
                const uint16_t *b0 = vt + (2 * dc) * n_kchunk * kTileElems;
                block_32x32(pb, Np * 2, b0, b0 + n_kchunk * kTileElems, kTileElems, n_kchunk);
                store_32x32(o + dc * 32, Dp * sizeof(float));
            }
            for (int64_t r = 0; r < rows; ++r) {
                float *out = (float *)((char *)dst->data + (t0 + r) * dst->nb[1]) + h * hd;
                for (int64_t d = 0; d < hd; ++d) out[d] = o[r * Dp + d] * inv_sum[r];
            }
        }
    }
    _tile_release();
}
