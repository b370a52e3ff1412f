#pragma once
// Element-wise kernels that vectorise (AVX-512 / AVX2 chosen at run time) and run on all
// threads. Results do not depend on the thread count: every reduction is done in fixed
// chunks summed in a fixed order.
#include <cstdint>
#include <utility>
#include <vector>

namespace gloss::kernels {

// exp and tanh with a float polynomial (relative error ~2e-7), usable inside vector loops.
void tanh_inplace(std::int64_t n, float* x);

// Sum of squares of x[0..n), in double.
double sum_squares(std::int64_t n, const float* x);

// into[i] += from[i]; from[i] = 0 (gradients of a replica summed into the model's).
void move_add(std::int64_t n, float* from, float* into);
// into[g] += m[r * ld + g] for g < width, the rows added one after another (a bias's gradient
// from the gradient of its layer's output rows). On the calling thread.
void add_column_sums(std::int64_t rows, std::int64_t width, const float* m, std::int64_t ld, float* into);

// out [cols x rows] = in [rows x cols] transposed, both row-major and dense (tiles that stay in cache).
void transpose(std::int64_t rows, std::int64_t cols, const float* in, float* out);

// One optimiser step on values [0, n) of a parameter: w its values, g its gradient, avg its
// weight average (null: none), m and v Adam's moments. One pass over the arrays, on the calling
// thread (nn::Optimizer::step runs blocks of a parameter on its threads). Per value, in order:
//   g *= grad_scale (clipping); w *= shrink (decoupled weight decay); the rule;
//   avg = avg_decay * avg + (1 - avg_decay) * w; g = 0 (the next update's sums start there).
// grad_scale and shrink of 1 leave values as they are, bit for bit.
struct StepFactors {
  float lr = 0, grad_scale = 1, shrink = 1, avg_decay = 0;
  float c1 = 1, c2 = 1;  // Adam's bias corrections 1 / (1 - b1^t) and 1 / (1 - b2^t)
};
// Adam (b1 0.9, b2 0.999, eps 1e-8): m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2,
// w -= lr (m c1) / (sqrt(v c2) + eps).
void adam_step(std::int64_t n, const StepFactors& f, float* w, float* g, float* m, float* v, float* avg);
// Plain SGD: w -= lr g.
void sgd_step(std::int64_t n, const StepFactors& f, float* w, float* g, float* avg);

// One step of additive attention, one sentence per row n (threads split the sentences):
//   e_j = v . tanh(uh[j,n,:] + a[n,:]) for j < lengths[n], alpha[.,n] = softmax_j(e) (0 at
//   padding), context[n,:] = sum_j alpha[j,n] keys[j,n,:]. Layouts: uh [S, N, A], keys
//   [S, N, K], a [N, A], alpha [S, N], context [N, K].
// With source_of (beam search), query row n attends over key row source_of[n] of uh and keys
// ([S, M, .], one row per sentence, shared by its hypotheses); without it, M == N and row n.
void attention_forward(int S, int N, std::int64_t A, std::int64_t K, const float* uh, const float* a, const float* v,
                       const float* keys, const std::int32_t* lengths, float* alpha, float* context,
                       const std::int32_t* source_of = nullptr, int M = 0);

// Its backward, tanh(uh + a) recomputed on the fly: given dcontext [N, K], adds alpha dc to
// dkeys and dz = de v (1 - tanh^2) to duh, writes da[n,:] = sum_j dz[j,n,:] and adds
// sum_j de[j,n] tanh(.) to dv_rows[n,:] (v's gradient, per sentence; the caller sums the
// rows in a fixed order). de [S, N] is scratch.
void attention_backward(int S, int N, std::int64_t A, std::int64_t K, const float* uh, const float* a, const float* v,
                        const float* keys, const std::int32_t* lengths, const float* alpha, const float* dcontext,
                        float* de, float* dkeys, float* duh, float* da, float* dv_rows);

// The index of the first largest of x[0..n) (n >= 1), vectorised; NaN is never the largest
// (0 when every entry is NaN).
std::int64_t argmax(std::int64_t n, const float* x);

// The k largest entries of x[0..n) as (value, index) into `out` (cleared first), largest
// first, equal values by the lower index; fewer when x has fewer that are not NaN (NaN is
// never chosen). For a search's best words: the k-th largest of the maxima of blocks of 64
// entries bounds the k-th largest entry from below, so only the few blocks whose maximum
// reaches it are read entry by entry.
void top_k(std::int64_t n, const float* x, int k, std::vector<std::pair<float, std::int32_t>>& out);
// log(sum_i exp(x[i])) of one row, vectorised (float terms, each <= 1, summed in lanes).
double log_sum_exp(std::int64_t n, const float* x);
// The same over the entries x[cols[0..n)].
double log_sum_exp(std::int64_t n, const std::int32_t* cols, const float* x);

// Label-smoothed cross-entropy rows (see nn::softmax_cross_entropy); per-row loss and nll
// written to row_loss/row_nll (0 for pad rows); logits overwritten with the gradient if grad.
void cross_entropy_rows(std::int64_t m, std::int64_t v, float* logits, const std::int32_t* targets, int pad,
                        float label_smoothing, bool grad, float scale, double* row_loss, double* row_nll);

}  // namespace gloss::kernels
