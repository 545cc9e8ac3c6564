/*
 * bert4j process set-up that must happen before libtorch (and its OpenMP runtime) is loaded.
 *
 * libgomp reads OMP_WAIT_POLICY once, when it is loaded; Java cannot change the C environment,
 * so the Java side calls this through its own small JNI library (io.bert4j.kernels.NativeEnv),
 * which links neither libtorch nor OpenMP, before anything loads libtorch. Header-only: nothing
 * to build besides the JNI glue. Also OpenBLAS's thread count, for io.bert4j.kernels.BlasThreads.
 */
#ifndef BERT4J_ENV_H
#define BERT4J_ENV_H

#include <dlfcn.h>
#include <stdlib.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Sets environment variable name to value unless it is already set. Returns 1 when it set the
 * variable, 0 when an existing value was kept, -1 on a NULL argument or a failed setenv. */
static inline int bert4j_setenv_default(const char* name, const char* value) {
    if (name == NULL || value == NULL) {
        return -1;
    }
    if (getenv(name) != NULL) {
        return 0;
    }
    return setenv(name, value, 0) == 0 ? 1 : -1;
}

/* OpenBLAS's thread count (openblas_set_num_threads / openblas_get_num_threads of the OpenBLAS
 * library already loaded in the process, found by its soname: this never loads one). n > 0 sets
 * the count first. Returns the count in effect, or -1 when no OpenBLAS is loaded. Two plain
 * calls once resolved: bert4j calls it around every CPU attention of libtorch's (the JavaCPP
 * presets' Java helper for the same thing looks the symbols up on every call, ~1 ms). */
typedef void (*bert4j_blas_set_fn)(int);
typedef int (*bert4j_blas_get_fn)(void);

static inline int bert4j_openblas_threads(int n) {
    static bert4j_blas_set_fn set_fn = NULL; /* published with release/acquire once both resolve */
    static bert4j_blas_get_fn get_fn = NULL;
    bert4j_blas_get_fn get = __atomic_load_n(&get_fn, __ATOMIC_ACQUIRE);
    bert4j_blas_set_fn set = __atomic_load_n(&set_fn, __ATOMIC_ACQUIRE);
    if (get == NULL || set == NULL) {
        static const char* const names[] = {"libopenblas_nolapack.so.0", "libopenblas.so.0", NULL};
        for (int i = 0; names[i] != NULL && (get == NULL || set == NULL); ++i) {
            void* h = dlopen(names[i], RTLD_LAZY | RTLD_NOLOAD);
            if (h == NULL) continue;
            set = (bert4j_blas_set_fn)dlsym(h, "openblas_set_num_threads");
            get = (bert4j_blas_get_fn)dlsym(h, "openblas_get_num_threads");
            dlclose(h); /* drops the reference NOLOAD added; the library stays loaded */
        }
        if (get == NULL || set == NULL) {
            set = (bert4j_blas_set_fn)dlsym(RTLD_DEFAULT, "openblas_set_num_threads");
            get = (bert4j_blas_get_fn)dlsym(RTLD_DEFAULT, "openblas_get_num_threads");
        }
        if (get == NULL || set == NULL) return -1;
        __atomic_store_n(&set_fn, set, __ATOMIC_RELEASE);
        __atomic_store_n(&get_fn, get, __ATOMIC_RELEASE);
    }
    if (n > 0) set(n);
    return get();
}

/* Makes glibc malloc keep freed memory for reuse instead of handing it back to the kernel, so
 * that a tensor allocated after one of the same size was freed reuses its pages instead of
 * faulting in (and zeroing) fresh ones. libtorch's CPU tensors come from malloc; by default glibc
 * serves blocks above a (dynamic, <= 32 MiB) threshold with mmap and unmaps them on free, trims
 * the top of its heaps, and deletes a thread arena's heap once it is empty, so a training step's
 * activations can page-fault on every step (thousands of 4 KiB faults per tensor). Sets
 *   M_MMAP_MAX 0          no mmap for big blocks while an arena can hold them (a block too big
 *                         for a thread arena's 64 MiB heap is still mmapped: glibc falls back)
 *   M_TRIM_THRESHOLD      no trimming of a heap's free top below 2 GiB (mallopt's maximum)
 *   M_TOP_PAD 64 MiB      a heap keeps 64 MiB of top (a thread heap's maximum size): glibc
 *                         then does not delete empty thread heaps either
 * The cost: the process's resident size stays near its peak (freed memory is reused, not
 * returned). Returns 1 when applied, 0 when the C library is not glibc (nothing done), -1 when
 * mallopt refused a value. Process-wide; glibc takes its own lock. */
static inline int bert4j_malloc_retain(void) {
#if defined(__GLIBC__)
    int ok = mallopt(M_MMAP_MAX, 0);
    ok &= mallopt(M_TRIM_THRESHOLD, 0x7fffffff);
    ok &= mallopt(M_TOP_PAD, 64 << 20);
    return ok ? 1 : -1;
#else
    return 0;
#endif
}

#ifdef __cplusplus
}
#endif

#endif /* BERT4J_ENV_H */
