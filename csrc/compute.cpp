// Buffers (where tensor data lives), graphs and the scheduler.
#include <cstring>
#include <vector>

#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "internal.h"

struct gs_sched {
    ggml_backend_sched_t sched;
    std::vector<ggml_backend_t> backends;
    std::vector<gs_backend *> handles;
};

static inline ggml_backend_buffer_t B(gs_buffer *b) { return reinterpret_cast<ggml_backend_buffer_t>(b); }
static inline gs_buffer *GB(ggml_backend_buffer_t b) { return reinterpret_cast<gs_buffer *>(b); }
static inline ggml_cgraph *CG(gs_graph *g) { return reinterpret_cast<ggml_cgraph *>(g); }

static ggml_backend_dev_t device_or_fail(int i) {
    if (i < 0 || (size_t)i >= ggml_backend_dev_count()) {
        gs_fail(GS_ERR_INVALID, "no device %d (this build has %d)", i, (int)ggml_backend_dev_count());
        return nullptr;
    }
    return ggml_backend_dev_get(i);
}

static ggml_backend_buffer_type_t buft_of(ggml_backend_dev_t dev, int host) {
    ggml_backend_buffer_type_t buft = host ? ggml_backend_dev_host_buffer_type(dev) : nullptr;
    return buft ? buft : ggml_backend_dev_buffer_type(dev);
}

extern "C" {

// ---- buffers ------------------------------------------------------------------------------

gs_buffer *gs_buffer_alloc_context(gs_context *c, int device_index, int host) {
    ggml_backend_dev_t dev = device_or_fail(device_index);
    if (!dev) return nullptr;
    if (!c) {
        gs_fail(GS_ERR_INVALID, "gs_buffer_alloc_context: NULL context");
        return nullptr;
    }
    ggml_backend_buffer_type_t buft = buft_of(dev, host);
    size_t need = ggml_backend_alloc_ctx_tensors_from_buft_size(c->ctx, buft);
    if (need == 0) {
        gs_fail(GS_ERR_INVALID, "gs_buffer_alloc_context: no tensor in the context needs memory");
        return nullptr;
    }
    ggml_backend_buffer_t buf = ggml_backend_alloc_ctx_tensors_from_buft(c->ctx, buft);
    if (!buf) {
        gs_fail(GS_ERR_OOM, "could not allocate %zu bytes on %s", need, ggml_backend_dev_name(dev));
        return nullptr;
    }
    return GB(buf);
}

gs_buffer *gs_buffer_new(int device_index, size_t size, int host) {
    ggml_backend_dev_t dev = device_or_fail(device_index);
    if (!dev) return nullptr;
    ggml_backend_buffer_t buf = ggml_backend_buft_alloc_buffer(buft_of(dev, host), size ? size : 1);
    if (!buf) {
        gs_fail(GS_ERR_OOM, "could not allocate %zu bytes on %s", size, ggml_backend_dev_name(dev));
        return nullptr;
    }
    return GB(buf);
}

}  // extern "C"

static ggml_backend_buffer_t from_host_guarded(ggml_backend_dev_t dev, void *ptr, size_t size, size_t max_tensor) {
    GS_GUARDED_PTR(ggml_backend_dev_buffer_from_host_ptr(dev, ptr, size, max_tensor), (ggml_backend_buffer_t) nullptr);
}

