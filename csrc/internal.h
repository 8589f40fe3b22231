// Private to the shim: error state and the guard that turns ggml assertions into errors.
#pragma once

#include <csetjmp>

#include "ggml-backend.h"
#include "ggml.h"

extern "C" {
#include "ggsight.h"
}

// Sets the calling thread's last error (printf-style) and returns `status`.
int gs_fail(int status, const char *fmt, ...);

// The innermost active guard of this thread, or NULL. ggml's abort callback long-jumps
// here instead of aborting the process. Only graph-building and other calling-thread work
// is guarded: an assertion inside a compute worker thread cannot be recovered.
extern thread_local std::jmp_buf *gs_active_guard;

inline ggml_tensor *T(gs_tensor *t) { return reinterpret_cast<ggml_tensor *>(t); }
inline const ggml_tensor *T(const gs_tensor *t) { return reinterpret_cast<const ggml_tensor *>(t); }
inline gs_tensor *G(ggml_tensor *t) { return reinterpret_cast<gs_tensor *>(t); }

struct gs_backend {
    ggml_backend_t backend;
    int device_index;
};

struct gs_context {
    ggml_context *ctx;
    size_t max_tensors;
};

// Runs `expr` (which returns a pointer) under a guard. Functions using it must hold no
// objects with destructors, since a long jump skips them.
#define GS_GUARDED_PTR(expr, on_fail)                                     \
    do {                                                                  \
        std::jmp_buf gs_env_;                                             \
        std::jmp_buf *gs_prev_ = gs_active_guard;                         \
        if (setjmp(gs_env_) == 0) {                                       \
            gs_active_guard = &gs_env_;                                   \
            auto gs_r_ = (expr);                                          \
            gs_active_guard = gs_prev_;                                   \
            return gs_r_;                                                 \
        }                                                                 \
        gs_active_guard = gs_prev_;                                       \
        return on_fail;                                                   \
    } while (0)
