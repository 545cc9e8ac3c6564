# CUDA detection for BERT4J_CUDA = AUTO | ON | OFF.
#
# check_language(CUDA) only looks on PATH and at CUDACXX; toolkits usually live in
# /usr/local/cuda/bin, which is often not on PATH (and a PATH wrapper script around nvcc
# can confuse CMake's toolkit detection), so point CMAKE_CUDA_COMPILER at the real nvcc
# first when nobody chose one. Sets BERT4J_WITH_CUDA and enables the CUDA language.

include(CheckLanguage)

set(BERT4J_WITH_CUDA OFF)
string(TOUPPER "${BERT4J_CUDA}" _bert4j_cuda_mode)

if(_bert4j_cuda_mode STREQUAL "OFF")
  message(STATUS "bert4j: CUDA kernels disabled (BERT4J_CUDA=OFF)")
  return()
elseif(NOT _bert4j_cuda_mode MATCHES "^(AUTO|ON)$")
  message(FATAL_ERROR "BERT4J_CUDA must be AUTO, ON or OFF, got '${BERT4J_CUDA}'")
endif()

if(NOT CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX})
  find_program(BERT4J_NVCC nvcc
    HINTS "$ENV{CUDA_HOME}" "$ENV{CUDA_PATH}" /usr/local/cuda
    PATH_SUFFIXES bin
    NO_DEFAULT_PATH)
  if(NOT BERT4J_NVCC)
    find_program(BERT4J_NVCC nvcc)
  endif()
  if(BERT4J_NVCC)
    # Resolve symlinks (/usr/local/cuda -> cuda-13.0) so the toolkit root is found.
    get_filename_component(_bert4j_nvcc_real "${BERT4J_NVCC}" REALPATH)
    set(CMAKE_CUDA_COMPILER "${_bert4j_nvcc_real}" CACHE FILEPATH "CUDA compiler")
  endif()
endif()

check_language(CUDA)
if(CMAKE_CUDA_COMPILER)
  if(NOT CMAKE_CUDA_ARCHITECTURES)
    # A100 (sm_80) and H100/H200 (sm_90) SASS, plus PTX for newer GPUs to JIT.
    set(CMAKE_CUDA_ARCHITECTURES "80-real;90-real;90-virtual")
  endif()
  set(CMAKE_CUDA_STANDARD 17)
  set(CMAKE_CUDA_STANDARD_REQUIRED ON)
  enable_language(CUDA)
  find_package(CUDAToolkit REQUIRED)  # CUDA::cudart_static for executables linked by g++
  set(BERT4J_WITH_CUDA ON)
  message(STATUS "bert4j: CUDA kernels ON (${CMAKE_CUDA_COMPILER}, archs ${CMAKE_CUDA_ARCHITECTURES})")
elseif(_bert4j_cuda_mode STREQUAL "ON")
  message(FATAL_ERROR "BERT4J_CUDA=ON but no CUDA compiler was found; set CMAKE_CUDA_COMPILER "
                      "or CUDA_HOME, or use BERT4J_CUDA=AUTO/OFF")
else()
  message(STATUS "bert4j: no CUDA compiler found, CUDA kernels skipped (BERT4J_CUDA=AUTO)")
endif()
