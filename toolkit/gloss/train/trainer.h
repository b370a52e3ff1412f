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
#include <string>

#include "gloss/model/seq2seq.h"
#include "gloss/recipe/recipe.h"
#include "gloss/text/batcher.h"

namespace gloss::train {

// The recipe's [model] and [train] batching keys as the model and the batcher take them.
model::ModelConfig model_config(const recipe::ModelOptions& m, std::int64_t src_vocab, std::int64_t tgt_vocab);
text::BatchOptions batch_options(const recipe::TrainOptions& t);
model::BatchView batch_view(const text::Batch& b);

struct TrainOutcome {
  std::string best_model;   // path of model.best.gloss
  std::string checkpoint;   // path of the last checkpoint
  std::int64_t steps = 0;
  double best_score = 0;    // of train.valid_metric
  std::int64_t best_step = -1;
};

TrainOutcome train(const recipe::LoadedRecipe& loaded, std::ostream& log);

}  // namespace gloss::train
