#pragma once
// `gloss train`: teacher-forcing training of the recipe's model, with validation (cross-entropy,
// perplexity, and BLEU/chrF of greedy translations scored by the toolkit's sacreBLEU-exact
// scorer), early stopping, learning-rate schedules, checkpoints and exact resume.
//
// Files in <run.workdir>: spm/ (subword models), checkpoint.gckpt (latest, for resume),
// model.best.gloss (best validation score), metrics.jsonl (one JSON object per validation).
// Running the same command again after an interruption resumes from the checkpoint and ends
// with the same model, bit for bit, as an uninterrupted run with the same seed and threads.
#include <iosfwd>
#include <functional>
#include <memory>
#include <vector>
#include <string>

#include "gloss/model/seq2seq.h"
#include "gloss/recipe/recipe.h"
#include "gloss/text/batcher.h"

namespace gloss::train {

// The recipe's [model] and [train] batching keys as the model and the batcher take them.
model::ModelConfig model_config(const recipe::ModelOptions& m, std::int64_t src_vocab, std::int64_t tgt_vocab);
text::BatchOptions batch_options(const recipe::TrainOptions& t);
model::BatchView batch_view(const text::Batch& b);
// Applies the [train] keys that shape how the network runs (memory for RNN caches), for one
// of `workers` models running side by side.
void configure(model::Seq2Seq& net, const recipe::TrainOptions& t, int workers = 1);

// Forward and backward of training batches on the recipe's threads. With train.parallel =
// data and T threads, T workers each run their share of every batch's sentences with one
// thread: worker 0 on `net` itself, the others on replicas that read net's weights and keep
// gradients (and oneDNN buffers) of their own, summed into net's in a fixed order. No thread
// waits for another inside a time step, which on few cores beats splitting every small
// operation. With ops (or one thread), `net` alone runs with all threads inside each operation.
class Workers {
 public:
  Workers(model::Seq2Seq& net, nn::ParameterSet& params, const model::ModelConfig& config,
          const recipe::TrainOptions& t);
  ~Workers();
  int size() const { return static_cast<int>(nets_.size()); }
  // Runs task(model, i) for i in [0, tasks) spread over the workers (validation): each task
  // on one worker's model with one thread; task must only write its own results.
  void for_each(std::size_t tasks, const std::function<void(model::Seq2Seq&, std::size_t)>& task);
  // One batch as training runs it: the teacher-forcing ratio of `step`, long batches in parts
  // (train.split_positions); gradients of scale * loss are added to net's.
  nn::LossSum train_batch(const text::EncodedCorpus& corpus, const text::Batch& batch, Rng& rng, float scale,
                          std::int64_t step);

 private:
  const recipe::TrainOptions& t_;
  nn::ParameterSet& params_;
  std::vector<model::Seq2Seq*> nets_;                       // [0] = net
  std::vector<std::unique_ptr<nn::ParameterSet>> replica_params_;
  std::vector<std::unique_ptr<model::Seq2Seq>> replicas_;
};

// Scheduled sampling: the teacher-forcing ratio at update `step` (train.teacher_forcing*).
double teacher_forcing_at(const recipe::TrainOptions& t, std::int64_t step);

struct TrainOutcome {
  std::string best_model;   // path of model.best.gloss
  std::string checkpoint;   // path of the last checkpoint
  std::int64_t steps = 0;
  double best_score = 0;    // of train.valid_metric
  std::int64_t best_step = -1;
  // For reports:
  std::int64_t parameters = 0;
  std::size_t pairs_read = 0, pairs_kept = 0, valid_pairs = 0;
  std::string data_summary;       // the filter report line
  int src_vocab = 0, tgt_vocab = 0;
  int epoch = 0;                  // the epoch training stopped in
  double epochs_done = 0;         // complete epochs plus the fraction of the current one
  std::int64_t target_tokens = 0; // trained on, over all runs
  double train_seconds = 0;       // training time over all runs (validation included)
  std::string stop_reason;        // empty when this run took no step
};

TrainOutcome train(const recipe::LoadedRecipe& loaded, std::ostream& log);

}  // namespace gloss::train
