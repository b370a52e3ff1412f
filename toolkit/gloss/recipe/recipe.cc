#include "gloss/recipe/recipe.h"

#include <boost/program_options.hpp>

#include <algorithm>
#include <charconv>
#include <climits>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <type_traits>

#include "gloss/model/model_file.h"
#include "gloss/util/error.h"
#include "gloss/util/hash.h"
#include "gloss/util/line_reader.h"

namespace po = boost::program_options;
namespace fs = std::filesystem;

namespace gloss::recipe {
namespace {

const std::vector<std::string> kSections = {"data", "subword", "model", "train", "decode", "eval", "run"};

// The shortest text that reads back as v (0.2f prints "0.2", as 0.2 does).
template <class T>
std::string number_text(T v) {
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, res.ptr);
}

std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

// "; did you mean 'x'?" for the nearest candidate, if it is near enough; else the candidates
// that contain the word (at least 3 letters; at most 4 of them: "hidden" -> enc_hidden or
// dec_hidden); else "".
std::string suggestion(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  std::size_t best_d = SIZE_MAX;
  for (const auto& c : candidates) {
    const std::size_t d = edit_distance(word, c);
    if (d < best_d) {
      best_d = d;
      best = c;
    }
  }
  if (!best.empty() && best_d <= std::max<std::size_t>(3, word.size() / 3)) return "; did you mean '" + best + "'?";
  std::vector<std::string> containing;
  if (word.size() >= 3)
    for (const auto& c : candidates)
      if (c.find(word) != std::string::npos) containing.push_back("'" + c + "'");
  if (containing.empty() || containing.size() > 4) return "";
  std::string list = containing[0];
  for (std::size_t i = 1; i < containing.size(); ++i)
    list += (i + 1 == containing.size() ? " or " : ", ") + containing[i];
  return "; did you mean " + list + "?";
}

// suggestion() for an unknown key of [section]; with none near, where the section's keys are listed.
std::string near_key(const std::string& key, const std::vector<std::string>& in_section, const std::string& section) {
  const std::string near = suggestion(key, in_section);
  return near.empty() ? "; `gloss train --help` lists the keys of [" + section + "]" : near;
}

// Why a key that recipes once had is gone ("" for any other key), for its error message.
std::string retired(const std::string& name) {
  if (name == "train.rnn_cache_mb")
    return "; it was removed on 2026-12-06: the encoder's training state is kept like every other activation "
           "(gloss summary estimates it; train.split_positions bounds it)";
  return "";
}

struct KeySpec {
  std::string name;  // "train.lr"
  std::string type;  // int, float, bool, string, path, choice
  std::string help;
  std::string default_text;
  std::vector<std::string> choices;
  std::function<po::value_semantic*()> semantic;
  std::function<std::string()> text;
  std::function<std::string()> check;  // "" when valid, else what is wrong
  std::string* path = nullptr;
};

class Schema {
 public:
  explicit Schema(Recipe& r) {
    add_data(r);
    add_subword(r);
    add_model(r);
    add_train(r);
    add_decode(r);
    add_eval_and_run(r);
  }

