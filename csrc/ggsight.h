/* ggsight.h - the one public C header of the ggsight shim over ggml.
 *
 * cffi reads this file as it is (ffi.cdef), so it holds only what cdef accepts:
 * no #include, no #if, no macros other than integer #defines. C++ includes it inside
 * extern "C" { }.
 *
 * Conventions
 *  - Functions returning int return GS_OK (0) or a negative gs_status and set the calling
 *    thread's last error (gs_last_error()). Functions returning a pointer return NULL on
 *    failure and set the last error as well.
 *  - Handles are opaque. Whoever creates one frees it exactly once with its *_free().
 *  - Shapes are in ggml order: ne[0] is the innermost (contiguous) dimension.
 *  - Op wrappers are 1:1 with ggml's ops. ggml's own assertions during graph building are
 *    caught and returned as GS_ERR_GGML with ggml's message instead of aborting the process.
 */

#define GS_ABI_VERSION 3
#define GS_MAX_DIMS 4
#define GS_MAX_NAME 64
#define GS_MROPE_SECTIONS 4

/* rope modes (ggml's GGML_ROPE_TYPE_*) */
#define GS_ROPE_NORMAL 0
#define GS_ROPE_NEOX 2
#define GS_ROPE_MROPE 8
#define GS_ROPE_VISION 24
#define GS_ROPE_IMROPE 40

/* interpolate flags, or-ed with a gs_scale_mode */
#define GS_SCALE_FLAG_ALIGN_CORNERS 256
#define GS_SCALE_FLAG_ANTIALIAS 512

enum gs_status {
    GS_OK = 0,
    GS_ERR_INVALID = -1,      /* bad argument: NULL handle, bad index, bad shape */
    GS_ERR_OOM = -2,          /* an allocation failed */
    GS_ERR_BACKEND = -3,      /* a backend refused (init, alloc, compute) */
    GS_ERR_GGML = -4,         /* ggml asserted while building a graph */
    GS_ERR_UNSUPPORTED = -5   /* no backend / type supports the request */
};

/* values equal ggml's enum ggml_type (checked by static_assert in the shim) */
enum gs_type {
    GS_TYPE_F32 = 0, GS_TYPE_F16 = 1, GS_TYPE_Q4_0 = 2, GS_TYPE_Q4_1 = 3,
    GS_TYPE_Q5_0 = 6, GS_TYPE_Q5_1 = 7, GS_TYPE_Q8_0 = 8, GS_TYPE_Q8_1 = 9,
    GS_TYPE_Q2_K = 10, GS_TYPE_Q3_K = 11, GS_TYPE_Q4_K = 12, GS_TYPE_Q5_K = 13,
    GS_TYPE_Q6_K = 14, GS_TYPE_Q8_K = 15, GS_TYPE_IQ2_XXS = 16, GS_TYPE_IQ2_XS = 17,
    GS_TYPE_IQ3_XXS = 18, GS_TYPE_IQ1_S = 19, GS_TYPE_IQ4_NL = 20, GS_TYPE_IQ3_S = 21,
    GS_TYPE_IQ2_S = 22, GS_TYPE_IQ4_XS = 23, GS_TYPE_I8 = 24, GS_TYPE_I16 = 25,
    GS_TYPE_I32 = 26, GS_TYPE_I64 = 27, GS_TYPE_F64 = 28, GS_TYPE_IQ1_M = 29,
    GS_TYPE_BF16 = 30, GS_TYPE_TQ1_0 = 34, GS_TYPE_TQ2_0 = 35, GS_TYPE_MXFP4 = 39,
    GS_TYPE_NVFP4 = 40, GS_TYPE_Q1_0 = 41, GS_TYPE_Q2_0 = 42, GS_TYPE_COUNT = 43
};

enum gs_device_type {
    GS_DEVICE_CPU = 0, GS_DEVICE_GPU = 1, GS_DEVICE_IGPU = 2, GS_DEVICE_ACCEL = 3,
    GS_DEVICE_META = 4
};

