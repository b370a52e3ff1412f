#pragma once
// `gloss train`: teacher-forcing training of the recipe's model, with validation (cross-entropy,
// perplexity, and BLEU/chrF of greedy translations scored by the toolkit's sacreBLEU-exact
// scorer), early stopping, learning-rate schedules, checkpoints and exact resume.
//
// Files in <workdir>: spm/ (subword models), checkpoint.gckpt (latest, for resume),
// checkpoint.<step>.gckpt (the last train.keep_last), model.best.gloss (best validation
// score), metrics.jsonl (one row per validation, train/metrics.h). Running the same command
// again after an interruption resumes from the checkpoint and ends with the same model, bit
// for bit, as an uninterrupted run with the same seed and threads. Once the updates have begun,
// SIGINT or SIGTERM makes every rank end the update under way (and the validation that step is
// due, if any), rank 0 save a checkpoint there, and train() throw Interrupted (util/error.h;
// the process exits 128 + the signal).
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "gloss/dist/comm.h"
#include "gloss/model/seq2seq.h"
#include "gloss/nn/optimizer.h"
#include "gloss/text/batcher.h"
#include "gloss/text/corpus.h"
#include "gloss/text/sampling.h"
#include "gloss/text/subword.h"
#include "gloss/train/metrics.h"
#include "gloss/train/options.h"
#include "gloss/train/workers.h"

namespace gloss::train {

// The training data as training sees it: the subword models (trained, or reused when their
// fingerprint matches, under <workdir>/spm) and the training corpus encoded and
// length-filtered on `threads` threads. Throws InputError naming a file (also for training or
// validation files of different lengths).
struct TrainingData {
  text::SubwordModelPaths paths;
  text::SubwordModel src, tgt;
  text::FilterOptions filter;
  text::FilterReport report;   // what was read, kept and dropped
  text::EncodedCorpus corpus;  // the best segmentations; with a sampler, re-drawn every epoch
  std::shared_ptr<const text::SegmentationSampler> sampler;  // subword.sample_nbest > 1, else null
  double subword_seconds = 0, encode_seconds = 0;
};
TrainingData prepare_data(const TrainSetup& setup, int threads, std::ostream& log);

// The [train] batching keys as the batcher takes them.
text::BatchOptions batch_options(const TrainOptions& t);

// The network of a training run on the data's vocabularies: the model, its parameters (zero:
// initialise them or load a checkpoint), the workers of `t` (which must outlive it) and the
// optimiser. What train() and `gloss bench train` build.
struct Network {
  Network(const model::ModelConfig& model, const TrainingData& data, const TrainOptions& t);
  model::ModelConfig config;  // the recipe's, with the data's vocabulary sizes
  nn::ParameterSet params;
  model::Seq2Seq net;
  Workers workers;
  std::unique_ptr<nn::Optimizer> optimizer;
};

// The learning rate of update `step` under train.lr_schedule and warmup_steps; `plateau_lr` is the
// plateau schedule's current rate (the run's state). cosine holds lr for decay_start updates,
// then falls to lr_min over decay_steps. Recipes check that cosine has decay_steps and lr_min <= lr.
double lr_at(const TrainOptions& t, double plateau_lr, std::int64_t step);

struct TrainOutcome {
  std::string best_model;  // path of model.best.gloss
  std::string checkpoint;  // path of the last checkpoint
  std::int64_t steps = 0;
  double best_score = 0;  // of train.valid_metric (higher is better: ce negated)
  std::int64_t best_step = -1;
  std::optional<MetricsRow> best_validation;  // the best model's validation (none without validation data)
  std::int64_t parameters = 0;
  text::FilterOptions filter;
  text::FilterReport data;  // training pairs read, kept and dropped
  std::size_t valid_pairs = 0;
  int src_vocab = 0, tgt_vocab = 0;
  double epochs_done = 0;          // complete epochs plus the fraction of the current one
  std::int64_t target_tokens = 0;  // trained on, over all runs
  double train_seconds = 0;        // training time over all runs (validation excluded)
  std::string stop_reason;         // empty when this run took no step
};

// Trains in setup.workdir (resuming from its checkpoint); progress on `log`.
TrainOutcome train(const TrainSetup& setup, std::ostream& log);

}  // namespace gloss::train