  const KeySpec* find(const std::string& name) const {
    for (const auto& k : keys)
      if (k.name == name) return &k;
    return nullptr;
  }
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& k : keys) out.push_back(k.name);
    return out;
  }

  std::vector<KeySpec> keys;

 private:
  // [data]: text::DataOptions
  void add_data(Recipe& r) {
    auto& d = r.data;
    add_path("data.train_src", &d.train_src, "training source text, one sentence a line (plain or .gz)");
    add_path("data.train_tgt", &d.train_tgt, "training target text, line-aligned with train_src");
    add_path("data.valid_src", &d.valid_src, "validation source text");
    add_path("data.valid_tgt", &d.valid_tgt, "validation target text");
    add_path("data.test_src", &d.test_src, "test source text");
    add_path("data.test_tgt", &d.test_tgt, "test target text (reference)");
    add_string("data.src_lang", &d.src_lang, "source language code (names model files)");
    add_string("data.tgt_lang", &d.tgt_lang, "target language code");
    add_int("data.max_src_len", &d.max_src_len, "drop training pairs with more source subwords", 1, 100000);
    add_int("data.max_tgt_len", &d.max_tgt_len, "drop training pairs with more target subwords", 1, 100000);
    add_float("data.max_len_ratio", &d.max_len_ratio, "drop pairs whose subword length ratio exceeds this (0: off)", 0,
              1000);
    add_string(
        "data.tempdir", &d.tempdir,
        "folder of the encoded training corpus, unnamed files gone when training ends (empty: $TMPDIR, else /tmp)");
  }

  // [subword]: text::SubwordOptions
  void add_subword(Recipe& r) {
    auto& s = r.subword;
    add_choice("subword.model_type", &s.model_type, "SentencePiece algorithm", {"unigram", "bpe"});
    add_int("subword.vocab_size", &s.vocab_size, "vocabulary size of each model (lowered with a warning if too large)",
            8, static_cast<int>(model::kMaxVocab));
    add_bool("subword.joint", &s.joint, "one model for both languages");
    add_float("subword.character_coverage", &s.character_coverage, "share of characters the vocabulary covers", 0.5,
              1.0);
    add_int("subword.input_sentence_size", &s.input_sentence_size,
            "sentences SentencePiece trains on, sampled from larger corpora; each costs ~2 KB of memory while "
            "it trains (0: all)",
            0, 100000000);
    keys.back().check = [p = &s.input_sentence_size, range = keys.back().check]() -> std::string {
      if (*p > 0 && *p <= 100)
        return "must be 0 (all lines) or above 100, SentencePiece's least (got " + std::to_string(*p) + ")";
      return range();
    };
    add_bool("subword.byte_fallback", &s.byte_fallback, "encode unseen characters as bytes instead of <unk>");
    add_choice("subword.normalization", &s.normalization, "SentencePiece normalisation rule",
               {"nmt_nfkc", "nfkc", "nmt_nfkc_cf", "nfkc_cf", "identity"});
    add_int("subword.seed", &s.seed, "random seed of SentencePiece training", 0);
    add_int("subword.threads", &s.threads, "threads for SentencePiece training and encoding", 1, 64);
    add_int("subword.sample_nbest", &s.sample_nbest,
            "subword regularisation: each epoch, segment training sentences by a draw from this many best "
            "segmentations (1: off; unigram only)",
            1, 64);
    add_float("subword.sample_alpha", &s.sample_alpha,
              "subword regularisation: a segmentation is drawn with probability ~ P^alpha (0: uniform)", 0, 10);
  }

  // [model]: model::ModelConfig
  void add_model(Recipe& r) {
    auto& m = r.model;  // model::ModelConfig
    add_cell("model.cell", &m.cell, "recurrent cell");
    add_int("model.emb_dim", &m.emb_dim, "embedding size", 1, model::kMaxDim);
    add_int("model.enc_hidden", &m.enc_hidden, "encoder state size per direction", 1, model::kMaxDim);
    add_int("model.enc_layers", &m.enc_layers, "encoder layers", 1, model::kMaxLayers);
    add_choice("model.bidirectional", &m.bidirectional, "bidirectional encoder layers", {"first", "all", "none"});
    add_int("model.dec_hidden", &m.dec_hidden, "decoder state size", 1, model::kMaxDim);
    add_int("model.dec_layers", &m.dec_layers, "decoder layers", 1, model::kMaxLayers);
    add_choice("model.decoder", &m.decoder,
               "decoder step: bahdanau (attention on the previous state, one RNN) or conditional (an RNN on the "
               "previous word, attention on its state, an RNN on the context; GRU, one layer)",
               {"bahdanau", "conditional"});
    add_int("model.att_dim", &m.att_dim, "additive attention size", 1, model::kMaxDim);
    add_choice("model.readout", &m.readout, "readout layer before the softmax", {"maxout", "tanh"});
    add_int("model.readout_dim", &m.readout_dim, "readout size", 1, model::kMaxDim);
    add_choice("model.dec_init", &m.dec_init,
               "decoder initial state: tanh(W h) of the backward encoder's first state, "
               "of the mean annotation, or zero",
               {"last_backward", "mean", "zero"});
    add_bool("model.tie_target_embeddings", &m.tie_target_embeddings, "share target embeddings with the output layer");
    add_bool("model.layer_norm", &m.layer_norm,
             "layer normalisation of the encoder's annotations (attention keys) and of each decoder step's RNN input");
    add_float("model.dropout_emb", &m.dropout_emb, "dropout on embeddings", 0, 0.95);
    add_float("model.dropout_rnn", &m.dropout_rnn, "dropout on recurrent layer outputs", 0, 0.95);
    add_float("model.dropout_readout", &m.dropout_readout, "dropout on the readout", 0, 0.95);
    add_float("model.dropout_ctx", &m.dropout_ctx, "dropout on the encoder's annotations (attention keys, init input)",
              0, 0.95);
    add_float("model.word_dropout", &m.word_dropout,
              "probability that a source word or decoder input word becomes <unk> in training", 0, 0.95);
  }

  // [train]: train::TrainOptions, in groups
  void add_train(Recipe& r) {
    add_train_optimiser(r.train);
    add_train_batches(r.train);
    add_train_sampling(r.train);
    add_train_memory(r.train);
    add_train_validation(r.train);
    add_train_compute(r.train);
  }

  // The optimiser, its learning-rate schedule and regularisation of the update.
  void add_train_optimiser(train::TrainOptions& t) {
    add_choice("train.optimizer", &t.optimizer, "optimiser", {"adam", "sgd"});
    add_float("train.lr", &t.lr, "learning rate", 0, 100, /*min_exclusive=*/true);
    add_choice("train.lr_schedule", &t.lr_schedule, "learning-rate schedule",
               {"constant", "plateau", "inverse_sqrt", "cosine"});
    add_int("train.warmup_steps", &t.warmup_steps, "linear warm-up steps", 0, 1000000000);
    add_int("train.decay_start", &t.decay_start,
            "lr_schedule cosine: updates at lr before the decay begins (a warm-stable-decay schedule)", 0, 1000000000);
    add_int("train.decay_steps", &t.decay_steps,
            "lr_schedule cosine: updates over which lr falls to lr_min along a half cosine (required)", 0, 1000000000);
    add_float("train.lr_min", &t.lr_min, "lr_schedule cosine: the learning rate after decay_start + decay_steps", 0,
              100);
    add_float("train.lr_decay", &t.lr_decay, "learning-rate factor on a plateau", 0, 1, true);
    add_int("train.lr_patience", &t.lr_patience, "validations without improvement before decaying", 1, 1000000);
    add_float("train.weight_decay", &t.weight_decay,
              "decoupled weight decay (AdamW): each update first shrinks every weight by lr * weight_decay", 0, 1);
    add_float("train.ema_decay", &t.ema_decay,
              "exponential moving average of the weights (0: off; e.g. 0.9999), used for validation and the saved "
              "model",
              0, 0.999999);
    add_float("train.clip_norm", &t.clip_norm, "global gradient-norm clipping (0: off)", 0, 1e6);
    add_float("train.label_smoothing", &t.label_smoothing, "label smoothing", 0, 0.99);
  }

  // What a batch is and how long training lasts.
  void add_train_batches(train::TrainOptions& t) {
    add_choice("train.batch_by", &t.batch_by, "batch size unit", {"sentences", "tokens"});
    add_int("train.batch_size", &t.batch_size, "sentences per batch (batch_by = sentences)", 1, 100000);
    add_int("train.batch_tokens", &t.batch_tokens, "target tokens per batch (batch_by = tokens)", 1, 10000000);
    add_int("train.pool_batches", &t.pool_batches, "batches sorted by length together (1: no bucketing)", 1, 100000);
    add_int("train.accumulate", &t.accumulate, "batches per update (gradient accumulation)", 1, 10000);
    add_int("train.epochs", &t.epochs,
            "passes over the training data (0: no limit; max_steps, max_minutes or patience ends training)", 0,
            1000000);
    add_int("train.max_steps", &t.max_steps, "updates (0: no limit)", 0);
    add_float("train.max_minutes", &t.max_minutes, "wall-clock limit in minutes (0: none)", 0, 1e7);
  }

  // Scheduled sampling: what the decoder is fed.
  void add_train_sampling(train::TrainOptions& t) {
    add_float("train.teacher_forcing", &t.teacher_forcing, "probability of feeding the reference word", 0, 1);
    add_choice("train.teacher_forcing_decay", &t.teacher_forcing_decay,
               "scheduled sampling: how teacher_forcing falls to teacher_forcing_min over the updates (step s, "
               "k = teacher_forcing_steps): linear over k steps, exponential with half-life k, inverse_sigmoid "
               "k / (k + exp(s / k))",
               {"none", "linear", "exponential", "inverse_sigmoid"});
    add_float("train.teacher_forcing_min", &t.teacher_forcing_min, "the ratio teacher_forcing decays towards", 0, 1);
    add_int("train.teacher_forcing_steps", &t.teacher_forcing_steps, "k of teacher_forcing_decay (updates)", 1,
            1000000000);
  }

  // Memory bounds that keep the training the same.
  void add_train_memory(train::TrainOptions& t) {
    add_int("train.split_positions", &t.split_positions,
            "a batch with more padded target positions (sentences x longest target) runs in parts into the same "
            "update: the same training, the memory of a smaller batch (0: never split)",
            0, 100000000);
  }

  // Validation, early stopping and checkpoints.
  void add_train_validation(train::TrainOptions& t) {
    add_int("train.valid_every", &t.valid_every, "validate every this many updates", 1);
    add_choice("train.valid_metric", &t.valid_metric, "metric for early stopping and the best model",
               {"bleu", "chrf", "ce"});
    add_int("train.patience", &t.patience, "validations without improvement before stopping", 1, 1000000);
    add_int("train.keep_last", &t.keep_last,
            "most recent checkpoints kept as checkpoint.<step>.gckpt (for gloss average)", 1, 1000);
  }

  // Initialisation, seed, and how the work is computed (threads, precision, replicas).
  void add_train_compute(train::TrainOptions& t) {
    add_choice("train.init", &t.init, "parameter initialisation", {"uniform", "glorot"});
    add_float("train.init_scale", &t.init_scale, "range of uniform initialisation", 0, 10, true);
    add_int("train.seed", &t.seed, "random seed (same seed and replicas: same model, bit for bit)", 0);
    add_int("train.threads", &t.threads, "compute threads", 1, 256);
    add_choice("train.parallel", &t.parallel,
               "how the threads share a batch: data = each runs its share of the sentences on its own model replica "
               "(faster on few cores); ops = all work inside every operation",
               {"data", "ops"});
    add_choice("train.precision", &t.precision,
               "arithmetic of training: f32, or bf16 for the GEMMs and recurrent layers (f32 weights, gradients, "
               "accumulation, softmax and optimizer; needs AVX512-BF16), or auto: bf16 where the CPU has it",
               {"f32", "bf16", "auto"});
    add_int("train.replicas", &t.replicas,
            "parts of every batch, each with its own random stream and gradient, added in a fixed order; fixing it "
            "makes the model independent of how many threads and processes train it (a multiple of them; 0: one "
            "per worker)",
            0, 4096);
  }

  // [decode]: decode::TranslateOptions
  void add_decode(Recipe& r) {
    auto& c = r.decode;  // decode::TranslateOptions
    add_int("decode.beam_size", &c.search.beam_size, "beam size (1: greedy)", 1, 1000);
    add_float("decode.length_penalty", &c.search.length_penalty, "score / length^alpha", 0, 10);
    add_float("decode.max_len_ratio", &c.max_len_ratio, "longest output: ratio * source length + max_len_add", 0, 100,
              true);
    add_int("decode.max_len_add", &c.max_len_add, "see max_len_ratio", 0, 10000);
    add_int("decode.stop_after", &c.search.stop_after,
            "a sentence's search stops only once this many hypotheses have finished (1: at the first; up to "
            "beam_size: searches longer, finds longer translations)",
            1, 1000);
    add_int("decode.n_best", &c.search.n_best,
            "translations per sentence (<= beam_size); above 1, gloss run also writes <test output>.nbest", 1, 1000);
    add_int("decode.batch_size", &c.batch_size, "sentences per batch", 1, 100000);
    add_choice("decode.shortlist", &c.shortlist,
               "lexical shortlist: none (the whole vocabulary) or model (the one training stores in the model file: "
               "faster, but it can cost BLEU)",
               {"none", "model"});
  }

  // [eval] and [run]: the recipe's own (gloss run), and the run folder
  void add_eval_and_run(Recipe& r) {
    add_string("eval.metrics", &r.eval.metrics,
               "metrics `gloss run` scores the test translation with (bleu, chrf, ter)");
    keys.back().check = [p = &r.eval.metrics]() -> std::string {  // checked before any training
      const std::vector<std::string> known = {"bleu", "chrf", "ter"};
      std::istringstream words(*p);
      int n = 0;
      for (std::string w; words >> w; ++n)
        if (std::find(known.begin(), known.end(), w) == known.end())
          return "unknown metric '" + w + "'; choose from: bleu, chrf, ter" + suggestion(w, known);
      return n == 0 ? "give at least one metric (bleu, chrf, ter)" : "";
    };
    add_path("run.workdir", &r.workdir, "where models and results go (default: runs/<recipe name>)");
    add_int("run.average_last", &r.run.average_last,
            "gloss run translates with the average of the last N checkpoints (0: the best model; N <= "
            "train.keep_last)",
            0, 1000);
    add_string("run.seeds", &r.run.seeds,
               "an ensemble: gloss run trains one model per seed (e.g. '1 2 3', in <workdir>/seed-<s>/) and "
               "translates with all of them (empty: one model, train.seed)");
    keys.back().check = [p = &r.run.seeds]() -> std::string {
      std::istringstream words(*p);
      std::set<long long> seen;
      for (std::string w; words >> w;) {
        if (w.find_first_not_of("0123456789") != std::string::npos || w.size() > 9)
          return "'" + w + "' is not a seed (a whole number below 10^9)";
        if (!seen.insert(std::stoll(w)).second) return "seed " + w + " appears twice";
      }
      return "";
    };
    add_string("run.grid", &r.run.grid,
               "gloss run trains one model per combination of these values (e.g. 'model.dropout_ctx=0.3,0.5 "
               "train.lr=5e-4,1e-3', in <workdir>/grid/<combination>/), tabulates their validation scores and "
               "translates the test set with the best on validation only (empty: one model)");
    keys.back().check = [this, p = &r.run.grid]() -> std::string {
      std::vector<GridPoint> points;
      try {
        points = grid_points(*p);
      } catch (const ConfigError& e) {
        return e.what();
      }
      for (const auto& [key, value] : points.empty() ? GridPoint{} : points.front()) {
        if (!find(key)) return "'" + key + "' is not a recipe key" + suggestion(key, names());
        const std::string section = key.substr(0, key.find('.'));
        if ((section != "data" && section != "subword" && section != "model" && section != "train") ||
            key.rfind("data.test_", 0) == 0)
          return "'" + key + "': only [data] (not test files), [subword], [model] and [train] keys vary in a grid";
      }
      return "";
    };
  }

  template <class T>
  void add_int(const std::string& name, T* p, const std::string& help,
               std::type_identity_t<T> min = std::numeric_limits<T>::min(),
               std::type_identity_t<T> max = std::numeric_limits<T>::max()) {
    KeySpec k{name, "int", help, std::to_string(*p), {}, {}, {}, {}, nullptr};
    const T def = *p;
    k.semantic = [p, def] { return po::value<T>(p)->default_value(def); };
    k.text = [p] { return std::to_string(*p); };
    k.check = [p, min, max]() -> std::string {
      if (*p < min) return "must be at least " + std::to_string(min) + " (got " + std::to_string(*p) + ")";
      if (*p > max) return "must be at most " + std::to_string(max) + " (got " + std::to_string(*p) + ")";
      return "";
    };
    keys.push_back(std::move(k));
  }
  template <class T>
  void add_float(const std::string& name, T* p, const std::string& help, double min = -1e300, double max = 1e300,
                 bool min_exclusive = false) {
    KeySpec k{name, "float", help, number_text(*p), {}, {}, {}, {}, nullptr};
    const T def = *p;
    k.semantic = [p, def] { return po::value<T>(p)->default_value(def, number_text(def)); };
    k.text = [p] { return number_text(*p); };
    k.check = [p, min, max, min_exclusive]() -> std::string {
      if (!(*p == *p)) return "must be a number";
      if (min_exclusive ? *p <= min : *p < min)
        return std::string("must be ") + (min_exclusive ? "> " : ">= ") + number_text(min) + " (got " +
               number_text(*p) + ")";
      if (*p > max) return "must be <= " + number_text(max) + " (got " + number_text(*p) + ")";
      return "";
    };
    keys.push_back(std::move(k));
  }
  void add_bool(const std::string& name, bool* p, const std::string& help) {
    KeySpec k{name, "bool", help, *p ? "true" : "false", {}, {}, {}, {}, nullptr};
    const bool def = *p;
    k.semantic = [p, def] { return po::value<bool>(p)->default_value(def, def ? "true" : "false"); };
    k.text = [p] { return std::string(*p ? "true" : "false"); };
    k.check = [] { return std::string(); };
    keys.push_back(std::move(k));
  }
  void add_string(const std::string& name, std::string* p, const std::string& help) {
    KeySpec k{name, "string", help, *p, {}, {}, {}, {}, nullptr};
    const std::string def = *p;
    k.semantic = [p, def] { return po::value<std::string>(p)->default_value(def); };
    k.text = [p] { return *p; };
    k.check = [] { return std::string(); };
    keys.push_back(std::move(k));
  }
  void add_path(const std::string& name, std::string* p, const std::string& help) {
    add_string(name, p, help);
    keys.back().type = "path";
    keys.back().path = p;
  }
  // The cell type, written gru or lstm.
  void add_cell(const std::string& name, nn::CellType* p, const std::string& help) {
    auto text = std::make_shared<std::string>(*p == nn::CellType::kGru ? "gru" : "lstm");
    add_choice(name, text.get(), help, {"gru", "lstm"});
    KeySpec& k = keys.back();
    k.text = [text] { return *text; };
    k.check = [text, p, check = k.check]() -> std::string {
      const std::string problem = check();
      if (problem.empty()) *p = nn::parse_cell(*text);
      return problem;
    };
  }
  void add_choice(const std::string& name, std::string* p, const std::string& help, std::vector<std::string> choices) {
    add_string(name, p, help);
    KeySpec& k = keys.back();
    k.type = "choice";
    k.choices = choices;
    k.check = [p, choices]() -> std::string {
      if (std::find(choices.begin(), choices.end(), *p) != choices.end()) return "";
      std::string list;
      for (const auto& c : choices) list += (list.empty() ? "" : ", ") + c;
      return "'" + *p + "' is not one of: " + list + suggestion(*p, choices);
    };
  }
};

