// Our own CPU kernels as ggml custom ops: the AMX bf16 matmul and attention, the Q8_0/Q5_0/Q6_K x16
// matrix products. This file is compiled for the baseline CPU; the kernels themselves
// (amx_kernels.cpp, x16_kernels.cpp) only run after the checks here pass, so a build made on a
// newer machine still loads on an older one.
#include <cstring>
#include <initializer_list>

#include "internal.h"
#if GGSIGHT_HAVE_AMX || GGSIGHT_HAVE_X16
#include <cpuid.h>
#endif
#if GGSIGHT_HAVE_AMX
#include <sys/syscall.h>
#include <unistd.h>

#include "amx_kernels.h"
#endif
#include "x16_layout.h"
#if GGSIGHT_HAVE_X16
#include "x16_kernels.h"
#endif

namespace {

#if GGSIGHT_HAVE_AMX
bool cpu_has_amx_bf16() {
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    const bool tile = d & (1u << 24), bf16 = d & (1u << 22), avx512f = b & (1u << 16), avx512bw = b & (1u << 30);
    if (!(tile && bf16 && avx512f && avx512bw)) return false;
    if (!__get_cpuid_count(7, 1, &a, &b, &c, &d)) return false;
    return a & (1u << 5);  // AVX512_BF16, for the f32 -> bf16 conversions
}

// Linux hands out AMX tile state only to processes that ask for it.
bool os_grants_amx() {
    const long ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18;
    return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
}
#endif

bool amx_usable() {
#if GGSIGHT_HAVE_AMX
    static const bool ok = cpu_has_amx_bf16() && os_grants_amx();
    return ok;
#else
    return false;
#endif
}

#if GGSIGHT_HAVE_X16
bool cpu_has_avx512_vnni() {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
    const bool osxsave = c & (1u << 27), f16c = c & (1u << 29);
    if (!osxsave || !f16c) return false;
    unsigned lo, hi;
    __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 0xE6) != 0xE6) return false;  // the OS saves SSE, AVX and all AVX-512 state
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    const bool f = b & (1u << 16), bw = b & (1u << 30), vl = b & (1u << 31), vnni = c & (1u << 11);
    return f && bw && vl && vnni;
}
#endif

bool x16_usable() {
#if GGSIGHT_HAVE_X16
    static const bool ok = cpu_has_avx512_vnni();
    return ok;
#else
    return false;
#endif
}

// The checks both x16 ops start with: arguments, the CPU, the packed weight.
bool x16_args_ok(gs_context *c, gs_tensor *packed, gs_tensor *other, const char *what) {
    if (!c || !packed || !other) return gs_fail(GS_ERR_INVALID, "%s: NULL argument", what), false;
    if (!x16_usable()) return gs_fail(GS_ERR_UNSUPPORTED, "%s: this CPU (or build) has no AVX512-VNNI", what), false;
    const ggml_tensor *w = T(packed);
    if (!ggml_is_matrix(w) || !ggml_is_contiguous(w) || !gs_x16::shape_ok(w->type, w->ne[0], w->ne[1], what)) {
        gs_fail(GS_ERR_INVALID, "%s: '%s' must be a contiguous Q8_0, Q5_0 or Q6_K matrix in the x16 layout", what, w->name);
        return false;
    }
    return true;
}

#if GGSIGHT_HAVE_X16
// The matmul node, after a node that quantizes the activations to Q8_K for a Q6_K weight: once,
// by all threads (a custom op cannot wait for the others).
ggml_tensor *x16_mul_mat_nodes(ggml_context *ctx, ggml_tensor *w, ggml_tensor *x) {
    ggml_tensor *act = x;
    if (w->type == GGML_TYPE_Q6_K) {
        ggml_tensor *src[1] = {x};
        act = ggml_custom_4d(ctx, GGML_TYPE_Q8_K, x->ne[0], x->ne[1], x->ne[2], x->ne[3], src, 1, gs_x16_quantize_q8k,
                             GGML_N_TASKS_MAX, nullptr);
    }
    ggml_tensor *args[2] = {w, act};
    return ggml_custom_4d(ctx, GGML_TYPE_F32, w->ne[1], x->ne[1], x->ne[2], x->ne[3], args, 2, gs_x16_mul_mat,
                          GGML_N_TASKS_MAX, nullptr);
}
#endif

int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

bool rows_contiguous(const ggml_tensor *t) {
    return t->type == GGML_TYPE_F32 && ggml_is_contiguous(t);
}

}  // namespace

