// `gloss summary MODEL|RECIPE`: the model as a Keras-style table (model/summary.h).
#include <filesystem>
#include <optional>
#include <ostream>

#include "gloss/cli/commands.h"
#include "gloss/cli/options.h"
#include "gloss/model/model_file.h"
#include "gloss/model/summary.h"
#include "gloss/recipe/recipe.h"
#include "gloss/util/error.h"
#include "gloss/util/format.h"

namespace po = boost::program_options;

namespace gloss::cli {
namespace {

// 10221376 -> "10,221,376".
std::string grouped(std::int64_t v) {
  std::string digits = std::to_string(v), out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

std::string pad(const std::string& s, std::size_t width, bool right = false) {
  if (s.size() >= width) return s + " ";
  const std::string fill(width - s.size(), ' ');
  return right ? fill + s : s + fill;
}

std::string megabytes(std::int64_t bytes) { return fixed(static_cast<double>(bytes) / (1 << 20), 1) + " MB"; }

struct SummaryOptions {
  // Subwords per sentence: Multi30k's training set with quick-en-de's 8k vocabularies has 14.1
  // (en) and 15.6 (de, with EOS).
  double src_len = 14, tgt_len = 16;
  int batch_size = 0;  // 0: the recipe's (a model file: 64)
};

void write_table(const model::ModelSummary& s, const model::Lengths& lengths, std::ostream& out) {
  const std::string rule(110, '_'), heavy(110, '=');
  out << rule << "\n"
      << pad(" Layer (type)", 52) << pad("Output shape", 24) << pad("Param #", 12, true)
      << pad("MFLOP/token (train)", 22, true) << "\n"
      << heavy << "\n";
  for (const auto& l : s.layers) {
    const double f = 3 * (l.flops_tgt + lengths.src_per_tgt * l.flops_src + l.flops_sentence / lengths.tgt_len);
    out << pad(" " + l.name + " (" + l.kind + ")", 52) << pad(l.output, 24) << pad(grouped(l.params), 12, true)
        << pad(fixed(f / 1e6, 2), 22, true) << "\n";
  }
  out << heavy << "\n";
}

// What gloss summary describes: a recipe's model (with subword.vocab_size for both vocabularies
// and the recipe's training options) or a model file's (its own tensors; training defaults).
struct Summarised {
  bool is_recipe = false;
  model::ModelConfig config;
  train::TrainOptions training;
  nn::ParameterSet params;  // owns the model's parameter tensors
};

void load_summarised(const std::string& path, const std::vector<std::string>& overrides, Summarised& out) {
  out.is_recipe = std::filesystem::path(path).extension() == ".ini";
  if (out.is_recipe) {
    const auto loaded = recipe::load_recipe(path, overrides, false);
    out.config = loaded.recipe.model;
    out.config.src_vocab = out.config.tgt_vocab = loaded.recipe.subword.vocab_size;
    out.training = loaded.recipe.train;
    model::Seq2Seq built(out.config, out.params);
    return;
  }
  if (!overrides.empty()) throw ConfigError("recipe keys (" + overrides[0] + ") need a recipe, not a model file");
  std::optional<model::Seq2Seq> built;
  model::load_any(path, [&](const model::ModelFile& file) -> nn::ParameterSet& {
    out.config = file.config;
    built.emplace(out.config, out.params);
    return out.params;  // the file's own tensors (their sizes checked against the configuration)
  });
}

// The "Training memory at batch N" line: model::training_memory for these training options.
void write_memory(const model::ModelConfig& config, std::int64_t total_params, const train::TrainOptions& training,
                  const SummaryOptions& o, std::ostream& out) {
  model::TrainingShape shape;
  shape.batch_size = o.batch_size;
  shape.src_len = o.src_len;
  shape.tgt_len = o.tgt_len;
  shape.split_positions = training.split_positions;
  shape.workers = training.parallel == "data" ? training.threads : 1;
  shape.replicas = training.replicas;
  shape.adam = training.optimizer == "adam";
  shape.ema = training.ema_decay > 0;
  const model::TrainingMemory m = model::training_memory(config, total_params, shape);
  out << "Training memory at batch " << o.batch_size << " (estimate, " << shape.workers
      << " worker(s)): " << megabytes(m.total()) << " = weights " << megabytes(m.weights) << " + gradients "
      << megabytes(m.gradients) << " + optimizer " << megabytes(m.optimizer) << " + activations "
      << megabytes(m.activations) << "\n";
}

// args -> this command's options and input, and the recipe keys (--section.key value pairs)
// in `overrides`. Returns false after printing --help.
bool parse_summary_args(const std::vector<std::string>& args, std::string& path, std::vector<std::string>& overrides,
                        SummaryOptions& o, std::ostream& out) {
  po::options_description desc(
      "Usage: gloss summary MODEL|RECIPE.ini [--src-len N] [--tgt-len N] [--batch-size N] [--section.key value ...]\n"
      "The model's layers as Keras' model.summary() lists them: output shapes as (batch, time_steps,\n"
      "features), parameters (those of the model file, or of the model the recipe builds, with\n"
      "subword.vocab_size for both vocabularies), training MFLOP per target token as bench train counts\n"
      "them (GEMMs and RNN primitives, forward and backward), and an estimate of training memory");
  desc.add_options()("help,h", "print this help")("src-len", po::value(&o.src_len)->default_value(o.src_len),
                                                  "source subwords per sentence, for FLOPs and memory")(
      "tgt-len", po::value(&o.tgt_len)->default_value(o.tgt_len), "target subwords per sentence (with EOS)")(
      "batch-size", po::value(&o.batch_size)->default_value(0), "sentences per batch (0: the recipe's; a model: 64)");
  po::options_description hidden;
  hidden.add_options()("input", po::value(&path)->required());
  po::options_description all;
  all.add(desc).add(hidden);
  if (wants_help(args)) {
    out << desc;
    return false;
  }
  std::vector<std::string> own;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i].find('.') != std::string::npos && args[i].starts_with("--") && i + 1 < args.size()) {
      overrides.push_back(args[i]);
      overrides.push_back(args[++i]);
    } else {
      own.push_back(args[i]);
    }
  }
  po::positional_options_description pos;
  pos.add("input", 1);
  parse_options(own, all, "gloss summary", pos);
  if (!(o.src_len >= 1 && o.src_len <= 1e4 && o.tgt_len >= 1 && o.tgt_len <= 1e4))
    throw ConfigError("--src-len and --tgt-len must be in 1..10000 (see gloss summary --help)");
  if (o.batch_size < 0 || o.batch_size > 1000000)
    throw ConfigError("--batch-size must be in 0..1000000 (see gloss summary --help)");
  return true;
}