struct Entry {
  std::string file;
  int line = 0;
  std::string section, key, value;
};

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

std::string relative_to(const std::string& file, const std::string& value) {
  if (value.empty() || fs::path(value).is_absolute()) return value;
  return (fs::path(file).parent_path() / value).lexically_normal().string();
}

// A model file, a checkpoint or another binary file where a recipe belongs is one line that
// says so, not an error about its UTF-8 or syntax. Gzip is left to LineReader, which inflates it.
// Only a regular file is looked at: what a pipe gives is gone once read.
void check_is_text(const std::string& file) {
  std::error_code ec;
  if (!fs::is_regular_file(file, ec)) return;
  char head[4096];
  std::ifstream in(file, std::ios::binary);
  in.read(head, sizeof head);
  const auto n = static_cast<std::size_t>(in.gcount());
  const std::string kind = model::gloss_kind_of_head(std::string_view(head, n));
  if (kind == "model file")
    throw InputError(file, 0,
                     "is a Gloss model file, not a recipe; translate with it (gloss translate -m " + file +
                         "), or give the recipe (.ini) it was trained with");
  if (kind == "checkpoint")
    throw InputError(file, 0,
                     "is a Gloss training checkpoint, not a recipe; give the recipe (.ini) of its run, and the "
                     "same command resumes it");
  if (n >= 2 && head[0] == '\x1f' && head[1] == '\x8b') return;
  if (const char* nul = static_cast<const char*>(std::memchr(head, 0, n)))
    throw InputError(file, 1 + static_cast<int>(std::count(static_cast<const char*>(head), nul, '\n')),
                     "has a NUL byte: a binary file, not a recipe; give a recipe (.ini): text lines of 'key = "
                     "value' under [sections]");
}

