/*
 * bert4j process set-up that must happen before libtorch (and its OpenMP runtime) is loaded.
 *
 * libgomp reads OMP_WAIT_POLICY once, when it is loaded; Java cannot change the C environment,
 * so the Java side calls this through its own small JNI library (io.bert4j.kernels.NativeEnv),
 * which links neither libtorch nor OpenMP, before anything loads libtorch. Header-only: nothing
 * to build besides the JNI glue.
 */
#ifndef BERT4J_ENV_H
#define BERT4J_ENV_H

#include <stdlib.h>

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

#ifdef __cplusplus
}
#endif

#endif /* BERT4J_ENV_H */
