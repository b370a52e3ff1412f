#pragma once
// Training checkpoints: a model file's contents (model/model_file.h, in the envelope of
// model/file_format.h), the weight averages (train.ema_decay), the optimiser moments, the
// training state, the RNG state and the data position, for exact resume. Written to a
// temporary name and renamed: a crash never leaves a broken one.
#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "gloss/model/model_file.h"
#include "gloss/nn/optimizer.h"
#include "gloss/nn/parameter.h"

namespace gloss::train {

struct TrainingState {
  int epoch = 1;            // data position: epoch ...
  std::uint64_t batch = 0;  // ... and batches of it already used
  std::int64_t step = 0;    // optimiser updates
  std::int64_t target_tokens = 0;
  double elapsed_seconds = 0;  // training time so far (excluding validation)
  double lr = 0;               // current learning rate (after decays)
  double best_score = 0;       // best validation score (higher is better)
  std::int64_t best_step = -1;
  int stalls = 0;     // validations without improvement
  int lr_stalls = 0;  // validations without improvement since the last decay
  std::array<std::uint64_t, 4> rng{};
  // Training loss summed since the last validation, and its target tokens (a checkpoint saved
  // between validations, by a stop signal, carries them; checkpoints before version 7 do not).
  double loss_since_valid = 0;
  std::int64_t tokens_since_valid = 0;
};

// averages: the run's weight averages (nn::WeightAverage::state(); empty without them).
void save_checkpoint(const std::string& path, const model::ModelFile& model, const nn::ParameterSet& params,
                     nn::Optimizer& optimizer, const TrainingState& state, const std::vector<Tensor*>& averages = {});
// Throws InputError naming the file when it does not fit the run (another optimiser, weight
// averages kept or not).
model::ModelFile load_checkpoint(const std::string& path, nn::ParameterSet& params, nn::Optimizer& optimizer,
                                 TrainingState& state, const std::vector<Tensor*>& averages = {});
// The numbered copies train.keep_last keeps in `dir`, checkpoint.<step>.gckpt, by step (other
// names, and steps of more than 18 digits, are not theirs).
std::string numbered_checkpoint_path(const std::string& dir, std::int64_t step);
std::vector<std::pair<std::int64_t, std::string>> numbered_checkpoints(const std::string& dir);

// Only the configuration part of a checkpoint (to build the model before loading values).
model::ModelFile peek_checkpoint(const std::string& path);

}  // namespace gloss::train