// The path that tells whether an include comes back to a file already being read.
std::string canonical_path(const std::string& file) {
  std::error_code ec;  // /dev/fd/63 of <(...) links to "pipe:[...]", which does not resolve
  const fs::path canonical = fs::weakly_canonical(file, ec);
  return ec ? fs::absolute(file).lexically_normal().string() : canonical.string();
}

// The section a header line "[name]" opens; InputError for a malformed or unknown one.
std::string section_name(const std::string& file, int line, const std::string& text) {
  if (text.back() != ']') throw InputError(file, line, "section header needs a closing ']': " + text);
  std::string section = trim(text.substr(1, text.size() - 2));
  if (std::find(kSections.begin(), kSections.end(), section) == kSections.end())
    throw InputError(file, line,
                     "unknown section [" + section + "]" + suggestion(section, kSections) +
                         " (sections: data, subword, model, train, decode, eval, run)");
  return section;
}

// Reads one recipe file and, after it, the files it includes (later includes first):
// entries come in priority order, highest first.
void scan(const std::string& file, std::vector<Entry>& out, std::vector<std::string>& stack) {
  const std::string canonical = canonical_path(file);
  if (std::find(stack.begin(), stack.end(), canonical) != stack.end())
    throw InputError(file, 0, "includes itself (through " + stack.back() + "); remove the include cycle");
  stack.push_back(canonical);
  check_is_text(file);
  LineReader reader(file);
  std::string raw, section;
  std::vector<Entry> local;
  std::vector<std::pair<std::string, int>> includes;
  std::map<std::string, int> seen;
  while (reader.next(raw)) {
    const int line = static_cast<int>(reader.line_number());
    std::string text = trim(raw);
    if (text.empty() || text[0] == '#' || text[0] == ';') continue;
    if (text[0] == '[') {
      section = section_name(file, line, text);
      continue;
    }
    const auto eq = text.find('=');
    if (eq == std::string::npos) throw InputError(file, line, "expected 'key = value', got: " + text);
    std::string key = trim(text.substr(0, eq));
    std::string value = text.substr(eq + 1);
    if (const auto hash = value.find(" #"); hash != std::string::npos) value.resize(hash);
    value = trim(value);
    if (section.empty()) {
      if (key != "include")
        throw InputError(file, line, "'" + key + "' is outside any section; put it under [data], [train], ...");
      includes.emplace_back(relative_to(file, value), line);
      continue;
    }
    const std::string full = section + "." + key;
    if (auto it = seen.find(full); it != seen.end())
      throw InputError(
          file, line,
          "[" + section + "] " + key + " is set twice (first at line " + std::to_string(it->second) + "); keep one");
    seen[full] = line;
    local.push_back({file, line, section, key, value});
  }
  out.insert(out.end(), local.begin(), local.end());
  for (auto it = includes.rbegin(); it != includes.rend(); ++it) {
    if (!fs::exists(it->first)) throw InputError(file, it->second, "include: no such file '" + it->first + "'");
    scan(it->first, out, stack);
  }
  stack.pop_back();
}

}  // namespace

