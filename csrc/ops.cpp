// Op wrappers: one per ggml op, same arguments. Each checks its handles and then runs the
// ggml call under a guard, so a shape error becomes GS_ERR_GGML with ggml's message.
#include <cstring>

#include "internal.h"

// NULL handles are refused before ggml sees them.
#define NEED(x)                                                              \
    if (!(x)) {                                                              \
        gs_fail(GS_ERR_INVALID, "%s: argument '%s' is NULL", __func__, #x); \
        return nullptr;                                                      \
    }

#define OP(expr) GS_GUARDED_PTR(G(expr), (gs_tensor *)nullptr)

// ctx, a
#define UNARY(name, call) \
    gs_tensor *name(gs_context *c, gs_tensor *a) { NEED(c) NEED(a) OP(call(c->ctx, T(a))); }
// ctx, a, b
#define BINARY(name, call)                                    \
    gs_tensor *name(gs_context *c, gs_tensor *a, gs_tensor *b) { \
        NEED(c) NEED(a) NEED(b) OP(call(c->ctx, T(a), T(b)));    \
    }
// ctx, a, eps
#define NORM(name, call) \
    gs_tensor *name(gs_context *c, gs_tensor *a, float eps) { NEED(c) NEED(a) OP(call(c->ctx, T(a), eps)); }

// ggml's CPU kernels for add/sub/mul/div assert (in a compute thread, fatally) when the
// first operand's rows are not contiguous, and its supports_op does not say so: refuse here.
#define ELEMENTWISE(fn_name, call)                                                                  \
    gs_tensor *fn_name(gs_context *c, gs_tensor *a, gs_tensor *b) {                              \
        NEED(c) NEED(a) NEED(b)                                                                  \
        if (T(a)->nb[0] != ggml_type_size(T(a)->type)) {                                         \
            gs_fail(GS_ERR_INVALID, "%s: the first operand '%s' has non-contiguous rows (a transposed " \
                    "view?): apply cont() to it first", #call, T(a)->name);                     \
            return nullptr;                                                                      \
        }                                                                                        \
        OP(call(c->ctx, T(a), T(b)));                                                            \
    }

static ggml_tensor *opt(gs_tensor *t) { return t ? T(t) : nullptr; }

extern "C" {

// ---- views and layout ------------------------------------------------------------------

gs_tensor *gs_reshape(gs_context *c, gs_tensor *a, int n, const int64_t *ne) {
    NEED(c) NEED(a) NEED(ne)
    switch (n) {
        case 1: OP(ggml_reshape_1d(c->ctx, T(a), ne[0]));
        case 2: OP(ggml_reshape_2d(c->ctx, T(a), ne[0], ne[1]));
        case 3: OP(ggml_reshape_3d(c->ctx, T(a), ne[0], ne[1], ne[2]));
        case 4: OP(ggml_reshape_4d(c->ctx, T(a), ne[0], ne[1], ne[2], ne[3]));
    }
    gs_fail(GS_ERR_INVALID, "gs_reshape: %d dims (1..4 allowed)", n);
    return nullptr;
}

gs_tensor *gs_view(gs_context *c, gs_tensor *a, int n, const int64_t *ne, const uint64_t *nb, uint64_t offset) {
    NEED(c) NEED(a) NEED(ne) NEED(nb)
    if (n < 1 || n > 4) {
        gs_fail(GS_ERR_INVALID, "gs_view: %d dims (1..4 allowed)", n);
        return nullptr;
    }
    // ggml checks only the contiguous extent; with explicit strides check the real one.
    const ggml_tensor *src = T(a);
    uint64_t last = offset + ggml_row_size(src->type, ne[0]);
    for (int i = 1; i < n; i++) {
        if (ne[i] < 1) {
            gs_fail(GS_ERR_INVALID, "gs_view: ne[%d] = %lld", i, (long long)ne[i]);
            return nullptr;
        }
        last += (uint64_t)(ne[i] - 1) * nb[i];
    }
    if (ne[0] < 1 || last > ggml_nbytes(src)) {
        gs_fail(GS_ERR_INVALID, "gs_view: view of '%s' reaches byte %llu but the tensor has %zu", src->name,
                (unsigned long long)last, ggml_nbytes(src));
        return nullptr;
    }
    switch (n) {
        case 1: OP(ggml_view_1d(c->ctx, T(a), ne[0], offset));
        case 2: OP(ggml_view_2d(c->ctx, T(a), ne[0], ne[1], nb[1], offset));
        case 3: OP(ggml_view_3d(c->ctx, T(a), ne[0], ne[1], ne[2], nb[1], nb[2], offset));
        default: OP(ggml_view_4d(c->ctx, T(a), ne[0], ne[1], ne[2], ne[3], nb[1], nb[2], nb[3], offset));
    }
}

gs_tensor *gs_permute(gs_context *c, gs_tensor *a, int ax0, int ax1, int ax2, int ax3) {
    NEED(c) NEED(a) OP(ggml_permute(c->ctx, T(a), ax0, ax1, ax2, ax3));
}

UNARY(gs_transpose, ggml_transpose)
UNARY(gs_cont, ggml_cont)
UNARY(gs_dup, ggml_dup)
BINARY(gs_cpy, ggml_cpy)

gs_tensor *gs_cast(gs_context *c, gs_tensor *a, int type) {
    NEED(c) NEED(a)
    if (type < 0 || type >= GGML_TYPE_COUNT) {
        gs_fail(GS_ERR_INVALID, "gs_cast: unknown type %d", type);
        return nullptr;
    }
    OP(ggml_cast(c->ctx, T(a), (ggml_type)type));
}

gs_tensor *gs_concat(gs_context *c, gs_tensor *a, gs_tensor *b, int dim) {
    NEED(c) NEED(a) NEED(b) OP(ggml_concat(c->ctx, T(a), T(b), dim));
}

gs_tensor *gs_repeat(gs_context *c, gs_tensor *a, const int64_t *ne) {
    NEED(c) NEED(a) NEED(ne) OP(ggml_repeat_4d(c->ctx, T(a), ne[0], ne[1], ne[2], ne[3]));
}

BINARY(gs_get_rows, ggml_get_rows)

gs_tensor *gs_set_rows(gs_context *c, gs_tensor *dst, gs_tensor *src, gs_tensor *rows) {
    NEED(c) NEED(dst) NEED(src) NEED(rows) OP(ggml_set_rows(c->ctx, T(dst), T(src), T(rows)));
}

gs_tensor *gs_pad(gs_context *c, gs_tensor *a, const int32_t *p) {
    NEED(c) NEED(a) NEED(p) OP(ggml_pad_ext(c->ctx, T(a), p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]));
}

gs_tensor *gs_win_part(gs_context *c, gs_tensor *a, int w) { NEED(c) NEED(a) OP(ggml_win_part(c->ctx, T(a), w)); }

gs_tensor *gs_win_unpart(gs_context *c, gs_tensor *a, int w0, int h0, int w) {
    NEED(c) NEED(a) OP(ggml_win_unpart(c->ctx, T(a), w0, h0, w));
}

// ---- elementwise -------------------------------------------------------------------------

ELEMENTWISE(gs_add, ggml_add)
ELEMENTWISE(gs_sub, ggml_sub)
ELEMENTWISE(gs_mul, ggml_mul)
ELEMENTWISE(gs_div, ggml_div)

gs_tensor *gs_add_id(gs_context *c, gs_tensor *a, gs_tensor *b, gs_tensor *ids) {
    NEED(c) NEED(a) NEED(b) NEED(ids) OP(ggml_add_id(c->ctx, T(a), T(b), T(ids)));
}

gs_tensor *gs_scale(gs_context *c, gs_tensor *a, float s) { NEED(c) NEED(a) OP(ggml_scale(c->ctx, T(a), s)); }

gs_tensor *gs_scale_bias(gs_context *c, gs_tensor *a, float s, float b) {
    NEED(c) NEED(a) OP(ggml_scale_bias(c->ctx, T(a), s, b));
}

gs_tensor *gs_clamp(gs_context *c, gs_tensor *a, float lo, float hi) {
    NEED(c) NEED(a) OP(ggml_clamp(c->ctx, T(a), lo, hi));
}

UNARY(gs_sqr, ggml_sqr)
UNARY(gs_sqrt, ggml_sqrt)
UNARY(gs_log, ggml_log)
UNARY(gs_exp, ggml_exp)
UNARY(gs_sin, ggml_sin)
UNARY(gs_cos, ggml_cos)
UNARY(gs_abs, ggml_abs)
UNARY(gs_neg, ggml_neg)
UNARY(gs_tanh, ggml_tanh)
UNARY(gs_floor, ggml_floor)
UNARY(gs_sigmoid, ggml_sigmoid)
UNARY(gs_relu, ggml_relu)
UNARY(gs_gelu, ggml_gelu)
UNARY(gs_gelu_erf, ggml_gelu_erf)
UNARY(gs_gelu_quick, ggml_gelu_quick)
UNARY(gs_silu, ggml_silu)
UNARY(gs_softplus, ggml_softplus)
BINARY(gs_swiglu_split, ggml_swiglu_split)
BINARY(gs_geglu_split, ggml_geglu_split)
BINARY(gs_geglu_erf_split, ggml_geglu_erf_split)

// ---- reductions and normalisation --------------------------------------------------------

UNARY(gs_sum, ggml_sum)
UNARY(gs_sum_rows, ggml_sum_rows)
UNARY(gs_mean, ggml_mean)
UNARY(gs_argmax, ggml_argmax)

gs_tensor *gs_argsort(gs_context *c, gs_tensor *a, int order) {
    NEED(c) NEED(a) OP(ggml_argsort(c->ctx, T(a), order ? GGML_SORT_ORDER_DESC : GGML_SORT_ORDER_ASC));
}

gs_tensor *gs_top_k(gs_context *c, gs_tensor *a, int k) { NEED(c) NEED(a) OP(ggml_top_k(c->ctx, T(a), k)); }

NORM(gs_norm, ggml_norm)
NORM(gs_rms_norm, ggml_rms_norm)
NORM(gs_l2_norm, ggml_l2_norm)

gs_tensor *gs_group_norm(gs_context *c, gs_tensor *a, int n_groups, float eps) {
    NEED(c) NEED(a) OP(ggml_group_norm(c->ctx, T(a), n_groups, eps));
}

gs_tensor *gs_soft_max(gs_context *c, gs_tensor *a, gs_tensor *mask, float scale, float max_bias) {
    NEED(c) NEED(a) OP(ggml_soft_max_ext(c->ctx, T(a), opt(mask), scale, max_bias));
}

gs_tensor *gs_diag_mask_inf(gs_context *c, gs_tensor *a, int n_past) {
    NEED(c) NEED(a) OP(ggml_diag_mask_inf(c->ctx, T(a), n_past));
}

// ---- matrix products, attention, positions ----------------------------------------------

BINARY(gs_mul_mat, ggml_mul_mat)
BINARY(gs_out_prod, ggml_out_prod)

gs_tensor *gs_mul_mat_id(gs_context *c, gs_tensor *experts, gs_tensor *b, gs_tensor *ids) {
    NEED(c) NEED(experts) NEED(b) NEED(ids) OP(ggml_mul_mat_id(c->ctx, T(experts), T(b), T(ids)));
}

gs_tensor *gs_flash_attn(gs_context *c, gs_tensor *q, gs_tensor *k, gs_tensor *v, gs_tensor *mask, float scale,
                         float max_bias, float softcap) {
    NEED(c) NEED(q) NEED(k) NEED(v)
    OP(ggml_flash_attn_ext(c->ctx, T(q), T(k), T(v), opt(mask), scale, max_bias, softcap));
}

gs_tensor *gs_rope(gs_context *c, gs_tensor *a, gs_tensor *pos, gs_tensor *ff, int n_dims, int mode, int n_ctx_orig,
                   float freq_base, float freq_scale, float ext_factor, float attn_factor, float beta_fast,
                   float beta_slow) {
    NEED(c) NEED(a) NEED(pos)
    OP(ggml_rope_ext(c->ctx, T(a), T(pos), opt(ff), n_dims, mode, n_ctx_orig, freq_base, freq_scale, ext_factor,
                     attn_factor, beta_fast, beta_slow));
}

gs_tensor *gs_rope_multi(gs_context *c, gs_tensor *a, gs_tensor *pos, gs_tensor *ff, int n_dims,
                         const int32_t *sections4, int mode, int n_ctx_orig, float freq_base, float freq_scale,
                         float ext_factor, float attn_factor, float beta_fast, float beta_slow) {
    NEED(c) NEED(a) NEED(pos) NEED(sections4)
    int sections[GGML_MROPE_SECTIONS];
    for (int i = 0; i < GGML_MROPE_SECTIONS; i++) sections[i] = sections4[i];
    OP(ggml_rope_multi(c->ctx, T(a), T(pos), opt(ff), n_dims, sections, mode, n_ctx_orig, freq_base, freq_scale,
                       ext_factor, attn_factor, beta_fast, beta_slow));
}

gs_tensor *gs_arange(gs_context *c, float start, float stop, float step) {
    NEED(c) OP(ggml_arange(c->ctx, start, stop, step));
}

// ---- images -----------------------------------------------------------------------------

gs_tensor *gs_im2col(gs_context *c, gs_tensor *k, gs_tensor *d, int s0, int s1, int p0, int p1, int d0, int d1,
                     int is_2d, int dst_type) {
    NEED(c) NEED(k) NEED(d)
    OP(ggml_im2col(c->ctx, T(k), T(d), s0, s1, p0, p1, d0, d1, is_2d != 0, (ggml_type)dst_type));
}

gs_tensor *gs_conv_2d(gs_context *c, gs_tensor *k, gs_tensor *d, int s0, int s1, int p0, int p1, int d0, int d1) {
    NEED(c) NEED(k) NEED(d) OP(ggml_conv_2d(c->ctx, T(k), T(d), s0, s1, p0, p1, d0, d1));
}

gs_tensor *gs_conv_2d_direct(gs_context *c, gs_tensor *k, gs_tensor *d, int s0, int s1, int p0, int p1, int d0,
                             int d1) {
    NEED(c) NEED(k) NEED(d) OP(ggml_conv_2d_direct(c->ctx, T(k), T(d), s0, s1, p0, p1, d0, d1));
}

gs_tensor *gs_conv_2d_dw(gs_context *c, gs_tensor *k, gs_tensor *d, int s0, int s1, int p0, int p1, int d0,
                         int d1) {
    NEED(c) NEED(k) NEED(d) OP(ggml_conv_2d_dw(c->ctx, T(k), T(d), s0, s1, p0, p1, d0, d1));
}

gs_tensor *gs_pool_1d(gs_context *c, gs_tensor *a, int op, int k0, int s0, int p0) {
    NEED(c) NEED(a) OP(ggml_pool_1d(c->ctx, T(a), op ? GGML_OP_POOL_AVG : GGML_OP_POOL_MAX, k0, s0, p0));
}

gs_tensor *gs_pool_2d(gs_context *c, gs_tensor *a, int op, int k0, int k1, int s0, int s1, float p0, float p1) {
    NEED(c) NEED(a) OP(ggml_pool_2d(c->ctx, T(a), op ? GGML_OP_POOL_AVG : GGML_OP_POOL_MAX, k0, k1, s0, s1, p0, p1));
}

gs_tensor *gs_interpolate(gs_context *c, gs_tensor *a, const int64_t *ne, uint32_t mode) {
    NEED(c) NEED(a) NEED(ne) OP(ggml_interpolate(c->ctx, T(a), ne[0], ne[1], ne[2], ne[3], mode));
}

}  // extern "C"

// The public enums mirror ggml's; a ggml bump that moves a value fails to compile here.
static_assert(GS_TYPE_F32 == (int)GGML_TYPE_F32 && GS_TYPE_F16 == (int)GGML_TYPE_F16, "type ids");
static_assert(GS_TYPE_Q8_0 == (int)GGML_TYPE_Q8_0 && GS_TYPE_Q4_K == (int)GGML_TYPE_Q4_K, "type ids");
static_assert(GS_TYPE_Q6_K == (int)GGML_TYPE_Q6_K && GS_TYPE_BF16 == (int)GGML_TYPE_BF16, "type ids");
static_assert(GS_TYPE_I32 == (int)GGML_TYPE_I32 && GS_TYPE_MXFP4 == (int)GGML_TYPE_MXFP4, "type ids");
static_assert(GS_TYPE_Q2_0 == (int)GGML_TYPE_Q2_0 && GS_TYPE_COUNT == (int)GGML_TYPE_COUNT, "type ids");
static_assert(GS_ROPE_NEOX == GGML_ROPE_TYPE_NEOX && GS_ROPE_MROPE == GGML_ROPE_TYPE_MROPE, "rope modes");
static_assert(GS_ROPE_VISION == GGML_ROPE_TYPE_VISION && GS_ROPE_IMROPE == GGML_ROPE_TYPE_IMROPE, "rope modes");
static_assert(GS_MROPE_SECTIONS == GGML_MROPE_SECTIONS && GS_MAX_NAME == GGML_MAX_NAME, "limits");
static_assert(GS_SCALE_BICUBIC == (int)GGML_SCALE_MODE_BICUBIC, "scale modes");
static_assert(GS_SCALE_FLAG_ALIGN_CORNERS == (int)GGML_SCALE_FLAG_ALIGN_CORNERS, "scale flags");
static_assert(GS_SCALE_FLAG_ANTIALIAS == (int)GGML_SCALE_FLAG_ANTIALIAS, "scale flags");
static_assert(GS_DEVICE_ACCEL == 3, "device types");
