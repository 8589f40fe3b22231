// Backend plug-ins (ggml's GGML_BACKEND_DL libraries) and ggml's RPC backend.
//
// ggml's own loader (ggml_backend_load_best) picks a CPU variant silently; ggsight probes each
// library itself so `ggsight info` can say what was found, what was chosen and why the others
// were not (a missing driver, a CPU that lacks the instruction set, another ggml version).
#include <cstdio>
#include <cstring>
#include <vector>

#include "ggml-rpc.h"
#include "internal.h"

#ifdef _WIN32
#include <windows.h>
#else
#include <dlfcn.h>
#endif

namespace {

struct Library {
    void *handle = nullptr;
    explicit Library(const char *path) {
#ifdef _WIN32
        handle = (void *)LoadLibraryA(path);
#else
        handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
#endif
    }
    ~Library() {
        if (!handle) return;
#ifdef _WIN32
        FreeLibrary((HMODULE)handle);
#else
        dlclose(handle);
#endif
    }
    void *symbol(const char *name) const {
#ifdef _WIN32
        return (void *)GetProcAddress((HMODULE)handle, name);
#else
        return dlsym(handle, name);
#endif
    }
};

const char *loader_error() {
#ifdef _WIN32
    static thread_local char text[64];
    snprintf(text, sizeof(text), "LoadLibrary failed with error %lu", (unsigned long)GetLastError());
    return text;
#else
    const char *e = dlerror();
    return e ? e : "unknown loader error";
#endif
}

ggml_backend_reg_t rpc_registry() {
    return ggml_backend_reg_by_name("RPC");
}

}  // namespace

int gs_backend_probe(const char *path, int *score, char *err, size_t err_size) {
    if (!path || !score) return gs_fail(GS_ERR_INVALID, "gs_backend_probe: NULL argument");
    if (err && err_size) err[0] = '\0';
    Library lib(path);
    if (!lib.handle) {
        if (err && err_size) snprintf(err, err_size, "%s", loader_error());
        return gs_fail(GS_ERR_BACKEND, "cannot open %s", path);
    }
    if (!lib.symbol("ggml_backend_init")) {
        if (err && err_size) snprintf(err, err_size, "not a ggml backend library (no ggml_backend_init)");
        return gs_fail(GS_ERR_BACKEND, "%s is not a ggml backend", path);
    }
    // CPU variants say how well this machine runs them (0: it lacks an instruction set they use)
    using score_fn = int (*)(void);
    auto fn = (score_fn)lib.symbol("ggml_backend_score");
    *score = fn ? fn() : -1;
    return GS_OK;
}

int gs_backend_load_file(const char *path) {
    if (!path) return gs_fail(GS_ERR_INVALID, "gs_backend_load_file: NULL path");
    ggml_backend_reg_t reg = ggml_backend_load(path);
    if (!reg) return gs_fail(GS_ERR_BACKEND, "ggml could not register %s (see the log above)", path);
    for (size_t i = 0; i < ggml_backend_reg_count(); i++) {
        if (ggml_backend_reg_get(i) == reg) return (int)i;
    }
    return gs_fail(GS_ERR_BACKEND, "%s registered but is not listed", path);
}

int gs_rpc_add_server(const char *endpoint) {
    if (!endpoint) return gs_fail(GS_ERR_INVALID, "gs_rpc_add_server: NULL endpoint");
    ggml_backend_reg_t rpc = rpc_registry();
    if (!rpc) return gs_fail(GS_ERR_UNSUPPORTED, "this build has no RPC backend (libggml-rpc was not found)");
    using add_fn = ggml_backend_reg_t (*)(const char *);
    auto add = (add_fn)ggml_backend_reg_get_proc_address(rpc, "ggml_backend_rpc_add_server");
    if (!add) return gs_fail(GS_ERR_UNSUPPORTED, "the RPC backend has no ggml_backend_rpc_add_server");
    size_t before = ggml_backend_dev_count();
    ggml_backend_reg_t reg = add(endpoint);
    if (!reg) return gs_fail(GS_ERR_BACKEND, "RPC server %s reports no devices", endpoint);
    for (size_t i = 0; i < ggml_backend_reg_count(); i++) {
        if (ggml_backend_reg_get(i) == reg) return 0;  // added earlier: its devices are listed already
    }
    ggml_backend_register(reg);
    return (int)(ggml_backend_dev_count() - before);
}

int gs_rpc_serve(const char *endpoint, const char *cache_dir, int n_threads, const int *device_indices,
                 int n_devices) {
    if (!endpoint || !device_indices || n_devices < 1)
        return gs_fail(GS_ERR_INVALID, "gs_rpc_serve: need an endpoint and at least one device");
    ggml_backend_reg_t rpc = rpc_registry();
    if (!rpc) return gs_fail(GS_ERR_UNSUPPORTED, "this build has no RPC backend (libggml-rpc was not found)");
    using serve_fn = void (*)(const char *, const char *, size_t, size_t, ggml_backend_dev_t *);
    auto serve = (serve_fn)ggml_backend_reg_get_proc_address(rpc, "ggml_backend_rpc_start_server");
    if (!serve) return gs_fail(GS_ERR_UNSUPPORTED, "the RPC backend has no ggml_backend_rpc_start_server");
    std::vector<ggml_backend_dev_t> devs;
    for (int i = 0; i < n_devices; i++) {
        int d = device_indices[i];
        if (d < 0 || (size_t)d >= ggml_backend_dev_count())
            return gs_fail(GS_ERR_INVALID, "no device %d (this build has %d)", d, (int)ggml_backend_dev_count());
        devs.push_back(ggml_backend_dev_get(d));
    }
    serve(endpoint, cache_dir, (size_t)(n_threads > 0 ? n_threads : 1), devs.size(), devs.data());
    // it only returns when it could not listen (the reason is on stderr)
    return gs_fail(GS_ERR_BACKEND, "the RPC server on %s stopped (could not listen there?)", endpoint);
}

int gs_rpc_protocol_version(void) {
    return RPC_PROTO_MAJOR_VERSION * 10000 + RPC_PROTO_MINOR_VERSION * 100 + RPC_PROTO_PATCH_VERSION;
}
