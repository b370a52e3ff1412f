#pragma once
// Bahdanau additive attention (Bahdanau et al. 2015):
//   e_ij = v^T tanh(W s_{i-1} + b + U h_j),  alpha_i = softmax_j(e_i) over real source
//   positions (padding masked), c_i = sum_j alpha_ij h_j.
// The key projection U h_j is computed once per batch (prepare) and reused at every step.
// Layouts: keys h [S, N, K] time-major; queries s [N, D]; weights W [D, A], U [K, A], v [A].
#include <cstdint>
#include <string>

#include "gloss/nn/parameter.h"
#include "gloss/tensor/compute.h"
#include "gloss/tensor/packed_gemm.h"

namespace gloss::nn {

class AdditiveAttention {
 public:
  AdditiveAttention(ParameterSet& params, const std::string& name, std::int64_t query_dim, std::int64_t key_dim,
                    std::int64_t att_dim);
  std::int64_t att_dim() const { return att_; }

  // The source side of one batch. keys and lengths stay owned by the caller.
  struct Memory {
    int S = 0, N = 0;             // N: rows of keys (sentences)
    const float* keys = nullptr;  // [S, N, K]
    // Beam search: `queries` rows attend, query row q over key row source_of[q] (a sentence's
    // hypotheses share its keys and their projection); lengths then has one entry per query.
    // Without source_of: N queries, row n over key row n.
    int queries = 0;
    const std::int32_t* source_of = nullptr;
    const std::int32_t* lengths = nullptr;  // [queries or N], each >= 1
    Tensor uh;                              // [S, N, A] = keys U
    Tensor duh;                             // gradient of uh, summed over steps
    Tensor dv_rows;                         // [N, A] gradient of v per sentence, summed over steps
    Tensor de;                              // [S, N] scratch of backward
    // W packed by prepare() for forward's steps, W^T by begin_backward() for backward's (a
    // step's GEMM has few rows): in f32, or in bf16 inside a compute::Bf16Gemms scope.
    compute::PackedF32Weight w32, w32_t;
    compute::PackedBf16Weight w16, w16_t;
  };
  void prepare(Memory& memory) const;

  // One query step; what backward needs.
  // Only the small per-step tensors are kept; backward recomputes tanh(uh + a) (memory
  // grows with S*N*A once per batch, not once per target word).
  struct Step {
    Tensor a;      // [N, A] W s + b
    Tensor alpha;  // [S, N]
  };
  // query [N, D] -> context [N, K]; alpha [S, N] also in step.alpha.
  void forward(Memory& memory, const float* query, float* context, Step& step) const;
  // Before the first (last in time) step's backward: zeroes the accumulators.
  void begin_backward(Memory& memory) const;
  // dcontext [N, K] -> dquery [N, D] (overwritten) and da [N, A] = the gradient of W s + b
  // (overwritten; the caller keeps it for finish_backward); dkeys [S, N, K] and memory.duh
  // are added to.
  void backward(Memory& memory, const Step& step, const float* dcontext, float* da, float* dquery, float* dkeys) const;
  // After the last step's backward, with the queries and da of all `rows` (steps x N) in
  // order: the parameter gradients as one GEMM each (dW += queries^T da, db, dv, dU +=
  // keys^T duh) and dkeys += duh U^T.
  void finish_backward(Memory& memory, std::int64_t rows, const float* queries, const float* da, float* dkeys) const;

 private:
  std::int64_t query_, key_, att_;
  Parameter& w_;  // [D, A]
  Parameter& b_;  // [A]
  Parameter& u_;  // [K, A]
  Parameter& v_;  // [A]
};

}  // namespace gloss::nn
