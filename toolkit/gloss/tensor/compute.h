#pragma once
// The oneDNN CPU engine and stream shared by every layer, thread control, and the GEMM all
// layers use (dnnl_sgemm), with a FLOP counter for benchmarks.
#include <cstdint>

#include <oneapi/dnnl/dnnl.hpp>

namespace gloss::compute {

dnnl::engine& engine();
dnnl::stream& stream();  // this thread's stream

// Threads for oneDNN/OpenMP. Sets OMP_WAIT_POLICY=PASSIVE unless the user chose one.
void set_threads(int threads);
int threads();

// Row-major C[M x N] = alpha * op(A) * op(B) + beta * C, op = transpose when the flag is set.
void gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, float alpha, const float* a,
          std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c, std::int64_t ldc);

// Floating-point operations of GEMMs (including those inside RNN primitives) since the last reset.
void add_flops(double flops);
double flops();
void reset_flops();
// While one is alive, add_flops ignores this thread's work: recomputation (a workspace
// rebuilt in backward to bound memory) is not work of the model and must not raise its rate.
class UncountedFlops {
 public:
  UncountedFlops();
  ~UncountedFlops();
  UncountedFlops(const UncountedFlops&) = delete;
  UncountedFlops& operator=(const UncountedFlops&) = delete;
};

}  // namespace gloss::compute
