// Our own CPU kernels as ggml custom ops: the AMX bf16 matmul and attention. This file is
// compiled for the baseline CPU; the kernels themselves (amx_kernels.cpp) only run after the
// checks here pass, so a build made on an AMX machine still loads on one without it.
#include <cstring>
#include <initializer_list>

#include "internal.h"
#if GGSIGHT_HAVE_AMX
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "amx_kernels.h"
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

int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

bool rows_contiguous(const ggml_tensor *t) {
    return t->type == GGML_TYPE_F32 && ggml_is_contiguous(t);
}

}  // namespace

extern "C" {

int gs_amx_bf16_usable(void) { return amx_usable() ? 1 : 0; }

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