std::vector<GridPoint> grid_points(const std::string& grid) {
  std::istringstream items(grid);
  std::vector<std::pair<std::string, std::vector<std::string>>> axes;
  std::size_t count = 1;
  for (std::string item; items >> item;) {
    const auto eq = item.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == item.size())
      throw ConfigError("'" + item + "' is not KEY=VALUE,VALUE,... (e.g. model.dropout_ctx=0.3,0.5)");
    const std::string key = item.substr(0, eq);
    for (const auto& axis : axes)
      if (axis.first == key) throw ConfigError("'" + key + "' appears twice; give all its values in one item");
    std::vector<std::string> values;
    std::istringstream list(item.substr(eq + 1));
    for (std::string v; std::getline(list, v, ',');) {
      if (v.empty()) throw ConfigError("'" + item + "' has an empty value");
      if (std::find(values.begin(), values.end(), v) != values.end())
        throw ConfigError("'" + item + "' lists " + v + " twice");
      values.push_back(v);
    }
    if (item.back() == ',') throw ConfigError("'" + item + "' has an empty value");
    count *= values.size();
    if (count > kMaxGridPoints)
      throw ConfigError("more than " + std::to_string(kMaxGridPoints) + " combinations; split the grid");
    axes.emplace_back(key, std::move(values));
  }
  if (axes.empty()) return {};
  std::vector<GridPoint> points(1);
  for (const auto& [key, values] : axes) {
    std::vector<GridPoint> next;
    for (const auto& point : points)
      for (const auto& v : values) {
        next.push_back(point);
        next.back().emplace_back(key, v);
      }
    points = std::move(next);
  }
  return points;
}

