// Private to the shim: bf16 AMX kernels (amx_kernels.cpp), callable as ggml custom ops.
#pragma once

#include "ggml.h"

// dst->src = {packed weight (I16 tiles), x (f32, contiguous rows)}; dst f32 [M, rows of x]
void gs_amx_mul_mat(ggml_tensor *dst, int ith, int nth, void *userdata);
// dst->src = {q, k, v} f32 [hd, H, N] with contiguous rows; userdata carries the f32 scale
void gs_amx_attention(ggml_tensor *dst, int ith, int nth, void *userdata);
