// Our own CPU kernels as ggml custom ops: the AMX bf16 matmul and attention, the Q8_0/Q5_0 x16
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

// The x16 layout (x16_kernels.cpp) block by block: each 32-value block as its scale's fp16 bits
// and 32 unsigned values u (Q8_0: value + 128, Q5_0: value + 16, as the GGUF stores it).
struct BlockValues {
    uint16_t scale;
    uint8_t u[32];
};

int64_t gguf_block_bytes(int type) { return type == GGML_TYPE_Q5_0 ? 22 : 34; }
int64_t x16_block_bytes(int type) { return 16 * gguf_block_bytes(type); }

BlockValues read_gguf_block(int type, const uint8_t *blk) {
    BlockValues v;
    std::memcpy(&v.scale, blk, 2);
    if (type == GGML_TYPE_Q5_0) {
        uint32_t qh;
        std::memcpy(&qh, blk + 2, 4);
        for (int j = 0; j < 32; ++j) {
            const int low = j < 16 ? blk[6 + j] & 0x0F : blk[6 + j - 16] >> 4;
            v.u[j] = (uint8_t)(low | ((qh >> j) & 1) << 4);
        }
    } else {
        for (int j = 0; j < 32; ++j) v.u[j] = blk[2 + j] ^ 0x80;
    }
    return v;
}

void write_gguf_block(int type, const BlockValues &v, uint8_t *blk) {
    std::memcpy(blk, &v.scale, 2);
    if (type == GGML_TYPE_Q5_0) {
        uint32_t qh = 0;
        for (int j = 0; j < 32; ++j) qh |= (uint32_t)(v.u[j] >> 4) << j;
        std::memcpy(blk + 2, &qh, 4);
        for (int j = 0; j < 16; ++j) blk[6 + j] = (uint8_t)((v.u[j] & 0x0F) | (v.u[j + 16] & 0x0F) << 4);
    } else {
        for (int j = 0; j < 32; ++j) blk[2 + j] = v.u[j] ^ 0x80;
    }
}

// Row r's share of one x16 block `p` (zeroed before the first row is stored).
void store_x16_row(int type, const BlockValues &v, int64_t r, uint8_t *p) {
    if (type == GGML_TYPE_Q5_0) {
        for (int i = 0; i < 4; ++i) {
            for (int j = 0; j < 4; ++j) p[64 * i + 4 * r + j] = (uint8_t)((v.u[4 * i + j] & 0x0F) | (v.u[16 + 4 * i + j] & 0x0F) << 4);
        }
        for (int k = 0; k < 8; ++k) {
            uint64_t mask;
            std::memcpy(&mask, p + 256 + 8 * k, 8);
            for (int j = 0; j < 4; ++j) mask |= (uint64_t)(v.u[4 * k + j] >> 4) << (4 * r + j);
            std::memcpy(p + 256 + 8 * k, &mask, 8);
        }
        std::memcpy(p + 320 + 2 * r, &v.scale, 2);
    } else {
        for (int k = 0; k < 8; ++k) std::memcpy(p + 64 * k + 4 * r, v.u + 4 * k, 4);
        std::memcpy(p + 512 + 2 * r, &v.scale, 2);
    }
}

BlockValues load_x16_row(int type, const uint8_t *p, int64_t r) {
    BlockValues v;
    if (type == GGML_TYPE_Q5_0) {
        for (int k = 0; k < 8; ++k) {
            uint64_t mask;
            std::memcpy(&mask, p + 256 + 8 * k, 8);
            for (int j = 0; j < 4; ++j) {
                const uint8_t byte = p[64 * (k % 4) + 4 * r + j];
                v.u[4 * k + j] = (uint8_t)((k < 4 ? byte & 0x0F : byte >> 4) | ((mask >> (4 * r + j)) & 1) << 4);
            }
        }
        std::memcpy(&v.scale, p + 320 + 2 * r, 2);
    } else {
        for (int k = 0; k < 8; ++k) std::memcpy(v.u + 4 * k, p + 64 * k + 4 * r, 4);
        std::memcpy(&v.scale, p + 512 + 2 * r, 2);
    }
    return v;
}

bool x16_shape_ok(int type, int64_t n_in, int64_t n_rows, const char *what) {
    if (type != GGML_TYPE_Q8_0 && type != GGML_TYPE_Q5_0) {
        gs_fail(GS_ERR_INVALID, "%s: the x16 layout holds Q8_0 and Q5_0, not %s", what,
                ggml_type_name((ggml_type)type));
        return false;
    }
    if (n_in <= 0 || n_in % 32 != 0 || n_rows <= 0 || n_rows % 16 != 0) {
        gs_fail(GS_ERR_INVALID, "%s: the x16 layout needs inputs a multiple of 32 and rows a multiple of 16, got "
                "%lld x %lld", what, (long long)n_in, (long long)n_rows);
        return false;
    }
    return true;
}