enum gs_pool_op { GS_POOL_MAX = 0, GS_POOL_AVG = 1 };
enum gs_sort_order { GS_SORT_ASC = 0, GS_SORT_DESC = 1 };
enum gs_scale_mode { GS_SCALE_NEAREST = 0, GS_SCALE_BILINEAR = 1, GS_SCALE_BICUBIC = 2 };
enum gs_log_level { GS_LOG_DEBUG = 1, GS_LOG_INFO = 2, GS_LOG_WARN = 3, GS_LOG_ERROR = 4,
                    GS_LOG_NONE = 9 };

/* tensor flags reported in gs_tensor_desc.flags */
enum gs_tensor_flag { GS_FLAG_INPUT = 1, GS_FLAG_OUTPUT = 2, GS_FLAG_PARAM = 4 };

typedef struct gs_context gs_context;   /* a ggml context holding tensor metadata (no data) */
typedef struct gs_tensor gs_tensor;     /* a ggml tensor; lives as long as its context */
typedef struct gs_graph gs_graph;       /* a compute graph; lives as long as its context */
typedef struct gs_backend gs_backend;   /* an initialised backend (stream) on one device */
typedef struct gs_buffer gs_buffer;     /* backend memory holding tensor data */
typedef struct gs_sched gs_sched;       /* ggml_backend_sched over one or more backends */

typedef struct gs_type_info {
    char name[32];
    int64_t block_size;      /* elements per block */
    uint64_t type_size;      /* bytes per block */
    int32_t is_quantized;
    int32_t can_quantize;    /* ggml can convert f32 rows into this type */
    int32_t can_dequantize;  /* ggml can convert this type into f32 */
    int32_t reserved;
} gs_type_info;

typedef struct gs_device_info {
    int32_t index;
    int32_t type;            /* gs_device_type */
    uint64_t memory_free;
    uint64_t memory_total;
    int32_t caps_async;
    int32_t caps_host_buffer;
    int32_t caps_buffer_from_host_ptr;
    int32_t caps_events;
    char name[128];
    char description[256];
    char backend[64];        /* name of the backend registry that owns the device */
    char device_id[64];      /* PCI bus id when known, else empty */
} gs_device_info;

typedef struct gs_tensor_desc {
    int32_t type;            /* gs_type */
    int32_t n_dims;
    int32_t flags;           /* gs_tensor_flag bits */
    int32_t has_data;        /* allocated in a buffer */
    int64_t ne[4];
    uint64_t nb[4];          /* strides in bytes */
    uint64_t nbytes;
    int32_t is_contiguous;
    int32_t is_view;
    char op[32];             /* name of the op that produced it ("NONE" for leaves) */
    char name[64];
} gs_tensor_desc;

typedef struct gs_feature {
    const char *name;
    const char *value;
} gs_feature;

/* ---- library ---------------------------------------------------------------------- */
int gs_abi_version(void);
size_t gs_struct_size(const char *struct_name);   /* 0 for an unknown name */
const char *gs_last_error(void);
int gs_last_status(void);                         /* the status that went with the last error */
void gs_clear_error(void);
const char *gs_ggml_version(void);
const char *gs_ggml_commit(void);                /* the pinned source ggml came from */
void gs_set_log_level(int level);                 /* ggml messages below it are dropped */

/* ---- types and quantization ------------------------------------------------------- */
int gs_type_info_get(int type, gs_type_info *out);
size_t gs_row_size(int type, int64_t n_elements);
/* f32 rows -> `type`; dst must hold nrows * gs_row_size(type, n_per_row) bytes */
int gs_quantize(int type, const float *src, void *dst, int64_t nrows, int64_t n_per_row);
/* `type` -> f32; n_elements must be a multiple of the block size */
int gs_dequantize(int type, const void *src, float *dst, int64_t n_elements);

/* ---- devices ----------------------------------------------------------------------- */
int gs_backend_reg_count(void);
const char *gs_backend_reg_name(int index);
int gs_device_count(void);
int gs_device_info_get(int index, gs_device_info *out);
int gs_cpu_features(const gs_feature **out);      /* returns the count; strings are static */

