#include "gloss/train/workers.h"

#include <algorithm>
#include <cmath>
#include <span>
#include <string>
#include <utility>

#include "gloss/tensor/compute.h"
#include "gloss/tensor/kernels.h"
#include "gloss/util/error.h"

namespace gloss::train {

model::BatchView batch_view(const text::Batch& b) {
  return {b.size, b.src_len, b.tgt_len, b.src.data(), b.src_lengths.data(), b.tgt_in.data(), b.tgt_out.data()};
}

bool trains_in_bf16(const TrainOptions& t) {
  return t.precision == "bf16" || (t.precision == "auto" && compute::has_bf16());
}

double teacher_forcing_at(const TrainOptions& t, std::int64_t step) {
  const double p0 = t.teacher_forcing, pm = std::min(t.teacher_forcing_min, t.teacher_forcing);
  const double s = static_cast<double>(step), k = t.teacher_forcing_steps;
  if (t.teacher_forcing_decay == "linear") return std::max(pm, p0 - (p0 - pm) * s / k);
  if (t.teacher_forcing_decay == "exponential") return pm + (p0 - pm) * std::pow(0.5, s / k);
  if (t.teacher_forcing_decay == "inverse_sigmoid") return pm + (p0 - pm) * k / (k + std::exp(std::min(700.0, s / k)));
  return p0;
}

Workers::Workers(model::Seq2Seq& net, nn::ParameterSet& params, const model::ModelConfig& config, const TrainOptions& t,
                 dist::Comm& comm)
    : t_(t), comm_(comm), params_(params) {
  const int n = t.parallel == "data" ? std::max(1, t.threads) : 1;
  const int global = n * comm.size();
  replicas_per_update_ = t.replicas > 0 ? t.replicas : global;
  if (replicas_per_update_ % global != 0)
    throw UserError("train.replicas " + std::to_string(t.replicas) + " is not a multiple of the " +
                    std::to_string(global) + " workers (" + std::to_string(n) + " per process x " +
                    std::to_string(comm.size()) + " processes); set train.replicas to a multiple of " +
                    std::to_string(global) + ", or train.threads so that the workers divide " +
                    std::to_string(t.replicas));
  nets_.push_back(&net);
  for (int w = 1; w < n; ++w) {
    replica_params_.push_back(std::make_unique<nn::ParameterSet>());
    replica_params_.back()->share_values_of(params);  // before building: no values of its own
    replicas_.push_back(std::make_unique<model::Seq2Seq>(config, *replica_params_.back()));
    nets_.push_back(replicas_.back().get());
  }
  // Gradients kept apart while a worker runs its next replica: k - 1 per worker. Every
  // worker's gradients as one flat buffer (nn::ParameterSet::flat_grads), so that keeping,
  // adding and summing across ranks are single calls over it.
  const int k = replicas_per_update_ / global;
  kept_.resize(static_cast<std::size_t>(n));
  for (auto& slots : kept_) slots.resize(static_cast<std::size_t>(k - 1));
  for (int w = 0; w < n; ++w) gradients_of(static_cast<std::size_t>(w)).flat_grads();
  for (auto* w : nets_) w->set_training_bf16(trains_in_bf16(t));
}

void Workers::release_search_states() {
  for (auto* w : nets_) w->release_search_state();
}

void Workers::for_each(std::size_t tasks, const std::function<void(model::Seq2Seq&, std::size_t)>& task) {
  compute::run_workers(size(), tasks, [&](int w, std::size_t i) { task(*nets_[static_cast<std::size_t>(w)], i); });
}

Workers::~Workers() = default;

nn::ParameterSet& Workers::gradients_of(std::size_t worker) {
  return worker == 0 ? params_ : *replica_params_[worker - 1];
}

namespace {

// p's gradients (its flat buffer) moved into `kept`; p's become zero.
void keep_gradients(nn::ParameterSet& p, std::vector<float>& kept) {
  const auto g = p.flat_grads();
  kept.assign(g.begin(), g.end());
  std::fill(g.begin(), g.end(), 0.0f);
}

// into's gradients += from (both flat, as nn::ParameterSet::flat_grads lays them out); from
// becomes zero.
void move_add_gradients(std::span<float> from, nn::ParameterSet& into) {
  kernels::move_add(static_cast<std::int64_t>(from.size()), from.data(), into.flat_grads().data());
}

void add_loss(nn::LossSum& into, const nn::LossSum& l) {
  into.loss += l.loss;
  into.nll += l.nll;
  into.tokens += l.tokens;
}

}  // namespace

nn::LossSum Workers::train_batch(const text::EncodedCorpus& corpus, const text::Batch& batch, Rng& rng, float scale,
                                 std::int64_t step) {
  const int V = replicas_per_update_, n = size();
  const int k = V / (n * comm_.size());  // replicas per worker
  const auto tf = static_cast<float>(teacher_forcing_at(t_, step));
  const auto ls = static_cast<float>(t_.label_smoothing);
  for (auto* w : nets_) w->set_teacher_forcing(tf);
  const auto parts = text::split_batch(corpus, batch, t_.split_positions, V);
  nn::LossSum total;
  if (V == 1) {
    for (const auto& part : parts) add_loss(total, nets_[0]->forward_backward(batch_view(part), ls, &rng, true, scale));
    return total;
  }
  // Each replica draws from a generator seeded from the run's (every rank draws all of them,
  // so the run's generator stays the same everywhere): the same batches, seed and replicas
  // give the same model, bit for bit.
  std::vector<Rng> rngs;
  for (int v = 0; v < V; ++v) rngs.emplace_back(rng.next());
  std::vector<nn::LossSum> losses(static_cast<std::size_t>(n));
  const std::size_t first = static_cast<std::size_t>(n * k * comm_.rank());       // this rank's first replica
  compute::run_workers(n, static_cast<std::size_t>(n), [&](int, std::size_t w) {  // task w: worker w's replicas
    for (int j = 0; j < k; ++j) {
      const std::size_t v = first + w * static_cast<std::size_t>(k) + static_cast<std::size_t>(j);
      if (j > 0)  // the previous replica's gradients, kept apart until sum_replicas
        keep_gradients(gradients_of(w), kept_[w][static_cast<std::size_t>(j - 1)]);
      for (std::size_t i = v; i < parts.size(); i += static_cast<std::size_t>(V))
        if (parts[i].size > 0)
          add_loss(losses[w], nets_[w]->forward_backward(batch_view(parts[i]), ls, &rngs[v], true, scale));
    }
  });
  for (const auto& l : losses) add_loss(total, l);
  sum_replicas();
  return total;
}

// The gradients of this process's replicas into net's, left to right in replica order, as
// one worker per replica would add them: worker 0's replicas (kept ones, then its own
// gradients), then each other worker's. The replicas' buffers start the next batch at zero.
void Workers::sum_replicas() {
  const compute::StageTimer timer(compute::Stage::kReduce);
  auto& kept0 = kept_[0];
  if (!kept0.empty()) {
    for (std::size_t j = 1; j < kept0.size(); ++j)
      kernels::move_add(static_cast<std::int64_t>(kept0[j].size()), kept0[j].data(), kept0[0].data());
    move_add_gradients(kept0[0], params_);  // (kept sum) + own gradients: a + b is b + a, exactly
  }
  for (std::size_t w = 1; w < nets_.size(); ++w) {
    for (auto& store : kept_[w]) move_add_gradients(store, params_);
    move_add_gradients(replica_params_[w - 1]->flat_grads(), params_);
  }
}

void Workers::sum_across_ranks(nn::LossSum& loss) {
  if (comm_.single()) return;
  const compute::StageTimer timer(compute::Stage::kReduce);
  sum_gradients_across_ranks();
  double sums[3] = {loss.loss, loss.nll, static_cast<double>(loss.tokens)};
  comm_.sum_in_rank_order(sums, 3);
  loss.loss = sums[0];
  loss.nll = sums[1];
  loss.tokens = static_cast<std::int64_t>(sums[2]);
}

// Rows of a sparse table (an embedding) that no rank's batches touched are zero on every rank,
// and so is their sum: only the touched rows travel, packed into one buffer, beside the dense
// parameters' ranges of the flat buffer. Every value is summed as one flat sum would sum it
// (element by element, in rank order), so the model is the same bit for bit; the embeddings'
// traffic falls from whole tables to the rows of an update's words.
void Workers::sum_gradients_across_ranks() {
  gather_touched_rows();
  sum_dense_parameters();
  sum_touched_rows();
}

// touched_: the sparse tables' row flags, table after table in registration order, of this
// process (its replicas' folded in) and then of the job. Every table's own flags are cleared.
void Workers::gather_touched_rows() {
  const auto& all = params_.all();
  touched_.clear();
  for (std::size_t i = 0; i < all.size(); ++i) {
    auto& mine = all[i]->rows_touched;
    for (const auto& replica : replica_params_) {
      auto& theirs = replica->all()[i]->rows_touched;
      for (std::size_t r = 0; r < theirs.size(); ++r) mine[r] |= std::exchange(theirs[r], 0);
    }
    touched_.insert(touched_.end(), mine.begin(), mine.end());
    std::fill(mine.begin(), mine.end(), 0);
  }
  comm_.any(touched_.data(), touched_.size());
}

// Each run of consecutive dense parameters as one range of the flat buffer (the gaps between
// parameters are zero on every rank).
void Workers::sum_dense_parameters() {
  const auto g = params_.flat_grads();
  std::size_t begin = 0, end = 0;
  const auto sum_range = [&] {
    if (end > begin) comm_.sum_in_rank_order(g.data() + begin, end - begin);
    begin = end = 0;
  };
  for (const auto& p : params_.all()) {
    if (!p->rows_touched.empty()) {
      sum_range();
      continue;
    }
    const auto at = static_cast<std::size_t>(p->grad.data() - g.data());
    if (end == begin) begin = at;
    end = at + static_cast<std::size_t>(p->grad.size());
  }
  sum_range();
}

// The rows touched_ flags: packed, summed, put back.
void Workers::sum_touched_rows() {
  const auto for_each_touched_row = [&](const auto& visit) {
    std::size_t flag = 0;
    for (const auto& p : params_.all()) {
      const std::size_t rows = p->rows_touched.size();
      if (rows == 0) continue;
      const std::size_t width = static_cast<std::size_t>(p->grad.size()) / rows;
      for (std::size_t r = 0; r < rows; ++r, ++flag)
        if (touched_[flag]) visit(std::span<float>(p->grad.data() + r * width, width));
    }
  };
  packed_.clear();
  for_each_touched_row([&](std::span<float> row) { packed_.insert(packed_.end(), row.begin(), row.end()); });
  if (packed_.empty()) return;  // the same on every rank: the flags are the job's
  comm_.sum_in_rank_order(packed_.data(), packed_.size());
  std::size_t at = 0;
  for_each_touched_row([&](std::span<float> row) {
    std::copy_n(packed_.begin() + static_cast<std::ptrdiff_t>(at), row.size(), row.begin());
    at += row.size();
  });
}

}  // namespace gloss::train
