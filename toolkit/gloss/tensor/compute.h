#pragma once
// The oneDNN CPU engine and stream shared by every layer, thread control, and the GEMM all
// layers use (dnnl_sgemm), with a FLOP counter for benchmarks.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <oneapi/dnnl/dnnl.hpp>

namespace gloss::compute {

dnnl::engine& engine();
dnnl::stream& stream();  // this thread's stream

// Threads for oneDNN/OpenMP. Sets OMP_WAIT_POLICY=PASSIVE unless the user chose one.
// The most threads any option may ask for (a larger count is a mistake, not a machine).
inline constexpr int kMaxThreads = 256;
// ConfigError "OPTION must be between 1 and 256 (got N)" for a count outside that range.
void check_threads(int threads, const std::string& option);
void set_threads(int threads);
int threads();

// Runs task(worker, i) for i in [0, tasks) on `workers` threads, each taking the next task as
// it finishes one and running alone inside it (oneDNN and the kernels see one thread). The
// first exception thrown is rethrown here after all threads stop. Workers 1.. must not share
// mutable state with worker 0 or each other.
void run_workers(int workers, std::size_t tasks, const std::function<void(int worker, std::size_t task)>& task);

// Row-major C[M x N] = alpha * op(A) * op(B) + beta * C, op = transpose when the flag is set.
void gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, float alpha, const float* a,
          std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c, std::int64_t ldc);

// Whether this CPU runs bf16 GEMMs natively (AVX512-BF16); without it oneDNN would emulate them.
bool has_bf16();

// n floats to bf16 (round to nearest even; NaN stays NaN) and back (exact).
void to_bf16(std::int64_t n, const float* from, std::uint16_t* to);
void from_bf16(std::int64_t n, const std::uint16_t* from, float* to);

// y[M x N] = x[M x K] W + b in bf16 arithmetic (f32 accumulation and output) through a oneDNN
// matmul: W converted once to bf16 (half the memory traffic, twice the GEMM rate where the CPU
// has AVX512-BF16), x converted on each call. For inference only: products of bf16 inputs
// carry about 3 significant digits.
class Bf16Matmul {
 public:
  Bf16Matmul();
  ~Bf16Matmul();
  Bf16Matmul(Bf16Matmul&&) noexcept;
  Bf16Matmul& operator=(Bf16Matmul&&) noexcept;
  // W as row-major [K x N] (or [N x K] when transposed); bias [N] or nullptr.
  void set_weights(std::int64_t k, std::int64_t n, const float* w, bool transposed, const float* bias);
  void run(std::int64_t m, const float* x, float* y);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

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
