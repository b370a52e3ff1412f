// gloss_gemm_shapes [THREADS]: the GEMMs of a quick-en-de training step, each in f32 and in
// bf16 the way training runs it (gloss/tensor/compute.h), on THREADS threads (default 1: one
// data-parallel worker's view). Prints one BENCH line per shape: GFLOP/s in f32 and bf16 and
// their ratio (medians of 7 timings of a fixed number of calls, the precisions alternating).
// For reading where bf16 training gains less than its GEMM rate promises: a decoder step has
// 32 rows a worker, the output layer runs 128 target positions at a time, and the weight
// gradients of all steps have a worker's ~450 positions as K.
// Exit 2 on a CPU without AVX512-BF16.
#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <vector>

#include "gloss/tensor/compute.h"

namespace {

using gloss::compute::gemm;

// One GEMM of the step: C [m x n] = op(A) op(B), A [m x k] (stored [k x m] when trans_a), B
// [k x n] (stored [n x k] when trans_b). How training runs it in bf16:
enum class Bf16Path {
  kPacked,       // B a recurrent weight, packed once per update (compute::PackedBf16Weight);
                 // f32 reads it from a copy stored as op(B), so never transposed (nn/rnn_steps.h)
  kWeight,       // B a layer's weight, converted once per update (compute::gemm_bf16_b)
  kActivations,  // both converted at each call (compute::gemm in a Bf16Gemms scope)
};
struct Shape {
  const char* name;
  std::int64_t m, k, n;
  bool trans_a, trans_b;
  Bf16Path path;
};

double seconds(const std::function<void()>& calls) {
  const auto start = std::chrono::steady_clock::now();
  calls();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void measure(const Shape& s) {
  std::vector<float> a(static_cast<std::size_t>(s.m * s.k)), b(static_cast<std::size_t>(s.k * s.n)),
      c(static_cast<std::size_t>(s.m * s.n));
  for (std::size_t i = 0; i < a.size(); ++i) a[i] = static_cast<float>(i % 13) * 0.01f - 0.06f;
  for (std::size_t i = 0; i < b.size(); ++i) b[i] = static_cast<float>(i % 7) * 0.02f - 0.06f;
  const std::int64_t lda = s.trans_a ? s.m : s.k, ldb = s.trans_b ? s.k : s.n;
  const bool packed = s.path == Bf16Path::kPacked, f32_trans_b = s.trans_b && !packed;
  const double flop = 2.0 * static_cast<double>(s.m * s.n * s.k);
  const int calls = std::max(3, static_cast<int>(2e9 / flop));  // ~2 GFLOP a timing
  gloss::compute::PackedBf16Weight weight;
  weight.pack(s.trans_b, s.k, s.n, b.data());
  std::vector<std::uint16_t> b16(b.size());
  gloss::compute::to_bf16(static_cast<std::int64_t>(b.size()), b.data(), b16.data());
  const auto f32 = [&] {
    for (int i = 0; i < calls; ++i)
      gemm(s.trans_a, f32_trans_b, s.m, s.n, s.k, 1.0f, a.data(), lda, b.data(), f32_trans_b ? s.k : s.n, 0.0f,
           c.data(), s.n);
  };
  const auto bf16 = [&] {
    if (packed) {
      for (int i = 0; i < calls; ++i) weight.run(s.m, a.data(), lda, 0.0f, c.data(), s.n);
      return;
    }
    if (s.path == Bf16Path::kWeight) {
      for (int i = 0; i < calls; ++i)
        gloss::compute::gemm_bf16_b(s.trans_a, s.trans_b, s.m, s.n, s.k, 1.0f, a.data(), lda, b16.data(), 0.0f,
                                    c.data(), s.n);
      return;
    }
    const gloss::compute::Bf16Gemms scope;
    for (int i = 0; i < calls; ++i)
      gemm(s.trans_a, s.trans_b, s.m, s.n, s.k, 1.0f, a.data(), lda, b.data(), ldb, 0.0f, c.data(), s.n);
  };
  f32();
  bf16();  // primitives created, caches warm
  std::vector<double> t32, t16;
  for (int r = 0; r < 7; ++r) {
    t32.push_back(seconds(f32));
    t16.push_back(seconds(bf16));
  }
  const double g32 = flop * calls / median(t32) / 1e9, g16 = flop * calls / median(t16) / 1e9;
  std::printf("BENCH gemm_%s %lldx%lldx%lld f32 %.1f GFLOP/s bf16 %.1f GFLOP/s bf16/f32 %.2f x\n", s.name,
              static_cast<long long>(s.m), static_cast<long long>(s.k), static_cast<long long>(s.n), g32, g16,
              g16 / g32);
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 1;
  if (argc > 1) {  // the whole argument a number: "2x" is not 2
    const char* end = argv[1] + std::strlen(argv[1]);
    const auto [at, error] = std::from_chars(argv[1], end, threads);
    if (error != std::errc() || at != end) threads = 0;
  }
  if (argc > 2 || threads < 1 || threads > gloss::compute::kMaxThreads) {
    std::fprintf(stderr, "gloss_gemm_shapes: usage: gloss_gemm_shapes [THREADS], THREADS between 1 and %d\n",
                 gloss::compute::kMaxThreads);
    return 2;
  }
  if (!gloss::compute::has_bf16()) {
    std::fprintf(stderr, "gloss_gemm_shapes: this CPU has no AVX512-BF16; nothing to compare\n");
    return 2;
  }
  gloss::compute::set_threads(threads);
  // quick-en-de: embeddings 256, encoder 256 a direction, decoder 512 (GRU: 3 gates), its input
  // [embedding ; context] 768, attention 512, output vocabulary 8,000.
  using enum Bf16Path;
  const Shape shapes[] = {
      {"decoder_step_x_W", 32, 768, 1536, false, false, kPacked},
      {"decoder_step_h_U", 32, 512, 1536, false, false, kPacked},
      {"decoder_step_dgates_WT", 32, 1536, 768, false, true, kPacked},
      {"decoder_step_dgates_UT", 32, 1536, 512, false, true, kPacked},
      {"output_layer_forward", 128, 256, 8000, false, false, kWeight},
      {"output_layer_dx", 128, 8000, 256, false, true, kWeight},
      {"output_layer_dW", 256, 128, 8000, true, false, kActivations},
      {"decoder_dW_all_steps", 768, 448, 1536, true, false, kActivations},
      {"square_1024", 1024, 1024, 1024, false, false, kActivations},
  };
  for (const Shape& s : shapes) measure(s);
  return 0;
}
