// The lifecycle half of the shim: errors, types, devices, backends, contexts, buffers,
// graphs and the scheduler. Ops live in ops.cpp.
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "internal.h"

// ---- errors and logging -------------------------------------------------------------

static thread_local char tl_error[2048];
static thread_local int tl_status = GS_OK;
thread_local std::jmp_buf *gs_active_guard = nullptr;
static int g_log_level = GS_LOG_WARN;

int gs_fail(int status, const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    vsnprintf(tl_error, sizeof(tl_error), fmt, args);
    va_end(args);
    tl_status = status;
    return status;
}

static void on_ggml_abort(const char *message) {
    gs_fail(GS_ERR_GGML, "ggml: %s", message);
    if (gs_active_guard) {
        std::longjmp(*gs_active_guard, 1);
    }
    // Not recoverable (e.g. inside a compute thread): ggml aborts right after we return.
    fprintf(stderr, "ggsight: fatal ggml error: %s\n", message);
}

static void on_ggml_log(ggml_log_level level, const char *text, void *) {
    // CONT continues the previous message; ggml uses it for progress dots.
    static thread_local int last_level = GGML_LOG_LEVEL_INFO;
    int effective = level == GGML_LOG_LEVEL_CONT ? last_level : (int)level;
    last_level = effective;
    if (effective >= g_log_level) {
        fputs(text, stderr);
    }
}

namespace {
struct Init {
    Init() {
        const char *env = getenv("GGSIGHT_LOG_LEVEL");
        if (env && *env) g_log_level = atoi(env);
        ggml_set_abort_callback(on_ggml_abort);
        ggml_log_set(on_ggml_log, nullptr);
    }
} g_init;
}  // namespace