/* ---- backend plug-ins and RPC -------------------------------------------------------- */
/* Open a backend library without registering it: GS_OK and its score (CPU variants: 0 = this
   machine lacks an instruction set it uses; -1 = it reports none), or an error with the
   loader's reason in err (a missing driver or runtime library). */
int gs_backend_probe(const char *path, int *score, char *err, size_t err_size);
int gs_backend_load_file(const char *path);       /* register it: its registry index */
/* Register the devices of a ggml RPC server; the caller has checked that it answers (ggml
   aborts the process on a server it cannot reach). Returns how many devices were added. */
int gs_rpc_add_server(const char *endpoint);
int gs_rpc_protocol_version(void);                /* major * 10000 + minor * 100 + patch */
/* Serve these devices over ggml's RPC protocol (no authentication); blocks while it runs. */
int gs_rpc_serve(const char *endpoint, const char *cache_dir_or_null, int n_threads,
                 const int *device_indices, int n_devices);

/* ---- backends ---------------------------------------------------------------------- */
gs_backend *gs_backend_new(int device_index, const char *params_or_null);
void gs_backend_free(gs_backend *backend);
const char *gs_backend_name(gs_backend *backend);
int gs_backend_device_index(gs_backend *backend);
int gs_backend_set_n_threads(gs_backend *backend, int n_threads);
int gs_backend_supports(gs_backend *backend, gs_tensor *op);
int gs_backend_synchronize(gs_backend *backend);

/* ---- contexts and tensors ---------------------------------------------------------- */
gs_context *gs_context_new(size_t max_tensors);
void gs_context_free(gs_context *ctx);
size_t gs_context_max_tensors(gs_context *ctx);
gs_tensor *gs_new_tensor(gs_context *ctx, int type, int n_dims, const int64_t *ne);
gs_tensor *gs_context_tensor(gs_context *ctx, const char *name);   /* NULL if absent */
int gs_tensor_describe(const gs_tensor *t, gs_tensor_desc *out);
int gs_tensor_set_name(gs_tensor *t, const char *name);
int gs_tensor_set_flags(gs_tensor *t, int flags);                   /* or-ed gs_tensor_flag */
/* copy between host memory and a tensor's (backend) data; offset/size in bytes */
int gs_tensor_write(gs_tensor *t, const void *src, size_t offset, size_t size);
int gs_tensor_read(const gs_tensor *t, void *dst, size_t offset, size_t size);
int gs_tensor_fill_bytes(gs_tensor *t, uint8_t value);
int gs_tensor_set_prec_f32(gs_tensor *t);   /* ask matmul / attention for f32 accumulation */

/* ---- buffers (tensor data) ------------------------------------------------------- */
/* allocate every tensor of ctx that has no data yet in one buffer on a device */
gs_buffer *gs_buffer_alloc_context(gs_context *ctx, int device_index, int host);
/* an empty buffer of `size` bytes on a device; place tensors in it with gs_buffer_place */
gs_buffer *gs_buffer_new(int device_index, size_t size, int host);
/* wrap existing host memory (e.g. an mmapped file): no copy; ptr must outlive the buffer */
gs_buffer *gs_buffer_from_host_ptr(int device_index, void *ptr, size_t size, size_t max_tensor);
int gs_buffer_place(gs_buffer *buf, gs_tensor *t, size_t offset);
size_t gs_buffer_size(gs_buffer *buf);
size_t gs_buffer_alignment(gs_buffer *buf);
int gs_buffer_is_host(gs_buffer *buf);
int gs_buffer_clear(gs_buffer *buf, uint8_t value);
int gs_buffer_mark_weights(gs_buffer *buf);
void gs_buffer_free(gs_buffer *buf);
/* Extra buffer types of a device: the CPU's repacked weight layouts (faster matmul). Weights
   placed there are converted when written, so they cannot be used from an mmap. */
int gs_device_extra_buft_count(int device_index);
const char *gs_device_extra_buft_name(int device_index, int i);
/* would a matmul with `weight` (same type and shape) run from extra buffer type i? */
int gs_extra_buft_supports_matmul(int device_index, int i, gs_tensor *weight);
/* like gs_buffer_alloc_context, in extra buffer type i of the device */
gs_buffer *gs_buffer_alloc_context_extra(gs_context *ctx, int device_index, int i);
size_t gs_device_alignment(int device_index);
size_t gs_device_alloc_size(int device_index, gs_tensor *t);

