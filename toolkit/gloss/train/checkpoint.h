#pragma once
// Model files and training checkpoints (Boost.Serialization inside a checked envelope):
//   "GLOSSMDL" or "GLOSSCKP" | format version (u32) | payload size (u64) | CRC-32 (u32) | payload
// A model file holds the model configuration, every parameter and both SentencePiece models,
// so translation needs nothing else. A checkpoint adds the optimiser moments, the training
// state, the RNG state and the data position, for exact resume. Files are written to a
// temporary name and renamed: a crash never leaves a broken one.
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "gloss/model/seq2seq.h"
#include "gloss/nn/optimizer.h"
#include "gloss/nn/parameter.h"

namespace gloss::train {

struct TrainingState {
  int epoch = 1;                 // data position: epoch ...
  std::uint64_t batch = 0;       // ... and batches of it already used
  std::int64_t step = 0;         // optimiser updates
  std::int64_t target_tokens = 0;
  double elapsed_seconds = 0;    // training time so far (excluding validation)
  double lr = 0;                 // current learning rate (after decays)
  double best_score = 0;         // best validation score (higher is better)
  std::int64_t best_step = -1;
  int stalls = 0;                // validations without improvement
  int lr_stalls = 0;             // validations without improvement since the last decay
  std::array<std::uint64_t, 4> rng{};
};

struct ModelFile {
  model::ModelConfig config;
  std::string src_spm, tgt_spm;  // serialised SentencePiece models
  std::string recipe;            // the effective recipe, for the record
};

void save_model(const std::string& path, const ModelFile& model, const nn::ParameterSet& params);
// Loads the configuration and SentencePiece models; `params` receives the values when given
// (it must hold the parameters the configuration creates). Throws InputError naming the file.
ModelFile load_model(const std::string& path, nn::ParameterSet* params);

void save_checkpoint(const std::string& path, const ModelFile& model, const nn::ParameterSet& params,
                     nn::Optimizer& optimizer, const TrainingState& state);
ModelFile load_checkpoint(const std::string& path, nn::ParameterSet& params, nn::Optimizer& optimizer,
                          TrainingState& state);
// Only the configuration part of a checkpoint (to build the model before loading values).
ModelFile peek_checkpoint(const std::string& path);

// The configuration, subword models and (when params is given) parameter values of either a
// model file or a checkpoint.
ModelFile load_any(const std::string& path, nn::ParameterSet* params);

// Averages the parameters of model files and/or checkpoints of one model (same configuration
// and subword models) into a new model file. Throws InputError naming a file that differs.
void average_models(const std::vector<std::string>& inputs, const std::string& output);

}  // namespace gloss::train
