#pragma once
// Recipes: INI files read by Boost.Program_options. Every key `[section] key = value` is also
// the command-line option `--section.key value`; the command line wins over the file, a file
// wins over the recipes it includes, and those win over the defaults.
//
//   include = base.ini        # optional, first line(s): recipes to build on
//   [train]
//   lr = 0.001
//
// Paths in a recipe are relative to the file that sets them; on the command line, to the
// current directory. Errors name the file, line and key.
#include <map>
#include <string>
#include <vector>

#include "gloss/text/options.h"

namespace gloss::recipe {

using text::DataOptions;
using text::SubwordOptions;

struct ModelOptions {
  std::string cell = "gru";           // gru or lstm
  int emb_dim = 256;
  int enc_hidden = 256;               // per direction
  int enc_layers = 1;
  std::string bidirectional = "first";  // first, all or none
  int dec_hidden = 512;
  int dec_layers = 1;
  int att_dim = 512;
  std::string readout = "maxout";     // maxout or tanh
  int readout_dim = 256;
  std::string dec_init = "last_backward";  // last_backward, mean or zero
  bool tie_target_embeddings = false;
  double dropout_emb = 0.2, dropout_rnn = 0.2, dropout_readout = 0.2;
};

struct TrainOptions {
  std::string optimizer = "adam";     // adam or sgd
  double lr = 0.001;
  std::string lr_schedule = "plateau";  // constant, plateau or inverse_sqrt
  int warmup_steps = 0;
  double lr_decay = 0.5;              // factor per plateau
  int lr_patience = 1;                // validations without improvement before decaying
  double clip_norm = 1.0;             // 0: no clipping
  double label_smoothing = 0.1;
  std::string batch_by = "sentences"; // sentences or tokens
  int batch_size = 64;                // sentences per batch
  int batch_tokens = 2000;            // target tokens per batch (batch_by = tokens)
  int pool_batches = 50;              // batches sorted by length together (bucketing)
  int accumulate = 1;                 // batches per update
  int epochs = 10;
  int max_steps = 0;                  // 0: no limit
  double max_minutes = 0;             // 0: no limit
  double teacher_forcing = 1.0;       // probability of feeding the reference word
  std::string teacher_forcing_decay = "none";  // none, linear, exponential or inverse_sigmoid
  double teacher_forcing_min = 0.0;   // what the decay tends to
  int teacher_forcing_steps = 10000;  // k of the decay (updates)
  int split_positions = 1024;         // larger batches run in parts (same update, less memory)
  int rnn_cache_mb = 64;             // RNN training caches kept for backward (all workers); the rest recomputed
  int valid_every = 500;              // steps
  std::string valid_metric = "bleu";  // bleu, chrf or ce
  int patience = 5;                   // validations without improvement before stopping
  int keep_last = 2;                  // checkpoints kept besides the best
  std::string init = "uniform";       // uniform or glorot
  double init_scale = 0.1;
  int seed = 1;
  int threads = 2;
  std::string parallel = "data";      // data: a model replica per thread; ops: threads inside each operation
};

struct DecodeOptions {
  int beam_size = 5;                  // 1: greedy
  double length_penalty = 1.0;        // score / length^alpha
  double max_len_ratio = 2.0;         // longest output: ratio * source length + max_len_add
  int max_len_add = 10;
  int n_best = 1;
  int batch_size = 64;
};

struct EvalOptions {
  std::string metrics = "bleu chrf";  // scored by `gloss run`
};

struct RunOptions {
  std::string workdir;  // where models and results go; default: runs/<recipe name>
};

struct Recipe {
  std::string path;  // the recipe file ("" for command-line options only)
  DataOptions data;
  SubwordOptions subword;
  ModelOptions model;
  TrainOptions train;
  DecodeOptions decode;
  EvalOptions eval;
  RunOptions run;
};

// Where a value came from.
struct Origin {
  enum class Kind { kDefault, kFile, kCommandLine };
  Kind kind = Kind::kDefault;
  std::string file;
  int line = 0;
  std::string describe() const;  // "default", "recipes/quick.ini:12", "command line"
};

struct LoadedRecipe {
  Recipe recipe;
  std::vector<std::string> keys;            // every key, "section.key", in schema order
  std::map<std::string, std::string> text;  // effective value of each key, as text
  std::map<std::string, Origin> origins;
};

// Loads `path` (may be empty) with `overrides` (command-line tokens such as
// {"--train.lr", "0.01"}), validates everything and checks that data files exist.
// Throws ConfigError / InputError with file, line and key.
LoadedRecipe load_recipe(const std::string& path, const std::vector<std::string>& overrides,
                         bool check_files = true);

// The effective recipe: every key, its value and where it came from.
std::string show(const LoadedRecipe& loaded);
// Every key with its type, default and description (for --help).
std::string keys_help();

}  // namespace gloss::recipe