/* ---- graphs -------------------------------------------------------------------------- */
gs_graph *gs_graph_new(gs_context *ctx, size_t max_nodes);
int gs_graph_expand(gs_graph *g, gs_tensor *t);
int gs_graph_n_nodes(gs_graph *g);
gs_tensor *gs_graph_node(gs_graph *g, int i);       /* negative i counts from the end */
gs_tensor *gs_graph_tensor(gs_graph *g, const char *name);
/* compute on one backend; every tensor must already have data */
int gs_graph_compute(gs_backend *backend, gs_graph *g);
size_t gs_graph_overhead(size_t max_nodes);
size_t gs_tensor_overhead(void);

/* ---- scheduler ----------------------------------------------------------------------- */
gs_sched *gs_sched_new(gs_backend **backends, int n_backends, size_t max_nodes, int op_offload);
void gs_sched_free(gs_sched *s);
int gs_sched_reserve(gs_sched *s, gs_graph *g);     /* size compute buffers for a worst case */
int gs_sched_alloc(gs_sched *s, gs_graph *g);       /* place and allocate one graph */
int gs_sched_compute(gs_sched *s, gs_graph *g);     /* alloc if needed, then compute */
int gs_sched_reset(gs_sched *s);
int gs_sched_set_tensor_backend(gs_sched *s, gs_tensor *t, gs_backend *backend);
size_t gs_sched_buffer_size(gs_sched *s, gs_backend *backend);
int gs_sched_n_splits(gs_sched *s);
int gs_sched_n_copies(gs_sched *s);

/* ---- ops: views and layout ----------------------------------------------------------- */
gs_tensor *gs_reshape(gs_context *ctx, gs_tensor *a, int n_dims, const int64_t *ne);
gs_tensor *gs_view(gs_context *ctx, gs_tensor *a, int n_dims, const int64_t *ne,
                   const uint64_t *nb, uint64_t offset);  /* nb[1..n_dims-1] used */
gs_tensor *gs_permute(gs_context *ctx, gs_tensor *a, int ax0, int ax1, int ax2, int ax3);
gs_tensor *gs_transpose(gs_context *ctx, gs_tensor *a);
gs_tensor *gs_cont(gs_context *ctx, gs_tensor *a);
gs_tensor *gs_dup(gs_context *ctx, gs_tensor *a);
gs_tensor *gs_cpy(gs_context *ctx, gs_tensor *a, gs_tensor *b);
gs_tensor *gs_cast(gs_context *ctx, gs_tensor *a, int type);
gs_tensor *gs_concat(gs_context *ctx, gs_tensor *a, gs_tensor *b, int dim);
gs_tensor *gs_repeat(gs_context *ctx, gs_tensor *a, const int64_t *ne4);
gs_tensor *gs_get_rows(gs_context *ctx, gs_tensor *a, gs_tensor *rows);
gs_tensor *gs_set_rows(gs_context *ctx, gs_tensor *dst, gs_tensor *src, gs_tensor *rows);
gs_tensor *gs_pad(gs_context *ctx, gs_tensor *a, const int32_t *lr8);  /* lp0,rp0,..,lp3,rp3 */
gs_tensor *gs_win_part(gs_context *ctx, gs_tensor *a, int w);
gs_tensor *gs_win_unpart(gs_context *ctx, gs_tensor *a, int w0, int h0, int w);

