#pragma once
// The data-parallel workers of a training run: each runs its share of every batch's sentences
// on its own model replica with one thread, and the replicas' gradients (and, under mpirun,
// the ranks') are summed in a fixed order, so that the model depends on the recipe, the seed
// and train.replicas only (see Workers). Used by trainer.h (training, validation) and by
// `gloss bench train`.
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "gloss/dist/comm.h"
#include "gloss/model/seq2seq.h"
#include "gloss/nn/parameter.h"
#include "gloss/text/batcher.h"
#include "gloss/text/corpus.h"
#include "gloss/train/options.h"
#include "gloss/util/rng.h"

namespace gloss::train {

// A batch as the model takes it (a view: b must outlive it).
model::BatchView batch_view(const text::Batch& b);

// Whether training runs in bf16: train.precision bf16, or auto on a CPU with AVX512-BF16.
bool trains_in_bf16(const TrainOptions& t);

// Scheduled sampling: the teacher-forcing ratio at update `step` (train.teacher_forcing*).
double teacher_forcing_at(const TrainOptions& t, std::int64_t step);

// Forward and backward of training batches on the recipe's threads. With train.parallel =
// data and T threads, T workers each run their share of every batch's sentences with one
// thread: worker 0 on `net` itself, the others on replicas that read net's weights and keep
// gradients (and oneDNN buffers) of their own, summed into net's in a fixed order. No thread
// waits for another inside a time step, which on few cores beats splitting every small
// operation. With ops (or one thread), `net` alone runs with all threads inside each operation.
// `t` must outlive the workers.
//
// Replicas: every batch is dealt into V parts (train.replicas; 0: one per worker), part v
// run with its own random stream v (dropout, word dropout, sampling) into its own gradient,
// and the V gradients are added left to right in replica order. Under mpirun the job's R
// ranks have R x T workers; with k = V / (R x T) (V must be a multiple), rank r's worker w
// runs replicas (r * T + w) * k .. + k - 1 one after the other, keeping all but the last
// one's gradients apart (k - 1 extra gradient buffers) until they are added in order.
// sum_across_ranks() then adds the ranks' sums in rank order. So with one replica per rank
// (k x T = 1), or in one process, the model depends on V and not on T or R: one process
// with 1 or V workers and mpirun -np V x 1 thread train the same model, bit for bit, given
// train.accumulate 1 (tests/train, tests/e2e/mpi_test.sh). Throws UserError when V is not a
// multiple of the workers.
class Workers {
 public:
  Workers(model::Seq2Seq& net, nn::ParameterSet& params, const model::ModelConfig& config, const TrainOptions& t,
          dist::Comm& comm);
  ~Workers();
  int size() const { return static_cast<int>(nets_.size()); }
  // Runs task(model, i) for i in [0, tasks) spread over the workers (validation): each task
  // on one worker's model with one thread; task must only write its own results.
  void for_each(std::size_t tasks, const std::function<void(model::Seq2Seq&, std::size_t)>& task);
  // After validation's searches: frees each model's search state (model::Seq2Seq::search_state).
  void release_search_states();
  // One batch as training runs it: the teacher-forcing ratio of `step`, long batches in parts
  // (train.split_positions); gradients of scale * loss are added to net's.
  nn::LossSum train_batch(const text::EncodedCorpus& corpus, const text::Batch& batch, Rng& rng, float scale,
                          std::int64_t step);
  // Under mpirun: every rank's gradients (and `loss`) summed in rank order, on every rank. Once
  // per update, after its batches. Single process: nothing to do.
  void sum_across_ranks(nn::LossSum& loss);
  dist::Comm& comm() const { return comm_; }
  int replicas() const { return replicas_per_update_; }

 private:
  nn::ParameterSet& gradients_of(std::size_t worker);
  void sum_replicas();
  void sum_gradients_across_ranks();  // its three steps:
  void gather_touched_rows();
  void sum_dense_parameters();
  void sum_touched_rows();
  const TrainOptions& t_;
  dist::Comm& comm_;
  int replicas_per_update_ = 1;                        // V: train.replicas, or (0) one per worker
  std::vector<std::vector<std::vector<float>>> kept_;  // [worker][j]: its replica j's gradients, kept apart
  nn::ParameterSet& params_;
  std::vector<model::Seq2Seq*> nets_;  // [0] = net
  std::vector<std::unique_ptr<nn::ParameterSet>> replica_params_;
  std::vector<std::unique_ptr<model::Seq2Seq>> replicas_;
  std::vector<std::uint8_t> touched_;  // sum_gradients_across_ranks' row flags and packed rows,
  std::vector<float> packed_;          // kept from update to update
};

}  // namespace gloss::train