extern "C" {

gs_buffer *gs_buffer_from_host_ptr(int device_index, void *ptr, size_t size, size_t max_tensor) {
    ggml_backend_dev_t dev = device_or_fail(device_index);
    if (!dev) return nullptr;
    if (!ptr || !size) {
        gs_fail(GS_ERR_INVALID, "gs_buffer_from_host_ptr: empty memory range");
        return nullptr;
    }
    ggml_backend_dev_props props;
    ggml_backend_dev_get_props(dev, &props);
    if (!props.caps.buffer_from_host_ptr) {
        gs_fail(GS_ERR_UNSUPPORTED, "device %s cannot use host memory directly; copy the data instead",
                ggml_backend_dev_name(dev));
        return nullptr;
    }
    // ggml asserts on this instead of failing; 32 is its TENSOR_ALIGNMENT.
    if ((uintptr_t)ptr % 32) {
        gs_fail(GS_ERR_INVALID, "host memory at %p is not aligned to 32 bytes", ptr);
        return nullptr;
    }
    ggml_backend_buffer_t buf = from_host_guarded(dev, ptr, size, max_tensor ? max_tensor : size);
    if (!buf) {
        gs_fail(GS_ERR_BACKEND, "device %s refused host memory of %zu bytes", ggml_backend_dev_name(dev), size);
        return nullptr;
    }
    return GB(buf);
}

int gs_buffer_place(gs_buffer *gb, gs_tensor *gt, size_t offset) {
    if (!gb || !gt) return gs_fail(GS_ERR_INVALID, "gs_buffer_place: NULL argument");
    ggml_backend_buffer_t buf = B(gb);
    ggml_tensor *t = T(gt);
    if (t->buffer || t->data || t->view_src)
        return gs_fail(GS_ERR_INVALID, "tensor '%s' already has data or is a view", t->name);
    size_t align = ggml_backend_buffer_get_alignment(buf);
    char *base = (char *)ggml_backend_buffer_get_base(buf);
    size_t size = ggml_backend_buffer_get_size(buf);
    size_t need = ggml_backend_buffer_get_alloc_size(buf, t);
    if (((uintptr_t)(base + offset)) % align)
        return gs_fail(GS_ERR_INVALID, "tensor '%s' at offset %zu is not aligned to %zu bytes", t->name, offset, align);
    if (offset > size || need > size - offset)
        return gs_fail(GS_ERR_INVALID, "tensor '%s' (%zu bytes at offset %zu) does not fit a buffer of %zu bytes",
                       t->name, need, offset, size);
    if (ggml_backend_tensor_alloc(buf, t, base + offset) != GGML_STATUS_SUCCESS)
        return gs_fail(GS_ERR_BACKEND, "could not place tensor '%s'", t->name);
    return GS_OK;
}

size_t gs_buffer_size(gs_buffer *b) { return b ? ggml_backend_buffer_get_size(B(b)) : 0; }
size_t gs_buffer_alignment(gs_buffer *b) { return b ? ggml_backend_buffer_get_alignment(B(b)) : 0; }
int gs_buffer_is_host(gs_buffer *b) { return b && ggml_backend_buffer_is_host(B(b)); }

int gs_buffer_clear(gs_buffer *b, uint8_t value) {
    if (!b) return gs_fail(GS_ERR_INVALID, "NULL buffer");
    ggml_backend_buffer_clear(B(b), value);
    return GS_OK;
}

int gs_buffer_mark_weights(gs_buffer *b) {
    if (!b) return gs_fail(GS_ERR_INVALID, "NULL buffer");
    ggml_backend_buffer_set_usage(B(b), GGML_BACKEND_BUFFER_USAGE_WEIGHTS);
    return GS_OK;
}

void gs_buffer_free(gs_buffer *b) {
    if (b) ggml_backend_buffer_free(B(b));
}

static ggml_backend_buffer_type_t extra_buft(ggml_backend_dev_t dev, int i, int *count) {
    auto get = (ggml_backend_dev_get_extra_bufts_t)ggml_backend_reg_get_proc_address(
        ggml_backend_dev_backend_reg(dev), "ggml_backend_dev_get_extra_bufts");
    ggml_backend_buffer_type_t *list = get ? get(dev) : nullptr;
    int n = 0;
    while (list && list[n]) n++;
    if (count) *count = n;
    return (i >= 0 && i < n) ? list[i] : nullptr;
}

int gs_device_extra_buft_count(int device_index) {
    ggml_backend_dev_t dev = device_or_fail(device_index);
    int n = 0;
    if (dev) extra_buft(dev, -1, &n);
    return n;
}

const char *gs_device_extra_buft_name(int device_index, int i) {
    ggml_backend_dev_t dev = device_or_fail(device_index);
    ggml_backend_buffer_type_t buft = dev ? extra_buft(dev, i, nullptr) : nullptr;
    return buft ? ggml_backend_buft_name(buft) : "";
}

int gs_extra_buft_supports_matmul(int device_index, int i, gs_tensor *gw) {
    ggml_backend_dev_t dev = device_or_fail(device_index);
    ggml_backend_buffer_type_t buft = dev ? extra_buft(dev, i, nullptr) : nullptr;
    if (!buft || !gw) return 0;
    const ggml_tensor *w = T(gw);
    if (ggml_n_dims(w) < 2 || ggml_n_dims(w) > 3) return 0;
    // Ask the device about a stand-in matmul whose weight sits in that buffer type, as
    // llama.cpp does: the extra type's own supports_op decides (type, shape, CPU features).
    ggml_init_params p = {4 * ggml_tensor_overhead(), nullptr, true};
    ggml_context *ctx = ggml_init(p);
    if (!ctx) return 0;
    ggml_tensor *wt = ggml_new_tensor(ctx, w->type, GGML_MAX_DIMS, w->ne);
    ggml_tensor *x = ggml_new_tensor_4d(ctx, GGML_TYPE_F32, w->ne[0], 512, w->ne[2], w->ne[3]);
    ggml_tensor *op = ggml_mul_mat(ctx, wt, x);
    ggml_backend_buffer_t dummy = ggml_backend_buft_alloc_buffer(buft, 0);
    wt->buffer = dummy;
    bool ok = dummy && ggml_backend_dev_supports_op(dev, op);
    wt->buffer = nullptr;
    if (dummy) ggml_backend_buffer_free(dummy);
    ggml_free(ctx);
    return ok;
}

gs_buffer *gs_buffer_alloc_context_extra(gs_context *c, int device_index, int i) {
    ggml_backend_dev_t dev = device_or_fail(device_index);
    if (!dev) return nullptr;
    ggml_backend_buffer_type_t buft = extra_buft(dev, i, nullptr);
    if (!c || !buft) {
        gs_fail(GS_ERR_INVALID, "gs_buffer_alloc_context_extra: no context or no extra buffer type %d", i);
        return nullptr;
    }
    ggml_backend_buffer_t buf = ggml_backend_alloc_ctx_tensors_from_buft(c->ctx, buft);
    if (!buf) {
        gs_fail(GS_ERR_OOM, "could not allocate %s memory for the context", ggml_backend_buft_name(buft));
        return nullptr;
    }
    return GB(buf);
}

size_t gs_device_alignment(int device_index) {
    ggml_backend_dev_t dev = device_or_fail(device_index);
    return dev ? ggml_backend_buft_get_alignment(ggml_backend_dev_buffer_type(dev)) : 0;
}

size_t gs_device_alloc_size(int device_index, gs_tensor *t) {
    ggml_backend_dev_t dev = device_or_fail(device_index);
    if (!dev || !t) return 0;
    return ggml_backend_buft_get_alloc_size(ggml_backend_dev_buffer_type(dev), T(t));
}

// ---- graphs ---------------------------------------------------------------------------------

static gs_graph *graph_new_guarded(ggml_context *ctx, size_t n) {
    GS_GUARDED_PTR(reinterpret_cast<gs_graph *>(ggml_new_graph_custom(ctx, n, false)), (gs_graph *)nullptr);
}

gs_graph *gs_graph_new(gs_context *c, size_t max_nodes) {
    if (!c || max_nodes == 0) {
        gs_fail(GS_ERR_INVALID, "gs_graph_new: need a context and max_nodes > 0");
        return nullptr;
    }
    // ggml dereferences a NULL object here instead of asserting when the context is full.
    size_t need = ggml_graph_overhead_custom(max_nodes, false);
    size_t left = ggml_get_mem_size(c->ctx) - ggml_used_mem(c->ctx);
    if (need > left) {
        gs_fail(GS_ERR_OOM, "the context has %zu bytes left, a graph of %zu nodes needs %zu: use a new context",
                left, max_nodes, need);
        return nullptr;
    }
    return graph_new_guarded(c->ctx, max_nodes);
}

static int expand_guarded(ggml_cgraph *g, ggml_tensor *t) {
    std::jmp_buf env;
    std::jmp_buf *prev = gs_active_guard;
    if (setjmp(env) == 0) {
        gs_active_guard = &env;
        ggml_build_forward_expand(g, t);
        gs_active_guard = prev;
        return GS_OK;
    }
    gs_active_guard = prev;
    return GS_ERR_GGML;
}

int gs_graph_expand(gs_graph *g, gs_tensor *t) {
    if (!g || !t) return gs_fail(GS_ERR_INVALID, "gs_graph_expand: NULL argument");
    return expand_guarded(CG(g), T(t));
}

int gs_graph_n_nodes(gs_graph *g) { return g ? ggml_graph_n_nodes(CG(g)) : 0; }

gs_tensor *gs_graph_node(gs_graph *g, int i) {
    int n = gs_graph_n_nodes(g);
    if (!g || i >= n || i < -n) {
        gs_fail(GS_ERR_INVALID, "graph has no node %d (it has %d)", i, n);
        return nullptr;
    }
    return G(ggml_graph_node(CG(g), i));
}

gs_tensor *gs_graph_tensor(gs_graph *g, const char *name) {
    if (!g || !name) return nullptr;
    return G(ggml_graph_get_tensor(CG(g), name));
}

// Every node must run somewhere: an op no backend supports would abort inside a compute
// thread, where it cannot be recovered, so refuse the graph up front.
static int check_supported(ggml_cgraph *g, ggml_backend_t *backends, int n) {
    for (int i = 0; i < ggml_graph_n_nodes(g); i++) {
        ggml_tensor *node = ggml_graph_node(g, i);
        if (ggml_is_empty(node) || node->op == GGML_OP_NONE || node->op == GGML_OP_VIEW ||
            node->op == GGML_OP_RESHAPE || node->op == GGML_OP_PERMUTE || node->op == GGML_OP_TRANSPOSE)
            continue;
        bool ok = false;
        for (int b = 0; b < n && !ok; b++) ok = ggml_backend_supports_op(backends[b], node);
        if (!ok)
            return gs_fail(GS_ERR_UNSUPPORTED, "no backend supports %s on '%s' (%s from %s, %s)", ggml_op_desc(node),
                           node->name, ggml_type_name(node->type),
                           node->src[0] ? ggml_type_name(node->src[0]->type) : "-",
                           node->src[1] ? ggml_type_name(node->src[1]->type) : "-");
    }
    return GS_OK;
}

static int check_allocated(ggml_cgraph *g) {
    for (int i = 0; i < ggml_graph_n_nodes(g); i++) {
        ggml_tensor *node = ggml_graph_node(g, i);
        for (int s = -1; s < GGML_MAX_SRC; s++) {
            ggml_tensor *t = s < 0 ? node : node->src[s];
            if (t && !ggml_is_empty(t) && !t->data)
                return gs_fail(GS_ERR_INVALID, "tensor '%s' has no data: allocate it or use a scheduler", t->name);
        }
    }
    return GS_OK;
}

int gs_graph_compute(gs_backend *b, gs_graph *g) {
    if (!b || !g) return gs_fail(GS_ERR_INVALID, "gs_graph_compute: NULL argument");
    int rc = check_allocated(CG(g));
    if (rc == GS_OK) rc = check_supported(CG(g), &b->backend, 1);
    if (rc != GS_OK) return rc;
    if (ggml_backend_graph_compute(b->backend, CG(g)) != GGML_STATUS_SUCCESS)
        return gs_fail(GS_ERR_BACKEND, "backend %s failed to compute the graph", ggml_backend_name(b->backend));
    return GS_OK;
}

// ---- scheduler ------------------------------------------------------------------------------

gs_sched *gs_sched_new(gs_backend **backends, int n, size_t max_nodes, int op_offload) {
    if (!backends || n < 1) {
        gs_fail(GS_ERR_INVALID, "gs_sched_new: need at least one backend");
        return nullptr;
    }
    gs_sched *s = new gs_sched{};
    for (int i = 0; i < n; i++) {
        if (!backends[i]) {
            delete s;
            gs_fail(GS_ERR_INVALID, "gs_sched_new: backend %d is NULL", i);
            return nullptr;
        }
        s->backends.push_back(backends[i]->backend);
        s->handles.push_back(backends[i]);
    }
    // ggml requires the CPU backend last: it is the fallback for unsupported ops.
    s->sched = ggml_backend_sched_new(s->backends.data(), nullptr, n, max_nodes ? max_nodes : GGML_DEFAULT_GRAPH_SIZE,
                                      false, op_offload != 0);
    if (!s->sched) {
        delete s;
        gs_fail(GS_ERR_BACKEND, "could not create a scheduler");
        return nullptr;
    }
    return s;
}

void gs_sched_free(gs_sched *s) {
    if (!s) return;
    ggml_backend_sched_free(s->sched);
    delete s;
}

// Custom ops (ggsight's own CPU kernels) run a function pointer of this process: they must stay
// on the CPU backend, whatever ggml's placement passes would give a neighbouring device (an RPC
// server, which would receive the pointer of another process).
static void pin_custom_ops(gs_sched *s, ggml_cgraph *g) {
    ggml_backend_t cpu = nullptr;
    for (ggml_backend_t b : s->backends) {
        ggml_backend_dev_t dev = ggml_backend_get_device(b);
        if (dev && ggml_backend_dev_type(dev) == GGML_BACKEND_DEVICE_TYPE_CPU) cpu = b;
    }
    if (!cpu || s->backends.size() < 2) return;
    for (int i = 0; i < ggml_graph_n_nodes(g); i++) {
        ggml_tensor *node = ggml_graph_node(g, i);
        if (node->op == GGML_OP_CUSTOM) ggml_backend_sched_set_tensor_backend(s->sched, node, cpu);
    }
}

static int sched_call(gs_sched *s, gs_graph *g, int what) {
    std::jmp_buf env;
    std::jmp_buf *prev = gs_active_guard;
    if (setjmp(env) == 0) {
        gs_active_guard = &env;
        pin_custom_ops(s, CG(g));
        bool ok = what == 0 ? ggml_backend_sched_reserve(s->sched, CG(g)) : ggml_backend_sched_alloc_graph(s->sched, CG(g));
        gs_active_guard = prev;
        if (!ok) return gs_fail(GS_ERR_OOM, "the scheduler could not allocate compute buffers for the graph");
        return GS_OK;
    }
    gs_active_guard = prev;
    return GS_ERR_GGML;
}

int gs_sched_reserve(gs_sched *s, gs_graph *g) {
    if (!s || !g) return gs_fail(GS_ERR_INVALID, "gs_sched_reserve: NULL argument");
    int rc = check_supported(CG(g), s->backends.data(), (int)s->backends.size());
    return rc != GS_OK ? rc : sched_call(s, g, 0);
}

int gs_sched_alloc(gs_sched *s, gs_graph *g) {
    if (!s || !g) return gs_fail(GS_ERR_INVALID, "gs_sched_alloc: NULL argument");
    int rc = check_supported(CG(g), s->backends.data(), (int)s->backends.size());
    if (rc != GS_OK) return rc;
    ggml_backend_sched_reset(s->sched);
    return sched_call(s, g, 1);
}

int gs_sched_compute(gs_sched *s, gs_graph *g) {
    if (!s || !g) return gs_fail(GS_ERR_INVALID, "gs_sched_compute: NULL argument");
    if (ggml_backend_sched_graph_compute(s->sched, CG(g)) != GGML_STATUS_SUCCESS)
        return gs_fail(GS_ERR_BACKEND, "graph compute failed");
    return GS_OK;
}

int gs_sched_reset(gs_sched *s) {
    if (!s) return gs_fail(GS_ERR_INVALID, "NULL scheduler");
    ggml_backend_sched_reset(s->sched);
    return GS_OK;
}

int gs_sched_set_tensor_backend(gs_sched *s, gs_tensor *t, gs_backend *b) {
    if (!s || !t || !b) return gs_fail(GS_ERR_INVALID, "gs_sched_set_tensor_backend: NULL argument");
    ggml_backend_sched_set_tensor_backend(s->sched, T(t), b->backend);
    return GS_OK;
}

size_t gs_sched_buffer_size(gs_sched *s, gs_backend *b) {
    if (!s || !b) return 0;
    return ggml_backend_sched_get_buffer_size(s->sched, b->backend);
}

int gs_sched_n_splits(gs_sched *s) { return s ? ggml_backend_sched_get_n_splits(s->sched) : 0; }
int gs_sched_n_copies(gs_sched *s) { return s ? ggml_backend_sched_get_n_copies(s->sched) : 0; }

}  // extern "C"