/* ---- ops: elementwise -------------------------------------------------------------- */
gs_tensor *gs_add(gs_context *ctx, gs_tensor *a, gs_tensor *b);
gs_tensor *gs_sub(gs_context *ctx, gs_tensor *a, gs_tensor *b);
gs_tensor *gs_mul(gs_context *ctx, gs_tensor *a, gs_tensor *b);
gs_tensor *gs_div(gs_context *ctx, gs_tensor *a, gs_tensor *b);
gs_tensor *gs_add_id(gs_context *ctx, gs_tensor *a, gs_tensor *b, gs_tensor *ids);
gs_tensor *gs_scale(gs_context *ctx, gs_tensor *a, float s);
gs_tensor *gs_scale_bias(gs_context *ctx, gs_tensor *a, float s, float b);
gs_tensor *gs_clamp(gs_context *ctx, gs_tensor *a, float lo, float hi);
gs_tensor *gs_sqr(gs_context *ctx, gs_tensor *a);
gs_tensor *gs_sqrt(gs_context *ctx, gs_tensor *a);
gs_tensor *gs_log(gs_context *ctx, gs_tensor *a);
gs_tensor *gs_exp(gs_context *ctx, gs_tensor *a);
gs_tensor *gs_sin(gs_context *ctx, gs_tensor *a);
gs_tensor *gs_cos(gs_context *ctx, gs_tensor *a);
gs_tensor *gs_abs(gs_context *ctx, gs_tensor *a);
gs_tensor *gs_neg(gs_context *ctx, gs_tensor *a);
gs_tensor *gs_tanh(gs_context *ctx, gs_tensor *a);
gs_tensor *gs_floor(gs_context *ctx, gs_tensor *a);
gs_tensor *gs_sigmoid(gs_context *ctx, gs_tensor *a);
gs_tensor *gs_relu(gs_context *ctx, gs_tensor *a);
gs_tensor *gs_gelu(gs_context *ctx, gs_tensor *a);        /* tanh approximation */
gs_tensor *gs_gelu_erf(gs_context *ctx, gs_tensor *a);    /* exact */
gs_tensor *gs_gelu_quick(gs_context *ctx, gs_tensor *a);
gs_tensor *gs_silu(gs_context *ctx, gs_tensor *a);
gs_tensor *gs_softplus(gs_context *ctx, gs_tensor *a);
/* gated units: out = act(a) * b over two tensors of one shape */
gs_tensor *gs_swiglu_split(gs_context *ctx, gs_tensor *a, gs_tensor *b);
gs_tensor *gs_geglu_split(gs_context *ctx, gs_tensor *a, gs_tensor *b);
gs_tensor *gs_geglu_erf_split(gs_context *ctx, gs_tensor *a, gs_tensor *b);

/* ---- ops: reductions and normalisation ---------------------------------------------- */
gs_tensor *gs_sum(gs_context *ctx, gs_tensor *a);
gs_tensor *gs_sum_rows(gs_context *ctx, gs_tensor *a);
gs_tensor *gs_mean(gs_context *ctx, gs_tensor *a);
gs_tensor *gs_argmax(gs_context *ctx, gs_tensor *a);
gs_tensor *gs_argsort(gs_context *ctx, gs_tensor *a, int order);
gs_tensor *gs_top_k(gs_context *ctx, gs_tensor *a, int k);
gs_tensor *gs_norm(gs_context *ctx, gs_tensor *a, float eps);
gs_tensor *gs_rms_norm(gs_context *ctx, gs_tensor *a, float eps);
gs_tensor *gs_l2_norm(gs_context *ctx, gs_tensor *a, float eps);
gs_tensor *gs_group_norm(gs_context *ctx, gs_tensor *a, int n_groups, float eps);
gs_tensor *gs_soft_max(gs_context *ctx, gs_tensor *a, gs_tensor *mask_or_null, float scale,
                       float max_bias);
gs_tensor *gs_diag_mask_inf(gs_context *ctx, gs_tensor *a, int n_past);

/* ---- ops: matrix products, attention, positions ------------------------------------ */
gs_tensor *gs_mul_mat(gs_context *ctx, gs_tensor *a, gs_tensor *b);
gs_tensor *gs_mul_mat_id(gs_context *ctx, gs_tensor *experts, gs_tensor *b, gs_tensor *ids);
gs_tensor *gs_out_prod(gs_context *ctx, gs_tensor *a, gs_tensor *b);
gs_tensor *gs_flash_attn(gs_context *ctx, gs_tensor *q, gs_tensor *k, gs_tensor *v,
                         gs_tensor *mask_or_null, float scale, float max_bias, float softcap);
