#pragma once
// Feed-forward pieces of the network, each with an explicit backward pass. All matrices are
// row-major; a batch of M rows goes through one GEMM (every time step at once where the maths
// allows). Backward ADDS parameter gradients into the ParameterSet and overwrites (or, where
// named so, adds to) input gradients.
#include <cstdint>
#include <string>
#include <vector>

#include "gloss/nn/parameter.h"
#include "gloss/util/rng.h"

namespace gloss::nn {

// y[M, out] = x[M, in] W[in, out] + b[out]. Inside a compute::Bf16Gemms scope (training in
// bf16) the GEMMs that read W read a bf16 copy of it, rounded once per update (when the
// ParameterSet's version moves) instead of at every call: the output layer runs forward and
// backward in chunks of rows, each of which would otherwise round all of W twice. The copy is
// as large as half of W, kept per Linear (each replica has its own); a Linear is used by one
// thread at a time.
class Linear {
 public:
  Linear(ParameterSet& params, const std::string& name, std::int64_t in, std::int64_t out, bool bias = true);
  std::int64_t in() const { return in_; }
  std::int64_t out() const { return out_; }
  void forward(std::int64_t m, const float* x, float* y) const;
  // dx (may be nullptr) = dy W^T, added to dx when `accumulate`; dW += x^T dy; db += sum dy.
  void backward(std::int64_t m, const float* x, const float* dy, float* dx, bool accumulate = false) const;
  Parameter& weight() const { return *w_; }
  Parameter* bias() const { return b_; }  // nullptr without bias

  // The input as consecutive column blocks held in separate matrices (x = [x_1 ; x_2 ; ...],
  // x_p [M, width_p], widths summing to in): y = sum_p x_p W_p + b without building x.
  struct Part {
    const float* x;
    std::int64_t width;
  };
  void forward_parts(std::int64_t m, const std::vector<Part>& parts, float* y) const;
  // dW_p += x_p^T dy; db += sum dy; dxs[p] (nullptr: skipped) = dy W_p^T, overwritten.
  void backward_parts(std::int64_t m, const std::vector<Part>& parts, const float* dy,
                      const std::vector<float*>& dxs) const;

 private:
  // W for compute::gemm_bf16_b: [in, out] row-major in bf16, remade when the values moved.
  const std::uint16_t* bf16_weight() const;
  // C = op(x) op(W) for the GEMMs with W as B: bf16 (its copy) inside a Bf16Gemms scope,
  // else f32. W rows [row, row + k) (trans_b: as [n, k]), as compute::gemm's arguments.
  void gemm_w(bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, const float* a, std::int64_t lda,
              std::int64_t row, float beta, float* c, std::int64_t ldc) const;

  const ParameterSet* params_;  // whose version says when W's values changed
  std::int64_t in_, out_;
  Parameter* w_;
  Parameter* b_ = nullptr;
  mutable std::vector<std::uint16_t> w_bf16_;
  mutable std::uint64_t w_bf16_version_ = 0;  // params_->version() when w_bf16_ was made (0: never)
};

// Rows of a table; the padding id gives a zero vector and never receives gradient. With
// `sparse_grad` (a table nothing else reads as a whole), backward flags the rows it adds to
// in the table's Parameter::rows_touched.
class Embedding {
 public:
  Embedding(ParameterSet& params, const std::string& name, std::int64_t vocab, std::int64_t dim, int pad_id,
            bool sparse_grad = false);
  std::int64_t dim() const { return dim_; }
  std::int64_t vocab() const { return vocab_; }
  // ids [m] -> out [m, dim]; the pad id gives zeros. Throws UserError for an id outside the table.
  void forward(std::int64_t m, const std::int32_t* ids, float* out) const;
  void backward(std::int64_t m, const std::int32_t* ids, const float* dout) const;
  Parameter& table() const { return *table_; }

 private:
  std::int64_t vocab_, dim_;
  int pad_;
  Parameter* table_;
};

// Layer normalisation (Ba et al. 2016) of rows x [M, C]: y = gain * (x - mean) / sqrt(var +
// 1e-5) + bias over each row's C values. Parameters "<name>/ln_gain" (init_parameters sets
// it to 1) and "<name>/ln_bias" (0).
class LayerNorm {
 public:
  LayerNorm(ParameterSet& params, const std::string& name, std::int64_t dim);
  std::int64_t dim() const { return dim_; }
  // y may be x (in place). stats [2M]: each row's mean and 1/std, kept for backward (nullptr
  // when there is none).
  void forward(std::int64_t m, const float* x, float* y, float* stats) const;
  // x: forward's input, stats its; dy [M, C] -> dx [M, C] (overwritten; may be dy); the gain
  // and bias gradients are added to.
  void backward(std::int64_t m, const float* x, const float* stats, const float* dy, float* dx) const;

 private:
  std::int64_t dim_;
  Parameter& gain_;
  Parameter& bias_;
};

// Inverted dropout: keeps each value with probability 1 - p and scales it by 1 / (1 - p).
// The mask (0 or the scale) is written to `mask` for backward.
void dropout_forward(std::int64_t n, float p, Rng& rng, float* x, float* mask);
void dropout_backward(std::int64_t n, const float* mask, float* dx);

// Maxout with pool size 2 over adjacent units: y[k] = max(x[2k], x[2k+1]); argmax kept.
void maxout_forward(std::int64_t m, std::int64_t units, const float* x, float* y, std::uint8_t* which);
void maxout_backward(std::int64_t m, std::int64_t units, const std::uint8_t* which, const float* dy, float* dx);

void tanh_forward(std::int64_t n, float* x);                    // in place
void tanh_backward(std::int64_t n, const float* y, float* dy);  // dy *= 1 - y^2

// Label-smoothed softmax cross-entropy over rows of logits [M, V], fused with its gradient:
// q = (1 - eps) onehot(target) + eps / V; loss = -sum q log softmax(logits). Rows whose
// target is `pad` are ignored. Returns the summed loss (double) and counts real targets;
// when `grad` is set, logits are overwritten with d(loss_sum * scale)/d logits.
struct LossSum {
  double loss = 0.0;  // summed over real target tokens
  double nll = 0.0;   // the same without label smoothing (for perplexity)
  std::int64_t tokens = 0;
};
LossSum softmax_cross_entropy(std::int64_t m, std::int64_t v, float* logits, const std::int32_t* targets, int pad,
                              float label_smoothing, bool grad, float scale = 1.0f);

}  // namespace gloss::nn