std::string grid_point_name(const GridPoint& point) {
  std::string name;
  for (const auto& [key, value] : point) name += (name.empty() ? "" : ",") + key + "=" + value;
  std::replace(name.begin(), name.end(), '/', '_');
  // Folder names are at most 255 bytes: a long one keeps its start and a fingerprint of all.
  if (name.size() > kMaxGridNameBytes) name = name.substr(0, kMaxGridNameBytes - 17) + "-" + fingerprint(name);
  return name;
}

namespace {

// Keys that must agree with each other; `where` names a key's origin for the message.
void check_combinations(const Recipe& r, const std::function<std::string(const std::string&)>& where) {
  if (r.model.tie_target_embeddings && r.model.readout_dim != r.model.emb_dim)
    throw ConfigError(where("model.tie_target_embeddings") + " needs model.readout_dim == model.emb_dim (" +
                      std::to_string(r.model.readout_dim) + " != " + std::to_string(r.model.emb_dim) + ")");
  if (!r.run.grid.empty() && !r.run.seeds.empty())
    throw ConfigError(where("run.grid") + " and run.seeds cannot be combined: grid the seed (train.seed=1,2) instead");
  if (!r.run.grid.empty() && r.data.valid_src.empty())
    throw ConfigError(where("run.grid") + " needs validation data (data.valid_src, data.valid_tgt) to choose by");
  if (r.run.average_last > r.train.keep_last)
    throw ConfigError(where("run.average_last") + " needs train.keep_last >= run.average_last (" +
                      std::to_string(r.run.average_last) + " > " + std::to_string(r.train.keep_last) +
                      "): only the last train.keep_last checkpoints are kept");
  if (r.subword.sample_nbest > 1 && r.subword.model_type != "unigram")
    throw ConfigError(
        where("subword.sample_nbest") +
        " needs subword.model_type = unigram (SentencePiece samples segmentations of unigram models only)");
  if (r.train.lr_schedule == "cosine" && r.train.decay_steps == 0)
    throw ConfigError(where("train.lr_schedule") + " cosine needs the updates to decay over: set train.decay_steps");
  if (r.train.lr_schedule == "cosine" && r.train.lr_min > r.train.lr)
    throw ConfigError(where("train.lr_min") + " must not exceed train.lr (" + number_text(r.train.lr_min) + " > " +
                      number_text(r.train.lr) + ")");
  const int beam = r.decode.search.beam_size;
  for (const auto& [key, value] : {std::pair<const char*, int>{"decode.stop_after", r.decode.search.stop_after},
                                   std::pair<const char*, int>{"decode.n_best", r.decode.search.n_best}})
    if (value > beam)
      throw ConfigError(where(key) + " must not exceed decode.beam_size (" + std::to_string(value) + " > " +
                        std::to_string(beam) + ")");
}

}  // namespace