gs_tensor *gs_rope(gs_context *ctx, gs_tensor *a, gs_tensor *pos, gs_tensor *freq_factors,
                   int n_dims, int mode, int n_ctx_orig, float freq_base, float freq_scale,
                   float ext_factor, float attn_factor, float beta_fast, float beta_slow);
gs_tensor *gs_rope_multi(gs_context *ctx, gs_tensor *a, gs_tensor *pos, gs_tensor *freq_factors,
                         int n_dims, const int32_t *sections4, int mode, int n_ctx_orig,
                         float freq_base, float freq_scale, float ext_factor,
                         float attn_factor, float beta_fast, float beta_slow);
gs_tensor *gs_arange(gs_context *ctx, float start, float stop, float step);

/* ---- ops: images ----------------------------------------------------------------------- */
gs_tensor *gs_im2col(gs_context *ctx, gs_tensor *kernel, gs_tensor *data, int s0, int s1,
                     int p0, int p1, int d0, int d1, int is_2d, int dst_type);
gs_tensor *gs_conv_2d(gs_context *ctx, gs_tensor *kernel, gs_tensor *data, int s0, int s1,
                      int p0, int p1, int d0, int d1);
gs_tensor *gs_conv_2d_direct(gs_context *ctx, gs_tensor *kernel, gs_tensor *data, int s0,
                             int s1, int p0, int p1, int d0, int d1);
gs_tensor *gs_conv_2d_dw(gs_context *ctx, gs_tensor *kernel, gs_tensor *data, int s0, int s1,
                         int p0, int p1, int d0, int d1);
gs_tensor *gs_pool_1d(gs_context *ctx, gs_tensor *a, int op, int k0, int s0, int p0);
gs_tensor *gs_pool_2d(gs_context *ctx, gs_tensor *a, int op, int k0, int k1, int s0, int s1,
                      float p0, float p1);
gs_tensor *gs_interpolate(gs_context *ctx, gs_tensor *a, const int64_t *ne4, uint32_t mode);
/* ---- ops: ggsight's own CPU kernels (ggml custom ops; they run on the CPU backend) ---- */
/* 1 when this build and CPU can run the bf16 AMX kernels below (Intel AMX-BF16, OS permission) */
int gs_amx_bf16_usable(void);
/* x [K, ...] f32 times a weight of n_out rows packed as bf16 AMX tiles: an i16 tensor of
   round32(n_out) * round32(K) values (layout: python/ggsight/ggml/tiles.py). -> [n_out, ...] */
gs_tensor *gs_mul_mat_bf16_tiles(gs_context *ctx, gs_tensor *packed, gs_tensor *x, int64_t n_out);
/* unmasked attention over all tokens, bf16 products with f32 softmax and accumulation:
   q, k, v contiguous f32 [head_dim, n_head, n_tokens] -> [head_dim * n_head, n_tokens] */
gs_tensor *gs_attention_bf16_tiles(gs_context *ctx, gs_tensor *q, gs_tensor *k, gs_tensor *v,
                                   float scale);

/* 1 when this build and CPU can run the x16 kernels below (AVX512-VNNI) */
int gs_x16_usable(void);
/* n_rows rows of a Q8_0, Q5_0 or Q6_K (`type`) matrix with n_in inputs, GGUF layout (n_rows a
   multiple of 16) <-> the same bytes interleaved 16 rows at a time (layout:
   csrc/x16_kernels.cpp). Groups of 16 rows convert on their own: a matrix can be converted a
   slice of whole groups at a time. */
int gs_pack_x16(int type, const void *src, void *dst, int64_t n_in, int64_t n_rows);
int gs_unpack_x16(int type, const void *src, void *dst, int64_t n_in, int64_t n_rows);
/* x [K, ...] f32 times a Q8_0/Q5_0/Q6_K weight [K, n_rows] whose data is in the x16 layout
   -> [n_rows, ...] */
gs_tensor *gs_mul_mat_x16(gs_context *ctx, gs_tensor *packed, gs_tensor *x);
/* rows `ids` (i32 [n]) of such a weight, dequantized -> f32 [K, n] */
gs_tensor *gs_get_rows_x16(gs_context *ctx, gs_tensor *packed, gs_tensor *ids);
