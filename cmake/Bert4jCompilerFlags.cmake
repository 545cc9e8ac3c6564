# Compiler settings shared by every bert4j native target.
#
# The CPU library is linked statically into the JNI library JavaCPP builds, so it must be
# position independent; symbols stay hidden except the ABI (BERT4J_API in the header), so
# our internals cannot clash with libtorch's inside one JVM. No -march: the AVX2 path is
# selected at run time (target attributes), so the default build runs on any x86-64.

set(CMAKE_CXX_STANDARD 17)
set(CMAKE_CXX_STANDARD_REQUIRED ON)
set(CMAKE_CXX_EXTENSIONS OFF)
set(CMAKE_POSITION_INDEPENDENT_CODE ON)
set(CMAKE_CXX_VISIBILITY_PRESET hidden)
set(CMAKE_CUDA_VISIBILITY_PRESET hidden)
set(CMAKE_VISIBILITY_INLINES_HIDDEN ON)

if(NOT CMAKE_BUILD_TYPE AND NOT CMAKE_CONFIGURATION_TYPES)
  set(CMAKE_BUILD_TYPE Release CACHE STRING "Build type" FORCE)
endif()

# Warnings for our own targets (a function, so third-party code is never affected).
function(bert4j_warnings target)
  if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
    target_compile_options(${target} PRIVATE
      $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wshadow -Wno-unused-parameter>)
  endif()
endfunction()