extern "C" {

int gs_abi_version(void) { return GS_ABI_VERSION; }

size_t gs_struct_size(const char *name) {
    if (!name) return 0;
    if (!strcmp(name, "gs_type_info")) return sizeof(gs_type_info);
    if (!strcmp(name, "gs_device_info")) return sizeof(gs_device_info);
    if (!strcmp(name, "gs_tensor_desc")) return sizeof(gs_tensor_desc);
    if (!strcmp(name, "gs_feature")) return sizeof(gs_feature);
    return 0;
}

const char *gs_last_error(void) { return tl_error; }
int gs_last_status(void) { return tl_status; }
void gs_clear_error(void) {
    tl_error[0] = 0;
    tl_status = GS_OK;
}
const char *gs_ggml_version(void) { return ggml_version(); }
// The pinned source of ggml ("llama-cpp-python 0.3.36 832db0699007"), see vendor/ggml/PIN.
const char *gs_ggml_commit(void) { return GGSIGHT_GGML_SOURCE; }
void gs_set_log_level(int level) { g_log_level = level; }

// ---- types ----------------------------------------------------------------------------

static bool valid_type(int type) {
    if (type < 0 || type >= GGML_TYPE_COUNT) return false;
    return ggml_get_type_traits((ggml_type)type)->blck_size > 0;
}

int gs_type_info_get(int type, gs_type_info *out) {
    if (!out) return gs_fail(GS_ERR_INVALID, "gs_type_info_get: NULL output");
    if (!valid_type(type)) return gs_fail(GS_ERR_INVALID, "unknown ggml type %d", type);
    const ggml_type_traits *tr = ggml_get_type_traits((ggml_type)type);
    memset(out, 0, sizeof(*out));
    snprintf(out->name, sizeof(out->name), "%s", tr->type_name);
    out->block_size = tr->blck_size;
    out->type_size = tr->type_size;
    out->is_quantized = tr->is_quantized;
    out->can_dequantize = tr->to_float != nullptr;
    bool plain_float = type == GGML_TYPE_F32 || type == GGML_TYPE_F16 || type == GGML_TYPE_BF16;
    out->can_quantize = (plain_float || (tr->is_quantized && type != GGML_TYPE_Q8_1 &&
                                         type != GGML_TYPE_Q8_K)) &&
                        !ggml_quantize_requires_imatrix((ggml_type)type);
    return GS_OK;
}

size_t gs_row_size(int type, int64_t n) {
    if (!valid_type(type) || n < 0) return 0;
    return ggml_row_size((ggml_type)type, n);
}

int gs_quantize(int type, const float *src, void *dst, int64_t nrows, int64_t n_per_row) {
    gs_type_info info;
    if (gs_type_info_get(type, &info) != GS_OK) return GS_ERR_INVALID;
    if (!info.can_quantize)
        return gs_fail(GS_ERR_UNSUPPORTED, "ggml cannot quantize into %s without an importance matrix", info.name);
    if (!src || !dst || nrows < 0 || n_per_row <= 0 || n_per_row % info.block_size)
        return gs_fail(GS_ERR_INVALID, "gs_quantize: rows of %lld values do not fill whole %s blocks of %lld",
                       (long long)n_per_row, info.name, (long long)info.block_size);
    ggml_quantize_chunk((ggml_type)type, src, dst, 0, nrows, n_per_row, nullptr);
    return GS_OK;
}

int gs_dequantize(int type, const void *src, float *dst, int64_t n) {
    gs_type_info info;
    if (gs_type_info_get(type, &info) != GS_OK) return GS_ERR_INVALID;
    if (!info.can_dequantize) return gs_fail(GS_ERR_UNSUPPORTED, "ggml cannot convert %s to f32", info.name);
    if (!src || !dst || n < 0 || n % info.block_size)
        return gs_fail(GS_ERR_INVALID, "gs_dequantize: %lld values are not whole %s blocks", (long long)n, info.name);
    ggml_get_type_traits((ggml_type)type)->to_float(src, dst, n);
    return GS_OK;
}

// ---- devices ----------------------------------------------------------------------------

int gs_backend_reg_count(void) { return (int)ggml_backend_reg_count(); }

const char *gs_backend_reg_name(int i) {
    if (i < 0 || (size_t)i >= ggml_backend_reg_count()) {
        gs_fail(GS_ERR_INVALID, "no backend registry %d", i);
        return nullptr;
    }
    return ggml_backend_reg_name(ggml_backend_reg_get(i));
}

int gs_device_count(void) { return (int)ggml_backend_dev_count(); }

static ggml_backend_dev_t device_at(int i) {
    if (i < 0 || (size_t)i >= ggml_backend_dev_count()) {
        gs_fail(GS_ERR_INVALID, "no device %d (this build has %d)", i, (int)ggml_backend_dev_count());
        return nullptr;
    }
    return ggml_backend_dev_get(i);
}

int gs_device_info_get(int i, gs_device_info *out) {
    ggml_backend_dev_t dev = device_at(i);
    if (!dev) return GS_ERR_INVALID;
    if (!out) return gs_fail(GS_ERR_INVALID, "gs_device_info_get: NULL output");
    ggml_backend_dev_props props;
    ggml_backend_dev_get_props(dev, &props);
    memset(out, 0, sizeof(*out));
    out->index = i;
    out->type = (int32_t)props.type;
    out->memory_free = props.memory_free;
    out->memory_total = props.memory_total;
    out->caps_async = props.caps.async;
    out->caps_host_buffer = props.caps.host_buffer;
    out->caps_buffer_from_host_ptr = props.caps.buffer_from_host_ptr;
    out->caps_events = props.caps.events;
    snprintf(out->name, sizeof(out->name), "%s", props.name ? props.name : "");
    snprintf(out->description, sizeof(out->description), "%s", props.description ? props.description : "");
    snprintf(out->backend, sizeof(out->backend), "%s", ggml_backend_reg_name(ggml_backend_dev_backend_reg(dev)));
    snprintf(out->device_id, sizeof(out->device_id), "%s", props.device_id ? props.device_id : "");
    return GS_OK;
}

int gs_cpu_features(const gs_feature **out) {
    static_assert(sizeof(gs_feature) == sizeof(ggml_backend_feature), "feature layout");
    ggml_backend_dev_t cpu = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
    if (!out) return gs_fail(GS_ERR_INVALID, "gs_cpu_features: NULL output");
    *out = nullptr;
    if (!cpu) return 0;
    auto get = (ggml_backend_get_features_t)ggml_backend_reg_get_proc_address(
        ggml_backend_dev_backend_reg(cpu), "ggml_backend_get_features");
    if (!get) return 0;
    ggml_backend_feature *f = get(ggml_backend_dev_backend_reg(cpu));
    int n = 0;
    while (f && f[n].name) n++;
    *out = reinterpret_cast<const gs_feature *>(f);
    return n;
}

// ---- backends ---------------------------------------------------------------------------

gs_backend *gs_backend_new(int device_index, const char *params) {
    ggml_backend_dev_t dev = device_at(device_index);
    if (!dev) return nullptr;
    ggml_backend_t b = ggml_backend_dev_init(dev, params);
    if (!b) {
        gs_fail(GS_ERR_BACKEND, "could not initialise a backend on device %d (%s)", device_index,
                ggml_backend_dev_name(dev));
        return nullptr;
    }
    return new gs_backend{b, device_index};
}

void gs_backend_free(gs_backend *b) {
    if (!b) return;
    ggml_backend_free(b->backend);
    delete b;
}

const char *gs_backend_name(gs_backend *b) { return b ? ggml_backend_name(b->backend) : ""; }
int gs_backend_device_index(gs_backend *b) { return b ? b->device_index : -1; }

int gs_backend_set_n_threads(gs_backend *b, int n) {
    if (!b || n < 1) return gs_fail(GS_ERR_INVALID, "gs_backend_set_n_threads: need a backend and n >= 1");
    ggml_backend_dev_t dev = ggml_backend_get_device(b->backend);
    auto set = (ggml_backend_set_n_threads_t)ggml_backend_reg_get_proc_address(
        ggml_backend_dev_backend_reg(dev), "ggml_backend_set_n_threads");
    if (set) set(b->backend, n);
    return GS_OK;  // backends without threads (GPUs) ignore the request
}

int gs_backend_supports(gs_backend *b, gs_tensor *op) {
    return b && op && ggml_backend_supports_op(b->backend, T(op));
}

int gs_backend_synchronize(gs_backend *b) {
    if (!b) return gs_fail(GS_ERR_INVALID, "NULL backend");
    ggml_backend_synchronize(b->backend);
    return GS_OK;
}

// ---- contexts and tensors ----------------------------------------------------------------

size_t gs_tensor_overhead(void) { return ggml_tensor_overhead(); }
size_t gs_graph_overhead(size_t n) { return ggml_graph_overhead_custom(n, false); }

gs_context *gs_context_new(size_t max_tensors) {
    if (max_tensors == 0) max_tensors = 1;
    // Room for the tensors plus one graph of as many nodes: metadata only, no data.
    size_t mem = ggml_tensor_overhead() * max_tensors + ggml_graph_overhead_custom(max_tensors, false);
    ggml_init_params p = {mem, nullptr, true};
    ggml_context *ctx = ggml_init(p);
    if (!ctx) {
        gs_fail(GS_ERR_OOM, "could not allocate a context for %zu tensors", max_tensors);
        return nullptr;
    }
    return new gs_context{ctx, max_tensors};
}

void gs_context_free(gs_context *c) {
    if (!c) return;
    ggml_free(c->ctx);
    delete c;
}

size_t gs_context_max_tensors(gs_context *c) { return c ? c->max_tensors : 0; }

static gs_tensor *new_tensor_guarded(ggml_context *ctx, int type, int n_dims, const int64_t *ne) {
    GS_GUARDED_PTR(G(ggml_new_tensor(ctx, (ggml_type)type, n_dims, ne)), (gs_tensor *)nullptr);
}

gs_tensor *gs_new_tensor(gs_context *c, int type, int n_dims, const int64_t *ne) {
    if (!c || !ne || n_dims < 1 || n_dims > GS_MAX_DIMS) {
        gs_fail(GS_ERR_INVALID, "gs_new_tensor: need a context and 1..4 dims (got %d)", n_dims);
        return nullptr;
    }
    if (!valid_type(type)) {
        gs_fail(GS_ERR_INVALID, "unknown ggml type %d", type);
        return nullptr;
    }
    int64_t blck = ggml_blck_size((ggml_type)type);
    for (int i = 0; i < n_dims; i++) {
        if (ne[i] < 0 || (ne[i] > 0 && ne[i] > INT64_MAX / 8)) {
            gs_fail(GS_ERR_INVALID, "gs_new_tensor: bad dimension ne[%d] = %lld", i, (long long)ne[i]);
            return nullptr;
        }
    }
    if (ne[0] % blck) {
        gs_fail(GS_ERR_INVALID, "gs_new_tensor: ne[0] = %lld is not a multiple of the %s block size %lld",
                (long long)ne[0], ggml_type_name((ggml_type)type), (long long)blck);
        return nullptr;
    }
    return new_tensor_guarded(c->ctx, type, n_dims, ne);
}

gs_tensor *gs_context_tensor(gs_context *c, const char *name) {
    if (!c || !name) return nullptr;
    return G(ggml_get_tensor(c->ctx, name));
}

int gs_tensor_describe(const gs_tensor *gt, gs_tensor_desc *out) {
    if (!gt || !out) return gs_fail(GS_ERR_INVALID, "gs_tensor_describe: NULL argument");
    const ggml_tensor *t = T(gt);
    memset(out, 0, sizeof(*out));
    out->type = t->type;
    out->n_dims = ggml_n_dims(t);
    out->flags = (t->flags & GGML_TENSOR_FLAG_INPUT ? GS_FLAG_INPUT : 0) |
                 (t->flags & GGML_TENSOR_FLAG_OUTPUT ? GS_FLAG_OUTPUT : 0) |
                 (t->flags & GGML_TENSOR_FLAG_PARAM ? GS_FLAG_PARAM : 0);
    out->has_data = t->data != nullptr;
    for (int i = 0; i < 4; i++) {
        out->ne[i] = t->ne[i];
        out->nb[i] = t->nb[i];
    }
    out->nbytes = ggml_nbytes(t);
    out->is_contiguous = ggml_is_contiguous(t);
    out->is_view = t->view_src != nullptr;
    snprintf(out->op, sizeof(out->op), "%s", ggml_op_desc(t));
    snprintf(out->name, sizeof(out->name), "%s", t->name);
    return GS_OK;
}

int gs_tensor_set_name(gs_tensor *t, const char *name) {
    if (!t || !name) return gs_fail(GS_ERR_INVALID, "gs_tensor_set_name: NULL argument");
    ggml_set_name(T(t), name);  // truncates to GGML_MAX_NAME - 1
    return GS_OK;
}

int gs_tensor_set_flags(gs_tensor *t, int flags) {
    if (!t) return gs_fail(GS_ERR_INVALID, "gs_tensor_set_flags: NULL tensor");
    if (flags & GS_FLAG_INPUT) ggml_set_input(T(t));
    if (flags & GS_FLAG_OUTPUT) ggml_set_output(T(t));
    return GS_OK;
}

static int check_io(const ggml_tensor *t, const void *p, size_t offset, size_t size, const char *what) {
    if (!t || (!p && size)) return gs_fail(GS_ERR_INVALID, "%s: NULL argument", what);
    const ggml_backend_buffer_t buf = t->view_src ? t->view_src->buffer : t->buffer;
    if (!buf || !t->data)
        return gs_fail(GS_ERR_INVALID, "%s: tensor '%s' has no data yet (allocate its graph or buffer first)", what, t->name);
    if (offset > ggml_nbytes(t) || size > ggml_nbytes(t) - offset)
        return gs_fail(GS_ERR_INVALID, "%s: %zu bytes at offset %zu exceed tensor '%s' (%zu bytes)", what, size, offset,
                       t->name, ggml_nbytes(t));
    return GS_OK;
}

int gs_tensor_write(gs_tensor *t, const void *src, size_t offset, size_t size) {
    int rc = check_io(T(t), src, offset, size, "gs_tensor_write");
    if (rc != GS_OK || size == 0) return rc;
    ggml_backend_tensor_set(T(t), src, offset, size);
    return GS_OK;
}

int gs_tensor_read(const gs_tensor *t, void *dst, size_t offset, size_t size) {
    int rc = check_io(T(t), dst, offset, size, "gs_tensor_read");
    if (rc != GS_OK || size == 0) return rc;
    ggml_backend_tensor_get(T(t), dst, offset, size);
    return GS_OK;
}

int gs_tensor_fill_bytes(gs_tensor *t, uint8_t value) {
    if (!t) return gs_fail(GS_ERR_INVALID, "gs_tensor_fill_bytes: NULL tensor");
    int rc = check_io(T(t), t, 0, ggml_nbytes(T(t)), "gs_tensor_fill_bytes");
    if (rc != GS_OK) return rc;
    ggml_backend_tensor_memset(T(t), value, 0, ggml_nbytes(T(t)));
    return GS_OK;
}

int gs_tensor_set_prec_f32(gs_tensor *t) {
    if (!t) return gs_fail(GS_ERR_INVALID, "NULL tensor");
    if (!ggml_prec_set_acc(T(t), GGML_PREC_F32))
        return gs_fail(GS_ERR_UNSUPPORTED, "op %s takes no precision setting", ggml_op_desc(T(t)));
    return GS_OK;
}

}  // extern "C"
