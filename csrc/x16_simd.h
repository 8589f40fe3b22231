// Private to the x16 kernel files (x16_kernels.cpp, x16_q6k.cpp), which are compiled with AVX512
// flags: the steps their kernels share.
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace gs_x16 {

// Decoding passes over each group once: ask for the block two groups ahead (`bytes` from p).
inline void prefetch(const void *p, int64_t bytes) {
    for (int64_t off = 0; off < bytes; off += 64) _mm_prefetch((const char *)p + off, _MM_HINT_T0);
}

inline void zero_lanes(__m512 (&acc)[8]) {
    for (int i = 0; i < 8; ++i) acc[i] = _mm512_setzero_ps();
}

// 8 float accumulators (one per ggml lane, 16 rows each) summed in ggml's hsum_float_8 order.
inline __m512 sum_lanes_as_ggml(const __m512 (&acc)[8]) {
    const __m512 even = _mm512_add_ps(_mm512_add_ps(acc[0], acc[4]), _mm512_add_ps(acc[2], acc[6]));
    const __m512 odd = _mm512_add_ps(_mm512_add_ps(acc[1], acc[5]), _mm512_add_ps(acc[3], acc[7]));
    return _mm512_add_ps(even, odd);
}

}  // namespace gs_x16
