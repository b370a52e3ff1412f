#pragma once
// A GEMM for few rows against a weight packed once: the per-step GEMMs of training's recurrent
// cells and attention (8-32 rows a worker, the same weight for every step of an update).
//
// dnnl_sgemm copies B into its own blocked layout inside every call; with 32 rows that copy
// costs about as much as the products, and B (a 3 MB weight) comes from L3 or memory at every
// step. Measured on an AVX2 Zen 3, 1 thread, 4 weights taking turns (as a step's GEMMs do),
// K x N 512 x 1536: 32 rows 33-44 against 59 GFLOP/s packed, 16 rows 20 against 50, 8 rows 11
// against 52. So here op(B) is copied once into panels of 16 columns (each K x 16, contiguous,
// the last zero-padded), which a register-blocked kernel (6 rows x 16 columns, AVX2 and FMA)
// reads in order while prefetching the next panel.
//
// Each output element is the sum over k in order (one fused multiply-add per k) of its row of A
// and its column of op(B), then beta C added: no row's result depends on the others or on m.
// On a CPU without AVX2 and FMA a portable loop computes the same sums without fusing.
#include <cstdint>
#include <memory>

#include "gloss/tensor/tensor.h"

namespace gloss::compute {

class PackedF32Weight {
 public:
  // Copies op(B) [K x N] into panels: B row-major [K x N] with row stride ldb, or when trans
  // [N x K] with row stride ldb (then used transposed). B may change afterwards.
  void pack(bool trans, std::int64_t k, std::int64_t n, const float* b, std::int64_t ldb);
  std::int64_t k() const { return k_; }
  std::int64_t n() const { return n_; }

  // C [m x N] (row stride ldc) = A [m x K] (row stride lda) op(B) + beta C. With beta 0 C is
  // only written (it may hold anything). Counted as Stage::kGemm and in flops().
  // std::logic_error before pack().
  void run(std::int64_t m, const float* a, std::int64_t lda, float beta, float* c, std::int64_t ldc) const;

 private:
  std::int64_t k_ = -1, n_ = 0;
  Tensor panels_;  // [ceil(N / 16), K, 16]
};

// op(B) packed once for every caller that asks for the same B (the same memory, shape and
// transposition) at the same `version`, which must move whenever B's values change
// (nn::ParameterSet::version()). Data-parallel workers' replicas read their master's weights,
// so one copy serves them all: one pack per update, and one copy in memory and in the shared
// L3 cache (two private copies of quick-en-de's decoder weights, 2 x 21 MB, do not fit a
// 32 MB L3; at one row a step a GEMM is bound by reading its weight). Thread-safe: the first
// caller at a new version packs while the others wait. A copy lives while a caller holds it.
std::shared_ptr<const PackedF32Weight> shared_packed(bool trans, std::int64_t k, std::int64_t n, const float* b,
                                                     std::int64_t ldb, std::uint64_t version);

// One user's hold on a shared_packed copy, asked again (under its lock) only when B's memory
// or version moved since the last get(): a per-step check of two values. One PackedCopy per
// weight a user packs (its transposition and shape fixed by the memory it reads).
class PackedCopy {
 public:
  const PackedF32Weight& get(bool trans, std::int64_t k, std::int64_t n, const float* b, std::int64_t ldb,
                             std::uint64_t version);

 private:
  std::shared_ptr<const PackedF32Weight> copy_;
  const float* b_ = nullptr;
  std::uint64_t version_ = 0;
};

// For tests: run() uses the portable loop even where the CPU has AVX2 and FMA (process-wide).
void use_portable_packed_gemm(bool on);

}  // namespace gloss::compute
