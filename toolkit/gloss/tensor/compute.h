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

// Primitives get their scratchpad from Gloss at execution (one buffer per thread, shared by
// every primitive and grown to the largest need) instead of each cached primitive keeping its
// own: with many cached shapes (sequence lengths, a shrinking beam) those added up to hundreds
// of MB. user_scratchpad(): the attribute that asks for this at creation; scratchpad_for(pd):
// the memory to pass as DNNL_ARG_SCRATCHPAD, valid until the next call on this thread.
dnnl::primitive_attr user_scratchpad();
dnnl::memory scratchpad_for(const dnnl::primitive_desc_base& pd);

// Whether this CPU runs bf16 GEMMs natively (AVX512-BF16); without it oneDNN would emulate them.
bool has_bf16();

// While one is alive, gemm() on this thread computes in bf16: A and B rounded to bf16 (round to
// nearest even), products accumulated in f32 into the f32 C (oneDNN matmul, about twice the
// f32 rate on AVX512-BF16). For training in bf16 (train.precision): the callers' buffers and
// everything outside the GEMMs stay f32. Needs has_bf16() (else std::logic_error at gemm()).
// Scopes nest; each thread has its own (workers open theirs).
class Bf16Gemms {
 public:
  Bf16Gemms();
  ~Bf16Gemms();
  Bf16Gemms(const Bf16Gemms&) = delete;
  Bf16Gemms& operator=(const Bf16Gemms&) = delete;
};
bool bf16_gemms();  // whether this thread is inside a Bf16Gemms
// gemm() in bf16 with B already converted (to_bf16): dense, [K x N] row-major, or [N x K] when
// trans_b. For a weight used by many calls between its updates (converted once, not per call).
// Needs has_bf16() (else std::logic_error).
void gemm_bf16_b(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
                 const float* a, std::int64_t lda, const std::uint16_t* b, float beta, float* c, std::int64_t ldc);

// One weight B for the many bf16 GEMMs of the same few rows between two of its updates (a
// recurrent cell's steps in training): op(B) rounded to bf16 and reordered once into the
// blocked layout that oneDNN's bf16 kernel (brgemm) reads as it is, where gemm_bf16_b's dense
// B is repacked inside every call: 1.25-1.4x faster at 32 rows with K x N 768 x 1536 or 1536 x
// 512 on Zen 4. The layout depends on the row count: run() with another m reorders again (from
// the f32 B given to pack(), which must stay valid). Holds one packed copy of B and one
// primitive per row count (a few). Needs has_bf16() (else std::logic_error).
class PackedBf16Weight {
 public:
  PackedBf16Weight();
  ~PackedBf16Weight();
  PackedBf16Weight(PackedBf16Weight&&) noexcept;
  PackedBf16Weight& operator=(PackedBf16Weight&&) noexcept;
  // B f32 row-major [K x N], or [N x K] when trans (then used transposed). Packed at the next run().
  void pack(bool trans, std::int64_t k, std::int64_t n, const float* b);
  // C [m x N] (row stride ldc) = A [m x K] (row stride lda) op(B) + beta C; f32 A rounded to
  // bf16, f32 accumulation. std::logic_error before pack().
  void run(std::int64_t m, const float* a, std::int64_t lda, float beta, float* c, std::int64_t ldc);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

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

// Where the time of training goes (gloss bench train prints it): the wall time of each
// stage's calls, summed over threads, while profiling is on (off: a StageTimer costs a branch).
// A timer inside another stage's counts for the outer one only.
// kWorkerWait: a run_workers worker idle after its last task until the slowest one ends (when
// run_workers is called outside every other stage's timer).
enum class Stage { kGemm, kRnn, kAttention, kLoss, kOptimizer, kData, kReduce, kWorkerWait };
inline constexpr int kStages = 8;
const char* stage_name(Stage stage);  // "gemm", "rnn", ...
void set_profiling(bool on);
double stage_seconds(Stage stage);
void reset_stage_seconds();
class StageTimer {
 public:
  explicit StageTimer(Stage stage);
  ~StageTimer();
  StageTimer(const StageTimer&) = delete;
  StageTimer& operator=(const StageTimer&) = delete;

 private:
  bool entered_ = false;  // profiling was on: counted in this thread's nesting depth
  int stage_ = -1;        // -1: not timing (profiling off, or inside another timer)
  std::int64_t start_ns_ = 0;
};

// Floating-point operations of GEMMs (including those inside RNN primitives) since the last reset.
void add_flops(double flops);
double flops();
void reset_flops();

}  // namespace gloss::compute