bool x16_weight_ok(const ggml_tensor *w, const char *what) {
    if (!ggml_is_matrix(w) || !ggml_is_contiguous(w) || !x16_shape_ok(w->type, w->ne[0], w->ne[1], what)) {
        gs_fail(GS_ERR_INVALID, "%s: '%s' must be a contiguous Q8_0 or Q5_0 matrix in the x16 layout", what, w->name);
        return false;
    }
    return true;
}

int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

bool rows_contiguous(const ggml_tensor *t) {
    return t->type == GGML_TYPE_F32 && ggml_is_contiguous(t);
}

}  // namespace

extern "C" {

int gs_amx_bf16_usable(void) { return amx_usable() ? 1 : 0; }

int gs_x16_usable(void) { return x16_usable() ? 1 : 0; }

int gs_pack_x16(int type, const void *src, void *dst, int64_t n_in, int64_t n_rows) {
    if (!src || !dst) return gs_fail(GS_ERR_INVALID, "gs_pack_x16: NULL argument");
    if (!x16_shape_ok(type, n_in, n_rows, "gs_pack_x16")) return GS_ERR_INVALID;
    const int64_t nb = n_in / 32, in_block = gguf_block_bytes(type), out_block = x16_block_bytes(type);
    std::memset(dst, 0, (size_t)(n_rows * nb * in_block));
    for (int64_t row = 0; row < n_rows; ++row) {
        uint8_t *group = (uint8_t *)dst + (row / 16) * nb * out_block;
        for (int64_t b = 0; b < nb; ++b) {
            const uint8_t *blk = (const uint8_t *)src + (row * nb + b) * in_block;
            store_x16_row(type, read_gguf_block(type, blk), row % 16, group + b * out_block);
        }
    }
    return GS_OK;
}

int gs_unpack_x16(int type, const void *src, void *dst, int64_t n_in, int64_t n_rows) {
    if (!src || !dst) return gs_fail(GS_ERR_INVALID, "gs_unpack_x16: NULL argument");
    if (!x16_shape_ok(type, n_in, n_rows, "gs_unpack_x16")) return GS_ERR_INVALID;
    const int64_t nb = n_in / 32, in_block = x16_block_bytes(type), out_block = gguf_block_bytes(type);
    for (int64_t row = 0; row < n_rows; ++row) {
        const uint8_t *group = (const uint8_t *)src + (row / 16) * nb * in_block;
        for (int64_t b = 0; b < nb; ++b) {
            uint8_t *blk = (uint8_t *)dst + (row * nb + b) * out_block;
            write_gguf_block(type, load_x16_row(type, group + b * in_block, row % 16), blk);
        }
    }
    return GS_OK;
}

gs_tensor *gs_mul_mat_x16(gs_context *c, gs_tensor *packed, gs_tensor *x) {
    if (!c || !packed || !x) {
        gs_fail(GS_ERR_INVALID, "gs_mul_mat_x16: NULL argument");
        return nullptr;
    }
    if (!x16_usable()) {
        gs_fail(GS_ERR_UNSUPPORTED, "gs_mul_mat_x16: this CPU (or build) has no AVX512-VNNI");
        return nullptr;
    }
    ggml_tensor *w = T(packed), *xt = T(x);
    if (!x16_weight_ok(w, "gs_mul_mat_x16")) return nullptr;
    if (!rows_contiguous(xt) || xt->ne[0] != w->ne[0]) {
        gs_fail(GS_ERR_INVALID, "gs_mul_mat_x16: input '%s' must be contiguous f32 with %lld rows (apply cont())",
                xt->name, (long long)w->ne[0]);
        return nullptr;
    }
#if GGSIGHT_HAVE_X16
    ggml_tensor *args[2] = {w, xt};
    GS_GUARDED_PTR(G(ggml_custom_4d(c->ctx, GGML_TYPE_F32, w->ne[1], xt->ne[1], xt->ne[2], xt->ne[3], args, 2,
                                    gs_x16_mul_mat, GGML_N_TASKS_MAX, nullptr)),
                   (gs_tensor *)nullptr);
#else
    return nullptr;
#endif
}

gs_tensor *gs_get_rows_x16(gs_context *c, gs_tensor *packed, gs_tensor *ids) {
    if (!c || !packed || !ids) {
        gs_fail(GS_ERR_INVALID, "gs_get_rows_x16: NULL argument");
        return nullptr;
    }
    if (!x16_usable()) {
        gs_fail(GS_ERR_UNSUPPORTED, "gs_get_rows_x16: this CPU (or build) has no AVX512-VNNI");
        return nullptr;
    }
    ggml_tensor *w = T(packed), *it = T(ids);
    if (!x16_weight_ok(w, "gs_get_rows_x16")) return nullptr;
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
