// The two bias + GELU training pairs of bert4j's CPU kernels, timed in one process on the same
// buffers, rounds alternating: the recomputing pair (bert4j_bias_gelu_forward_f32 +
// bert4j_bias_gelu_backward_f32, which evaluates gelu' again from x) against the saved-derivative
// pair autograd uses (bert4j_bias_gelu_forward_train_f32, which also writes gelu'(x + b), +
// bert4j_gelu_backward_saved_f32). Both backwards write the bias gradient. A plain
// dx = dy * d loop (two reads, one write) is printed as the memory-bound floor.
//   bias_gelu_pair ROWS COLS ITERS [ROUNDS [THREADS]]   (benchmarks/native/run-bias-gelu-pair.sh)
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "bert4j_kernels.h"

namespace {

double now_us() {
    return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void check(int status, const char* what) {
    if (status != BERT4J_OK) {
        std::fprintf(stderr, "%s: %s\n", what, bert4j_last_error());
        std::exit(1);
    }
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 4) {
        std::fprintf(stderr, "usage: %s ROWS COLS ITERS [ROUNDS [THREADS]]\n", argv[0]);
        return 2;
    }
    const int64_t rows = std::atoll(argv[1]), cols = std::atoll(argv[2]);
    const int iters = std::atoi(argv[3]), rounds = argc > 4 ? std::atoi(argv[4]) : 5;
    if (argc > 5) check(bert4j_set_num_threads(std::atoi(argv[5])), "threads");
    const size_t n = static_cast<size_t>(rows * cols);
    std::vector<float> x(n), dy(n), y(n), d(n), dx(n), bias(cols), dbias(cols);
    std::mt19937 rng(1);
    std::normal_distribution<float> normal(0.0f, 1.5f);
    for (auto& v : x) v = normal(rng);
    for (auto& v : dy) v = normal(rng);
    for (auto& v : bias) v = 0.3f * normal(rng);
    std::vector<double> recompute, saved, floor_;
    for (int round = 0; round < rounds + 1; ++round) {  // round 0 warms up
        double t0 = now_us();
        for (int i = 0; i < iters; ++i) {
            check(bert4j_bias_gelu_forward_f32(x.data(), bias.data(), y.data(), rows, cols, cols, cols, 0), "forward");
            check(bert4j_bias_gelu_backward_f32(dy.data(), x.data(), bias.data(), dx.data(), dbias.data(), rows, cols,
                                                cols, cols, cols, 0), "backward");
        }
        double t1 = now_us();
        for (int i = 0; i < iters; ++i) {
            check(bert4j_bias_gelu_forward_train_f32(x.data(), bias.data(), y.data(), d.data(), rows, cols, cols, cols,
                                                     cols, 0), "forward_train");
            check(bert4j_gelu_backward_saved_f32(dy.data(), d.data(), dx.data(), dbias.data(), rows, cols, cols, cols,
                                                 cols), "backward_saved");
        }
        double t2 = now_us();
        for (int i = 0; i < iters; ++i) {
#pragma omp parallel for num_threads(bert4j_get_num_threads()) schedule(static)
            for (int64_t r = 0; r < rows; ++r)
                for (int64_t c = 0; c < cols; ++c) dx[r * cols + c] = dy[r * cols + c] * d[r * cols + c];
        }
        double t3 = now_us();
        if (round == 0) continue;
        recompute.push_back((t1 - t0) / iters);
        saved.push_back((t2 - t1) / iters);
        floor_.push_back((t3 - t2) / iters);
    }
    const auto median = [](std::vector<double> v) {
        std::sort(v.begin(), v.end());
        return v[v.size() / 2];
    };
    std::vector<double> ratio;
    for (size_t i = 0; i < saved.size(); ++i) ratio.push_back(recompute[i] / saved[i]);
    std::printf("%lld x %lld, %d threads: recomputing pair %.1f us, saved-derivative pair %.1f us, "
                "speed-up %.2fx (rounds %.2f-%.2f); dy*d floor %.1f us\n",
                static_cast<long long>(rows), static_cast<long long>(cols), bert4j_get_num_threads(),
                median(recompute), median(saved), median(ratio), *std::min_element(ratio.begin(), ratio.end()),
                *std::max_element(ratio.begin(), ratio.end()), median(floor_));
    return 0;
}