std::string Origin::describe() const {
  switch (kind) {
    case Kind::kDefault:
      return "default";
    case Kind::kCommandLine:
      return "command line";
    case Kind::kFile:
      return file + ":" + std::to_string(line);
  }
  return "";
}

namespace {

using Origins = std::map<std::string, Origin>;

// 1. The command line (highest priority) into vm; its keys' origins.
void store_command_line(const std::vector<std::string>& overrides, const po::options_description& desc,
                        const Schema& schema, po::variables_map& vm, Origins& origins) {
  try {
    const auto parsed = po::command_line_parser(overrides)
                            .options(desc)
                            .style(po::command_line_style::unix_style & ~po::command_line_style::allow_guessing)
                            .run();
    po::store(parsed, vm);
    for (const auto& o : parsed.options) origins[o.string_key] = {Origin::Kind::kCommandLine, "", 0};
  } catch (const po::unknown_option& e) {
    std::string name = e.get_option_name();
    std::string bare = name.rfind("--", 0) == 0 ? name.substr(2) : name;
    const std::string why = retired(bare);
    throw ConfigError("unknown option " + name +
                      (why.empty() ? suggestion(bare, schema.names()) + " (see --help for recipe keys)"
                                   : why + ", so leave the option out"));
  } catch (const po::error& e) {
    throw ConfigError(e.what());
  }
}

// 2. The recipe file and what it includes (the recipe before its includes), each key not set
// with higher priority; InputError naming the file and line for an unknown key or bad value.
void store_recipe_files(const std::string& path, const po::options_description& desc, const Schema& schema,
                        po::variables_map& vm, Origins& origins) {
  std::vector<Entry> entries;
  if (!path.empty()) {
    if (!fs::exists(path)) throw InputError(path, 0, "no such recipe file");
    std::vector<std::string> stack;
    scan(path, entries, stack);
  }
  for (const auto& e : entries) {
    const std::string name = e.section + "." + e.key;
    const KeySpec* spec = schema.find(name);
    if (!spec) {
      std::vector<std::string> in_section;
      for (const auto& k : schema.keys)
        if (k.name.rfind(e.section + ".", 0) == 0) in_section.push_back(k.name.substr(e.section.size() + 1));
      const std::string why = retired(name);
      throw InputError(e.file, e.line,
                       "unknown key '" + e.key + "' in [" + e.section + "]" +
                           (why.empty() ? near_key(e.key, in_section, e.section) : why + ", so delete the line"));
    }
    if (origins.count(name)) continue;  // set with higher priority
    const std::string value = spec->path ? relative_to(e.file, e.value) : e.value;
    po::parsed_options one(&desc);
    one.options.emplace_back(name, std::vector<std::string>{value});
    try {
      po::store(one, vm);
    } catch (const po::error&) {
      throw InputError(e.file, e.line,
                       "[" + e.section + "] " + e.key + ": '" + e.value + "' is not a valid " + spec->type + " value");
    }
    origins[name] = {Origin::Kind::kFile, e.file, e.line};
  }
}

// 3. Every value, the required keys and the combinations; errors name where the value came from.
void validate_values(const Recipe& r, const Schema& schema, const std::string& path,
                     const std::function<std::string(const std::string&)>& where) {
  for (const auto& k : schema.keys) {
    const std::string problem = k.check();
    if (!problem.empty()) throw ConfigError(where(k.name) + " " + problem);
  }
  auto require = [&](const std::string& name, const std::string& value, const std::string& why) {
    if (value.empty())
      throw ConfigError((path.empty() ? std::string("") : path + ": ") + name + " is required: " + why);
  };
  require("data.train_src", r.data.train_src, "the training source text ([data] train_src = FILE)");
  require("data.train_tgt", r.data.train_tgt, "the training target text ([data] train_tgt = FILE)");
  if (r.data.valid_src.empty() != r.data.valid_tgt.empty())
    throw ConfigError(where(r.data.valid_src.empty() ? "data.valid_tgt" : "data.valid_src") +
                      " needs its counterpart: set both valid_src and valid_tgt, or neither");
  if (r.data.test_src.empty() != r.data.test_tgt.empty())
    throw ConfigError(where(r.data.test_src.empty() ? "data.test_tgt" : "data.test_src") +
                      " needs its counterpart: set both test_src and test_tgt, or neither");
  check_combinations(r, where);
}

// 4. Every file key names a regular file: data files are read more than once (subword
// training, checks, encoding, fingerprints), so not folders or pipes.
void check_data_files(const Schema& schema, const Origins& origins) {
  for (const auto& k : schema.keys) {
    if (!k.path || k.name == "run.workdir" || k.path->empty()) continue;
    std::error_code ec;
    const auto status = fs::status(*k.path, ec);
    std::string problem;
    if (!fs::exists(status))
      problem = "no such file";
    else if (fs::is_directory(status))
      problem = "is a folder, not a file:";
    else if (!fs::is_regular_file(status))
      problem = "is a pipe or device, which can be read only once; save it to a file:";
    if (problem.empty()) continue;
    const auto it = origins.find(k.name);
    if (it != origins.end() && it->second.kind == Origin::Kind::kFile)
      throw InputError(it->second.file, static_cast<std::size_t>(it->second.line),
                       k.name + ": " + problem + " '" + *k.path + "' (paths are relative to the recipe file)");
    throw ConfigError("--" + k.name + ": " + problem + " '" + *k.path + "'");
  }
}

// 5. The run folder can be made: neither it nor a folder above it is an existing file.
void check_workdir(const std::string& workdir, const std::function<std::string(const std::string&)>& where) {
  std::error_code ec;
  for (fs::path p = workdir; !p.empty(); p = p.parent_path()) {
    const auto status = fs::status(p, ec);
    if (!fs::exists(status)) {
      if (p == p.parent_path()) break;
      continue;
    }
    if (!fs::is_directory(status))
      throw ConfigError(where("run.workdir") + ": '" + p.string() +
                        "' is a file, not a folder; choose another run.workdir");
    break;
  }
}

}  // namespace