extern "C" {

int gs_amx_bf16_usable(void) { return amx_usable() ? 1 : 0; }

int gs_x16_usable(void) { return x16_usable() ? 1 : 0; }

gs_tensor *gs_mul_mat_x16(gs_context *c, gs_tensor *packed, gs_tensor *x) {
    if (!x16_args_ok(c, packed, x, "gs_mul_mat_x16")) return nullptr;
    ggml_tensor *w = T(packed), *xt = T(x);
    if (!rows_contiguous(xt) || xt->ne[0] != w->ne[0]) {
        gs_fail(GS_ERR_INVALID, "gs_mul_mat_x16: input '%s' must be contiguous f32 with %lld rows (apply cont())",
                xt->name, (long long)w->ne[0]);
        return nullptr;
    }
#if GGSIGHT_HAVE_X16
    GS_GUARDED_PTR(G(x16_mul_mat_nodes(c->ctx, w, xt)), (gs_tensor *)nullptr);
#else
    return nullptr;
#endif
}

gs_tensor *gs_get_rows_x16(gs_context *c, gs_tensor *packed, gs_tensor *ids) {
    if (!x16_args_ok(c, packed, ids, "gs_get_rows_x16")) return nullptr;
    ggml_tensor *w = T(packed), *it = T(ids);
    if (it->type != GGML_TYPE_I32 || !ggml_is_vector(it) || !ggml_is_contiguous(it)) {
        gs_fail(GS_ERR_INVALID, "gs_get_rows_x16: ids '%s' must be a contiguous i32 vector", it->name);
        return nullptr;
    }
#if GGSIGHT_HAVE_X16
    ggml_tensor *args[2] = {w, it};
    GS_GUARDED_PTR(G(ggml_custom_4d(c->ctx, GGML_TYPE_F32, w->ne[0], it->ne[0], 1, 1, args, 2, gs_x16_get_rows,
                                    GGML_N_TASKS_MAX, nullptr)),
                   (gs_tensor *)nullptr);
#else
    return nullptr;
#endif
}

gs_tensor *gs_mul_mat_bf16_tiles(gs_context *c, gs_tensor *packed, gs_tensor *x, int64_t n_out) {
    if (!c || !packed || !x) {
        gs_fail(GS_ERR_INVALID, "gs_mul_mat_bf16_tiles: NULL argument");
        return nullptr;
    }
    if (!amx_usable()) {
        gs_fail(GS_ERR_UNSUPPORTED, "gs_mul_mat_bf16_tiles: this CPU (or build) has no AMX-BF16");
        return nullptr;
    }
    ggml_tensor *w = T(packed), *xt = T(x);
    const int64_t want = round_up(n_out, 32) * round_up(xt->ne[0], 32);
    if (w->type != GGML_TYPE_I16 || ggml_nelements(w) != want || !ggml_is_contiguous(w)) {
        gs_fail(GS_ERR_INVALID, "gs_mul_mat_bf16_tiles: packed weight '%s' must be %lld contiguous i16 values "
                "(%lld outputs x %lld inputs, padded to 32)", w->name, (long long)want, (long long)n_out,
                (long long)xt->ne[0]);
        return nullptr;
    }
    if (!rows_contiguous(xt)) {
        gs_fail(GS_ERR_INVALID, "gs_mul_mat_bf16_tiles: input '%s' must be contiguous f32 (apply cont())", xt->name);
        return nullptr;
    }
#if GGSIGHT_HAVE_AMX
    ggml_tensor *args[2] = {w, xt};
    GS_GUARDED_PTR(G(ggml_custom_4d(c->ctx, GGML_TYPE_F32, n_out, xt->ne[1], xt->ne[2], xt->ne[3], args, 2,
                                    gs_amx_mul_mat, GGML_N_TASKS_MAX, nullptr)),
                   (gs_tensor *)nullptr);
#else
    return nullptr;
#endif
}

gs_tensor *gs_attention_bf16_tiles(gs_context *c, gs_tensor *q, gs_tensor *k, gs_tensor *v, float scale) {
    if (!c || !q || !k || !v) {
        gs_fail(GS_ERR_INVALID, "gs_attention_bf16_tiles: NULL argument");
        return nullptr;
    }
    if (!amx_usable()) {
        gs_fail(GS_ERR_UNSUPPORTED, "gs_attention_bf16_tiles: this CPU (or build) has no AMX-BF16");
        return nullptr;
    }
    ggml_tensor *qt = T(q), *kt = T(k), *vt = T(v);
    for (ggml_tensor *t : {qt, kt, vt}) {
        if (!rows_contiguous(t) || !ggml_are_same_shape(t, qt) || t->ne[3] != 1) {
            gs_fail(GS_ERR_INVALID, "gs_attention_bf16_tiles: q, k, v must be contiguous f32 [head_dim, n_head, "
                    "n_tokens] of one shape ('%s' is not)", t->name);
            return nullptr;
        }
    }
#if GGSIGHT_HAVE_AMX
    void *userdata = nullptr;
    std::memcpy(&userdata, &scale, sizeof(float));
    ggml_tensor *args[3] = {qt, kt, vt};
    GS_GUARDED_PTR(G(ggml_custom_4d(c->ctx, GGML_TYPE_F32, qt->ne[0] * qt->ne[1], qt->ne[2], 1, 1, args, 3,
                                    gs_amx_attention, GGML_N_TASKS_MAX, userdata)),
                   (gs_tensor *)nullptr);
#else
    (void)scale;
    return nullptr;
#endif
}

}  // extern "C"
