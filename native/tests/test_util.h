// A tiny test harness: CHECK records failures and keeps going, main returns their count.
#pragma once

#include <cstdio>

namespace bert4j::test {
inline int g_failures = 0;
}

#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            ++bert4j::test::g_failures;                                        \
            std::fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            std::fprintf(stderr, __VA_ARGS__);                                 \
            std::fprintf(stderr, "\n");                                        \
        }                                                                      \
    } while (0)