LoadedRecipe load_recipe(const std::string& path, const std::vector<std::string>& overrides, bool check_files) {
  LoadedRecipe out;
  Recipe& r = out.recipe;
  r.path = path;
  Schema schema(r);
  po::options_description desc;
  for (const auto& k : schema.keys) desc.add_options()(k.name.c_str(), k.semantic(), k.help.c_str());
  po::variables_map vm;
  store_command_line(overrides, desc, schema, vm, out.origins);
  store_recipe_files(path, desc, schema, vm, out.origins);
  try {
    po::notify(vm);
  } catch (const po::error& e) {
    throw ConfigError(e.what());
  }
  auto where = [&](const std::string& name) -> std::string {
    const auto it = out.origins.find(name);
    if (it == out.origins.end()) return name + " (default)";
    if (it->second.kind == Origin::Kind::kCommandLine) return "--" + name;
    return it->second.file + ":" + std::to_string(it->second.line) + ": " + name;
  };
  validate_values(r, schema, path, where);
  if (check_files) check_data_files(schema, out.origins);
  if (r.workdir.empty()) {
    const std::string stem = path.empty() ? "gloss" : fs::path(path).stem().string();
    r.workdir = (fs::path("runs") / stem).string();
  }
  if (check_files) check_workdir(r.workdir, where);
  for (const auto& k : schema.keys) {
    out.keys.push_back(k.name);
    out.text[k.name] = k.text();
  }
  r.recipe_text = show(out);
  return out;
}

std::string show(const LoadedRecipe& loaded) {
  std::ostringstream out;
  std::string section;
  std::size_t width = 0;
  for (const auto& name : loaded.keys)
    width = std::max(width, name.size() - name.find('.') - 1 + 3 + loaded.text.at(name).size());
  width = std::min<std::size_t>(width, 60);
  for (const auto& name : loaded.keys) {
    const auto dot = name.find('.');
    const std::string sec = name.substr(0, dot), key = name.substr(dot + 1);
    if (sec != section) {
      out << (section.empty() ? "" : "\n") << "[" << sec << "]\n";
      section = sec;
    }
    const auto it = loaded.origins.find(name);
    const std::string origin = it == loaded.origins.end() ? "default" : it->second.describe();
    std::string line = key + " = " + loaded.text.at(name);
    if (line.size() < width) line += std::string(width - line.size(), ' ');
    out << line << "  # " << origin << "\n";
  }
  return out.str();
}

std::string keys_help() {
  Recipe r;
  Schema schema(r);
  std::ostringstream out;
  out << "Recipe keys (in a recipe: [section] key = value; on the command line: --section.key value):\n";
  for (const auto& k : schema.keys) {
    std::string head = "  --" + k.name + " " + (k.choices.empty() ? k.type : [&] {
                         std::string c;
                         for (const auto& x : k.choices) c += (c.empty() ? "" : "|") + x;
                         return c;
                       }());
    if (head.size() < 48) head += std::string(48 - head.size(), ' ');
    out << head << " " << k.help << (k.default_text.empty() ? "" : " [" + k.default_text + "]") << "\n";
  }
  return out.str();
}

}  // namespace gloss::recipe
