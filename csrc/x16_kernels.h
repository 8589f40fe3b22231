// Private to the shim: the x16 kernels (x16_kernels.cpp), callable as ggml custom ops.
#pragma once

#include "ggml.h"

// dst->src = {packed weight (Q8_0, Q5_0 or Q6_K [K, n_rows], x16 layout), x (f32 [K, ...], contiguous
// rows)}; dst f32 [n_rows, rows of x]
void gs_x16_mul_mat(ggml_tensor *dst, int ith, int nth, void *userdata);
// dst->src = {packed weight, ids (i32 [n])}; dst f32 [K, n]
void gs_x16_get_rows(ggml_tensor *dst, int ith, int nth, void *userdata);
// Q6_K's (x16_q6k.cpp): dst->src = {x (f32 [K, ...], contiguous rows)}; dst Q8_K of x's shape:
// x quantized as ggml does it, each thread a share of every row
void gs_x16_quantize_q8k(ggml_tensor *dst, int ith, int nth, void *userdata);
// to which gs_x16_mul_mat hands a Q6_K weight, with that dst instead of x as its src[1]
void gs_x16_q6k_mul_mat(ggml_tensor *dst, int ith, int nth);
