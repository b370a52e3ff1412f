#pragma once
// Model files: everything translation needs in one file, the model configuration, every
// parameter, both SentencePiece models and the lexical shortlist built from the training data
// (and the recipe that trained it, for the record).
// The format is in model/file_format.h. Files are written to a temporary name and renamed:
// a crash never leaves a broken one.
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "gloss/model/seq2seq.h"
#include "gloss/nn/parameter.h"

namespace gloss::model {

struct ModelFile {
  ModelConfig config;
  std::string src_spm, tgt_spm;  // serialised SentencePiece models
  std::string recipe;            // the effective recipe, for the record
  std::string shortlist;         // decode/shortlist.h's text format; empty: none (files before version 5)
};

// Throws UserError naming the path when it cannot be written.
void save_model(const std::string& path, const ModelFile& model, const nn::ParameterSet& params);
// Loads the configuration and SentencePiece models; `params` receives the values when given
// (it must hold the parameters the configuration creates). Throws InputError naming the file.
ModelFile load_model(const std::string& path, nn::ParameterSet* params);
// Reads the file once: `build` gets its configuration (and subword models) and returns the
// parameters of the model it made for them, which then receive the file's values (names and
// shapes checked). Throws InputError naming the file, or what `build` throws.
ModelFile load_model(const std::string& path, const std::function<nn::ParameterSet&(const ModelFile&)>& build);
// The same from either a model file or a training checkpoint (whose payload starts alike; a
// checkpoint's weight averages, when it has them, are the values loaded). Each reads the file
// once.
ModelFile load_any(const std::string& path, nn::ParameterSet* params);
ModelFile load_any(const std::string& path, const std::function<nn::ParameterSet&(const ModelFile&)>& build);

// "model file" or "checkpoint" when `head` (a file's first bytes) starts with that kind's
// magic, else "".
std::string gloss_kind_of_head(std::string_view head);
// The same for the regular file at `path`; "" also for a pipe or device, which it leaves
// unread, and a file it cannot read: for errors that name what a user gave instead of a
// recipe or a subword model.
std::string gloss_file_kind(const std::string& path);

// Averages the parameters of model files and/or checkpoints of one model (same configuration
// and subword models) into a new model file. Throws InputError naming a file that differs, and
// ConfigError when `output` is one of the inputs or ends in .gckpt (a checkpoint's name).
void average_models(const std::vector<std::string>& inputs, const std::string& output);

}  // namespace gloss::model
