// The translation unit of libbert4j_kernels_cuda_shared.so (see CMakeLists.txt): the library's
// content comes whole from libbert4j_kernels_cuda.a and libbert4j_kernels.a; CMake needs one
// source file of its own to define a shared library.
#include "bert4j_kernels.h"
