// Private to the shim: the x16 kernels (x16_kernels.cpp), callable as ggml custom ops.
#pragma once

#include "ggml.h"

// dst->src = {packed weight (Q8_0 or Q5_0 [K, n_rows], x16 layout), x (f32 [K, ...], contiguous
// rows)}; dst f32 [n_rows, rows of x]
void gs_x16_mul_mat(ggml_tensor *dst, int ith, int nth, void *userdata);
// dst->src = {packed weight, ids (i32 [n])}; dst f32 [K, n]
void gs_x16_get_rows(ggml_tensor *dst, int ith, int nth, void *userdata);
