#pragma once
// Element-wise kernels that vectorise (AVX-512 / AVX2 chosen at run time) and run on all
// threads. Results do not depend on the thread count: every reduction is done in fixed
// chunks summed in a fixed order.
#include <cstdint>

namespace gloss::kernels {

// exp and tanh with a float polynomial (relative error ~2e-7), usable inside vector loops.
void tanh_inplace(std::int64_t n, float* x);

// Sum of squares of x[0..n), in double.
double sum_squares(std::int64_t n, const float* x);
void scale(std::int64_t n, float s, float* x);

// Adam update of one tensor (bias corrections c1 = 1/(1-b1^t), c2 = 1/(1-b2^t)).
void adam(std::int64_t n, float lr, float c1, float c2, float* w, const float* g, float* m, float* v);

// Additive attention scores for rows (j, n), j < length[n], of a [S, N, A] block:
//   pre[j,n,:] = tanh(uh[j,n,:] + a[n,:]);  e[j,n] = pre[j,n,:] . v;  masked rows: pre = 0.
void attention_scores(int S, int N, std::int64_t A, const float* uh, const float* a, const float* v,
                      const std::int32_t* lengths, float* pre, float* e);

// Backward of the scores: given de [S, N], adds dz = de * v * (1 - pre^2) to duh and writes
// da[n,:] = sum_j dz[j,n,:]; dv[k] += sum de * pre[.., k].
void attention_scores_backward(int S, int N, std::int64_t A, const float* pre, const float* v, const float* de,
                               const std::int32_t* lengths, float* duh, float* da, float* dv);

// Label-smoothed cross-entropy rows (see nn::softmax_cross_entropy); per-row loss and nll
// written to row_loss/row_nll (0 for pad rows); logits overwritten with the gradient if grad.
void cross_entropy_rows(std::int64_t m, std::int64_t v, float* logits, const std::int32_t* targets, int pad,
                        float label_smoothing, bool grad, float scale, double* row_loss, double* row_nll);

}  // namespace gloss::kernels