// The totals under the table: parameters and MFLOP per target token.
void write_totals(const model::ModelSummary& s, const model::Lengths& lengths, const SummaryOptions& o,
                  std::ostream& out) {
  const double forward = s.forward_per_target_token(lengths);
  out << "Total params: " << grouped(s.total_params) << " (" << megabytes(4 * s.total_params) << " in fp32)\n"
      << "MFLOP per target token: training " << fixed(3 * forward / 1e6, 2) << ", translation "
      << fixed(forward / 1e6, 2) << " per hypothesis (sentences of " << fixed_g(o.src_len) << " source and "
      << fixed_g(o.tgt_len) << " target subwords, no padding)\n";
}

}  // namespace

int summary_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& /*log*/) {
  std::string path;
  std::vector<std::string> overrides;
  SummaryOptions o;
  if (!parse_summary_args(args, path, overrides, o, out)) return 0;
  Summarised m;
  load_summarised(path, overrides, m);
  const model::ModelConfig& config = m.config;
  if (o.batch_size == 0) o.batch_size = m.is_recipe ? m.training.batch_size : 64;

  const model::ModelSummary s = model::summarize(config, m.params);
  const model::Lengths lengths{o.src_len / o.tgt_len, o.tgt_len};
  out << "Model: " << (config.cell == nn::CellType::kGru ? "gru" : "lstm") << " encoder-decoder with attention, "
      << config.src_vocab << " source and " << config.tgt_vocab << " target subwords (" << path << ")\n";
  write_table(s, lengths, out);
  write_totals(s, lengths, o, out);
  write_memory(config, s.total_params, m.training, o, out);
  return 0;
}

}  // namespace gloss::cli
