#pragma once
// What a training run reads: the options of each module it uses, with their defaults, and
// where it works. The recipe's [data], [subword], [model], [train] and [decode] keys are
// registered straight into these structs (recipe/recipe.cc); `gloss train` and `gloss run`
// pass the recipe itself, which is a TrainSetup.
#include <string>

#include "gloss/decode/options.h"
#include "gloss/model/config.h"
#include "gloss/text/options.h"

namespace gloss::train {

struct TrainOptions {
  std::string optimizer = "adam";  // adam or sgd
  double lr = 0.001;
  std::string lr_schedule = "plateau";  // constant, plateau, inverse_sqrt or cosine
  int warmup_steps = 0;
  int decay_start = 0;      // cosine: updates at lr before the decay begins
  int decay_steps = 0;      // cosine: updates from lr down to lr_min (required)
  double lr_min = 0;        // cosine: the learning rate after decay_steps
  double lr_decay = 0.5;    // factor per plateau
  int lr_patience = 1;      // validations without improvement before decaying
  double weight_decay = 0;  // decoupled (AdamW): w -= lr * weight_decay * w before each update
  double ema_decay = 0;     // > 0: validation and saved models use an exponential moving average
  double clip_norm = 1.0;   // 0: no clipping
  double label_smoothing = 0.1;
  std::string batch_by = "sentences";  // sentences or tokens
  int batch_size = 64;                 // sentences per batch
  int batch_tokens = 2000;             // target tokens per batch (batch_by = tokens)
  int pool_batches = 50;               // batches sorted by length together (bucketing)
  int accumulate = 1;                  // batches per update
  int epochs = 10;
  int max_steps = 0;                           // 0: no limit
  double max_minutes = 0;                      // 0: no limit
  double teacher_forcing = 1.0;                // probability of feeding the reference word
  std::string teacher_forcing_decay = "none";  // none, linear, exponential or inverse_sigmoid
  double teacher_forcing_min = 0.0;            // what the decay tends to
  int teacher_forcing_steps = 10000;           // k of the decay (updates)
  int split_positions = 1024;                  // larger batches run in parts (same update, less memory)
  int valid_every = 500;                       // steps
  std::string valid_metric = "bleu";           // bleu, chrf or ce
  int patience = 5;                            // validations without improvement before stopping
  int keep_last = 2;                           // checkpoints kept besides the best
  std::string init = "uniform";                // uniform or glorot
  double init_scale = 0.1;
  int seed = 1;
  int threads = 2;
  std::string parallel = "data";  // data: a model replica per thread; ops: threads inside each operation
  std::string precision = "f32";  // f32, bf16 (GEMMs and recurrent layers) or auto (bf16 where the CPU has it)
  int replicas = 0;  // parts of every batch, each with its own random stream and gradient (0: one per worker)
};

struct TrainSetup {
  text::DataOptions data;
  text::SubwordOptions subword;
  model::ModelConfig model;  // vocabulary sizes are set from the subword models
  TrainOptions train;
  decode::TranslateOptions decode;  // validation's output limits and batch size
  std::string workdir;              // where models and results go
  std::string subword_dir;          // where the subword models go ("": <workdir>/spm)
  std::string recipe_text;          // the effective recipe, stored in model files for the record
};

}  // namespace gloss::train
