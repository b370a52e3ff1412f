#include "gloss/cli/commands.h"

#include <boost/program_options.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <optional>
#include <sstream>

#include "gloss/cli/options.h"
#include "gloss/decode/translator.h"
#include "gloss/dist/comm.h"
#include "gloss/model/model_file.h"
#include "gloss/recipe/recipe.h"
#include "gloss/report/plot.h"
#include "gloss/run/run.h"
#include "gloss/tensor/compute.h"
#include "gloss/text/batcher.h"
#include "gloss/text/corpus.h"
#include "gloss/text/subword.h"
#include "gloss/train/metrics.h"
#include "gloss/train/trainer.h"
#include "gloss/translate/translate_file.h"
#include "gloss/util/atomic_file.h"
#include "gloss/util/error.h"
#include "gloss/util/format.h"
#include "gloss/util/line_reader.h"

namespace po = boost::program_options;
namespace fs = std::filesystem;

namespace gloss::cli {
namespace {

// RECIPE [--section.key value ...]: the recipe is the first argument not starting with '-'.
recipe::LoadedRecipe load(const std::vector<std::string>& args, bool check_files = true) {
  std::string path;
  std::vector<std::string> overrides;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (path.empty() && overrides.empty() && !args[i].empty() && args[i][0] != '-') {
      path = args[i];
      continue;
    }
    overrides.push_back(args[i]);
  }
  return recipe::load_recipe(path, overrides, check_files);
}

double since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

std::string spm_dir(const recipe::Recipe& r) { return (fs::path(r.workdir) / "spm").string(); }

// Subword models for the recipe, after checking the corpora pair up (before any training).
text::SubwordModelPaths subword_models(const recipe::Recipe& r, std::ostream& log) {
  text::check_parallel(r.data.train_src, r.data.train_tgt);
  if (!r.data.valid_src.empty()) text::check_parallel(r.data.valid_src, r.data.valid_tgt);
  if (!r.data.test_src.empty()) text::check_parallel(r.data.test_src, r.data.test_tgt);
  return text::prepare_subword_models(r.data, r.subword, spm_dir(r), log);
}

// Streams `input` line by line through `convert` into `output` ("-" = standard streams; a
// name ending in .gz is written gzip-compressed); a file output is written completely or not
// at all. The lines so far are flushed whenever the input would make it wait.
template <class F>
void stream_lines(const std::string& input, const std::string& output, std::ostream& out, F&& convert) {
  LineReader reader(input);
  std::string line;
  std::optional<AtomicFile> file;
  if (output != "-") file.emplace(output, /*gzip_by_name=*/true);
  std::ostream& sink = file ? file->stream() : out;
  for (;;) {
    if (!reader.ready()) sink.flush();  // a pipe's writer may be waiting for these lines
    if (!reader.next(line)) break;
    sink << convert(line, reader) << '\n';
  }
  if (file) file->commit();
}

// A line as space-separated pieces (or ids).
std::string encode_line(const text::SubwordModel& sp, const std::string& line, bool ids) {
  std::string result;
  auto append = [&](const std::string& field) {
    if (!result.empty()) result += ' ';
    result += field;
  };
  if (ids) {
    for (int id : sp.encode(line)) append(std::to_string(id));
  } else {
    for (const auto& p : sp.encode_pieces(line)) append(p);
  }
  return result;
}

// Space-separated pieces (or ids) joined back into text. An id outside the vocabulary of
// `model` is an InputError at the reader's line.
std::string decode_line(const text::SubwordModel& sp, const std::string& line, bool ids, const LineReader& reader,
                        const std::string& model) {
  std::istringstream fields(line);
  if (ids) {
    std::vector<int> v;
    std::string tok;
    while (fields >> tok) {
      char* end = nullptr;
      const long id = std::strtol(tok.c_str(), &end, 10);
      if (*end != '\0' || id < 0 || id >= sp.vocab_size())
        throw InputError(
            reader.path(), reader.line_number(),
            "'" + tok + "' is not an id of " + model + " (0.." + std::to_string(sp.vocab_size() - 1) + ")");
      v.push_back(static_cast<int>(id));
    }
    return sp.decode(v);
  }
  std::vector<std::string> pieces;
  std::string p;
  while (fields >> p) pieces.push_back(p);
  return sp.decode_pieces(pieces);
}

int spm_code(const std::vector<std::string>& args, bool encode, std::ostream& out) {
  std::string model, input, output;
  bool ids = false;
  po::options_description desc(
      std::string("Usage: gloss spm ") + (encode ? "encode" : "decode") + " -m MODEL [-i IN] [-o OUT]\n" +
      (encode ? "Splits each line into subword pieces (or ids)" : "Joins pieces (or ids) back into text") +
      "; one output line per input line");
  desc.add_options()("help,h", "print this help")("model,m", po::value(&model)->required(), "SentencePiece model")(
      "input,i", po::value(&input)->default_value("-"), "input file (plain or .gz; - = standard input)")(
      "output,o", po::value(&output)->default_value("-"),
      "output file (- = standard output; a name ending in .gz is written gzip-compressed)")(
      "ids", po::bool_switch(&ids), encode ? "write ids instead of pieces" : "read ids instead of pieces");
  if (wants_help(args)) {
    out << desc;
    return 0;
  }
  parse_options(args, desc, std::string("gloss spm ") + (encode ? "encode" : "decode"));
  const std::string kind = model::gloss_file_kind(model);
  if (!kind.empty())
    throw InputError(model, 0,
                     "is a Gloss " + kind +
                         ", not a SentencePiece model; give one of its run's subword models, "
                         "RUN_FOLDER/spm/<lang>-<hash>.model (gloss spm train RECIPE prints their paths)");
  const auto sp = text::SubwordModel::load(model);
  stream_lines(input, output, out, [&](const std::string& line, const LineReader& reader) {
    return encode ? encode_line(sp, line, ids) : decode_line(sp, line, ids, reader, model);
  });
  return 0;
}

const char* kSpmUsage =
    "Usage: gloss spm train [RECIPE] [--section.key value ...]\n"
    "       gloss spm encode -m MODEL [-i IN] [-o OUT] [--ids]\n"
    "       gloss spm decode -m MODEL [-i IN] [-o OUT] [--ids]\n"
    "train: trains the SentencePiece model(s) of the recipe's [subword] section on its training\n"
    "text, inside Gloss, under <run.workdir>/spm/, or reuses them when corpus and options are\n"
    "unchanged; prints the source and target model paths.\n";

}  // namespace

int recipe_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& log) {
  const char* usage =
      "Usage: gloss recipe show RECIPE [--section.key value ...]   print every key, its value and origin\n"
      "       gloss recipe check RECIPE [--section.key value ...]  validate the recipe and its data files\n";
  if (args.empty() || wants_help(args)) {
    (args.empty() ? log : out) << usage << "\n" << recipe::keys_help();
    return args.empty() ? 2 : 0;
  }
  const std::string action = args[0];
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  if (action == "show") {
    out << recipe::show(load(rest, /*check_files=*/false));
    return 0;
  }
  if (action == "check") {
    const auto loaded = load(rest);
    std::size_t from_file = 0, from_cli = 0;
    for (const auto& [k, o] : loaded.origins) {
      from_file += o.kind == recipe::Origin::Kind::kFile;
      from_cli += o.kind == recipe::Origin::Kind::kCommandLine;
    }
    out << "ok: " << (loaded.recipe.path.empty() ? "command line" : loaded.recipe.path) << ": " << loaded.keys.size()
        << " keys (" << from_file << " from recipe files, " << from_cli
        << " from the command line), data files found\n";
    return 0;
  }
  throw ConfigError("gloss recipe: unknown action '" + action + "'; choose show or check");
}

int spm_command(const std::vector<std::string>& args, std::istream&, std::ostream& out, std::ostream& log) {
  if (args.empty()) {
    log << kSpmUsage;
    return 2;
  }
  const std::string action = args[0];
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  if (action == "--help" || action == "-h") {
    out << kSpmUsage << "\n" << recipe::keys_help();
    return 0;
  }
  if (action == "encode" || action == "decode") return spm_code(rest, action == "encode", out);
  if (action == "train") {
    if (wants_help(rest)) {
      out << kSpmUsage << "\n" << recipe::keys_help();
      return 0;
    }
    const auto loaded = load(rest);
    const auto& r = loaded.recipe;
    const auto paths = subword_models(r, log);
    out << paths.src << "\n";
    if (paths.tgt != paths.src) out << paths.tgt << "\n";
    return 0;
  }
  throw ConfigError("gloss spm: unknown action '" + action + "'; choose train, encode or decode");
}

int train_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& log) {
  if (args.empty() || wants_help(args)) {
    (args.empty() ? log : out)
        << "Usage: gloss train RECIPE [--section.key value ...]\n"
           "Trains the recipe's model (subword models, data, model, validation, checkpoints) in\n"
           "<run.workdir>; rerunning after an interruption resumes. Progress goes to stderr; the\n"
           "last line on stdout is the path of the best model.\n\n"
        << recipe::keys_help();
    return args.empty() ? 2 : 0;
  }
  const auto outcome = train::train(load(args).recipe, log);
  if (dist::job().rank() == 0) out << outcome.best_model << "\n";  // under mpirun: once
  return 0;
}

int run_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& log) {
  if (args.empty() || wants_help(args)) {
    (args.empty() ? log : out)
        << "Usage: gloss run RECIPE [--section.key value ...]\n"
           "Runs every stage of the recipe in <run.workdir>: SentencePiece models, training (resumed\n"
           "if interrupted), translation of the test set with the [decode] keys, and evaluation\n"
           "(eval.metrics). Stages whose inputs and keys are unchanged are reused, so a second run\n"
           "takes seconds. Prints a report (also report.md, report.json and curves.svg in the run\n"
           "folder). Progress goes to stderr.\n\n"
        << recipe::keys_help();
    return args.empty() ? 2 : 0;
  }
  const auto result = run::run_recipe(load(args), log);
  out << result.markdown;  // under mpirun: rank 0's (the others' is empty)
  return 0;
}

int plot_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& log) {
  std::string input, output, title;
  po::options_description desc(
      "Usage: gloss plot METRICS.jsonl [-o OUT.svg] [--title TEXT]\n"
      "Draws the training curves of a run (training loss and validation cross-entropy; validation\n"
      "BLEU and chrF, against the update step) from the metrics.jsonl gloss train writes, as SVG");
  desc.add_options()("help,h", "print this help")("metrics", po::value(&input)->required(), "metrics.jsonl of a run")(
      "output,o", po::value(&output)->default_value(""), "SVG file (default: curves.svg beside METRICS)")(
      "title", po::value(&title)->default_value("Gloss training curves"), "title above the plots");
  po::positional_options_description pos;
  pos.add("metrics", 1);
  if (wants_help(args)) {
    out << desc;
    return 0;
  }
  parse_options(args, desc, "gloss plot", pos);
  if (output.empty()) output = (fs::path(input).parent_path() / "curves.svg").string();
  if (!output.ends_with(".svg"))
    throw ConfigError("gloss plot -o " + output + ": the curves are drawn as SVG; give a file name ending in .svg");
  const auto rows = train::read_metrics(input);
  if (rows.empty()) throw InputError(input, 0, "has no validation lines yet; plot it after the first validation");
  atomic_write_file(output, report::training_curves_svg(rows, title));
  log << "plot: " << counted(static_cast<long long>(rows.size()), "validation") << ", steps " << rows.front().step
      << " to " << rows.back().step << std::endl;
  out << output << "\n";
  return 0;
}

int shortlist_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& log) {
  std::string model, src, tgt, output;
  decode::ShortlistSizes sizes;  // the defaults training builds with
  int threads = 2;
  po::options_description desc(
      "Usage: gloss shortlist -m MODEL -s SRC -t TGT -o OUT [--frequent N] [--per-source N]\n"
      "Builds a lexical shortlist for gloss translate --shortlist from a parallel corpus (usually the\n"
      "training data), with the model's subword models: the most frequent target subwords, plus for\n"
      "each source subword the target subwords co-occurring with it most (Dice coefficient)");
  desc.add_options()("help,h", "print this help")("model,m", po::value(&model)->required(), "model file")(
      "source,s", po::value(&src)->required(), "source side of the corpus (plain or .gz)")(
      "target,t", po::value(&tgt)->required(), "target side, line-aligned")("output,o", po::value(&output)->required(),
                                                                            "shortlist file to write")(
      "frequent", po::value(&sizes.frequent)->default_value(sizes.frequent),
      "most frequent target subwords always allowed")("per-source",
                                                      po::value(&sizes.per_source)->default_value(sizes.per_source),
                                                      "target subwords listed per source subword")(
      "threads", po::value(&threads)->default_value(2), "threads for encoding");
  if (wants_help(args)) {
    out << desc;
    return 0;
  }
  parse_options(args, desc, "gloss shortlist");
  decode::validate(sizes);
  compute::check_threads(threads, "--threads");
  require_file(model);
  const auto mf = model::load_any(model, nullptr);
  const auto src_sp = text::SubwordModel::from_bytes(mf.src_spm, model + " (source subwords)");
  const auto tgt_sp = text::SubwordModel::from_bytes(mf.tgt_spm, model + " (target subwords)");
  text::FilterOptions keep_all{0, 0, 0.0, true};
  const auto corpus = text::encode_parallel(src, tgt, src_sp, tgt_sp, keep_all, threads);
  const auto list = decode::Shortlist::build(corpus, src_sp.vocab_size(), tgt_sp.vocab_size(), sizes);
  list.save(output);
  const std::size_t frequent = list.frequent_count();
  log << "shortlist: " << corpus.size() << " sentence pairs; " << frequent << " frequent"
      << (frequent < static_cast<std::size_t>(sizes.frequent) ? " (all the target subwords in the data)" : "") << " + "
      << sizes.per_source << " per source subword -> " << output << std::endl;
  out << output << "\n";
  return 0;
}

namespace {

// gloss translate's command line: where each option's value lands.
struct TranslateCli {
  decode::TranslateOptions o;  // every default below is the struct's
  translate::OutputOptions w;
  std::vector<std::string> models;
  std::string input, output, shard = "1/1";
  int threads = 2;
};

po::options_description translate_options(TranslateCli& c) {
  po::options_description desc(
      "Usage: gloss translate -m MODEL [MODEL ...] [-i IN] [-o OUT] [options]\n"
      "Translates one sentence per line (plain or .gz; standard input by default), one output line\n"
      "per input line, in input order. MODEL is a model file from gloss train (it holds its\n"
      "subword models); nothing else is needed. Several models (trained with the same subword\n"
      "models) translate as an ensemble, averaging their log-probabilities");
  desc.add_options()("help,h", "print this help")("model,m", po::value(&c.models)->required()->multitoken(),
                                                  "model file(s) or training checkpoints")(
      "input,i", po::value(&c.input)->default_value("-"), "input text (- = standard input)")(
      "output,o", po::value(&c.output)->default_value("-"),
      "output file (- = standard output; a name ending in .gz is written gzip-compressed)")(
      "beam-size,b", po::value(&c.o.search.beam_size)->default_value(c.o.search.beam_size), "beam size (1 = greedy)")(
      "n-best", po::value(&c.o.search.n_best)->default_value(c.o.search.n_best),
      "translations per sentence, as 'id ||| text ||| score' (distinct hypotheses, best first)")(
      "length-penalty", po::value(&c.o.search.length_penalty)->default_value(c.o.search.length_penalty),
      "score = log p / length^alpha")("max-len-ratio", po::value(&c.o.max_len_ratio)->default_value(c.o.max_len_ratio),
                                      "longest output: ratio * source length + add")(
      "max-len-add", po::value(&c.o.max_len_add)->default_value(c.o.max_len_add), "see --max-len-ratio")(
      "batch-size", po::value(&c.o.batch_size)->default_value(c.o.batch_size), "sentences per batch")(
      "threads", po::value(&c.threads)->default_value(c.threads), "compute threads")(
      "parallel", po::value(&c.o.parallel)->default_value(c.o.parallel),
      "how the threads share the work: data = each translates its own batches (faster on few cores); ops = all "
      "work inside every operation of one batch")(
      "precision", po::value(&c.o.precision)->default_value(c.o.precision),
      "f32; bf16: the recurrent, readout and output layers in bf16 (CPUs with AVX512-BF16); auto: bf16 where the "
      "CPU has it, else f32")("progress", po::bool_switch(&c.w.progress),
                              "print progress on stderr (automatic on a terminal, unless the input is typed there)")(
      "max-batch-tokens", po::value(&c.o.max_batch_tokens)->default_value(c.o.max_batch_tokens),
      "at most this many padded source subwords per batch (0: no limit)")(
      "min-length", po::value(&c.o.search.min_length)->default_value(c.o.search.min_length),
      "subwords before the end of sentence is allowed")(
      "stop-after", po::value(&c.o.search.stop_after)->default_value(c.o.search.stop_after),
      "a sentence's search stops only once this many hypotheses have finished (1: at the first; up to --beam-size: "
      "searches longer, finds longer translations)")(
      "coverage-penalty", po::value(&c.o.search.coverage_penalty)->default_value(c.o.search.coverage_penalty),
      "beta of Wu et al. (2016): score + beta * sum_j log(min(attention on j, 1))")(
      "word-scores", po::bool_switch(&c.w.word_scores),
      "append ' ||| WordScores= ' and each output word's log-probability")(
      "alignment", po::value(&c.w.alignment)->default_value(c.w.alignment),
      "append ' ||| ' and the attention alignment of the subwords: hard (src-tgt pairs) or soft (weights)")(
      "attention", po::value(&c.w.attention_path)->default_value(c.w.attention_path),
      "draw the attention matrix of one sentence (--attention-line) as a heat map into this .svg or .png file")(
      "attention-line", po::value(&c.w.attention_line)->default_value(c.w.attention_line),
      "the input line --attention draws (from 1)")(
      "shortlist", po::value(&c.o.shortlist)->default_value(c.o.shortlist),
      "lexical shortlist: each sentence chooses among its listed target subwords only (faster, but it can cost "
      "BLEU): none, model (the one training stored in the model file), or a file from gloss shortlist")(
      "shard", po::value(&c.shard)->default_value(c.shard),
      "K/N: translate only the K-th of N contiguous line ranges of IN (as split -n l/K/N); the N outputs, "
      "concatenated in order, equal the whole file's");
  return desc;
}

// Under mpirun the ranks are the shards: rank r translates shard r + 1 of N into its own file
// (translate::shard_path), rank 0 merges them into -o once every rank has finished.
int translate_by_rank(decode::Translator& translator, const TranslateCli& c, std::ostream& out, std::ostream& log) {
  dist::Comm& job = dist::job();
  const translate::Shard mine{static_cast<std::size_t>(job.rank()) + 1, static_cast<std::size_t>(job.size())};
  std::ostream quiet(nullptr);
  translate::translate_file(translator, c.input, translate::shard_path(c.output, mine), c.o, c.w, out,
                            job.rank() == 0 ? log : quiet, mine);
  if (!job.all_ok(true)) return 2;  // a rank that failed has aborted the job already
  if (job.rank() == 0) translate::merge_shards(c.output, mine.count);
  return 0;
}

}  // namespace

int translate_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& log) {
  TranslateCli c;
  const po::options_description desc = translate_options(c);
  if (wants_help(args)) {
    out << desc;
    return 0;
  }
  parse_options(args, desc, "gloss translate");
  const translate::Shard range = translate::parse_shard(c.shard);
  if (!dist::job().single()) {  // under mpirun the ranks are the shards
    if (!range.whole()) throw ConfigError("--shard and mpirun: choose one (under mpirun each rank is a shard)");
    if (c.output == "-" || !c.w.attention_path.empty())
      throw ConfigError(
          "under mpirun, give -o FILE (the ranks' shards are merged into it); --attention is a "
          "single-process option");
  }
  translate::validate(c.w);
  const auto loaded = open_translator(c.models, c.o, c.threads);
  decode::Translator& translator = *loaded;
  if (!dist::job().single()) return translate_by_rank(translator, c, out, log);
  translate::translate_file(translator, c.input, c.output, c.o, c.w, out, log, range);
  return 0;
}

int average_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& log) {
  std::string output;
  std::vector<std::string> inputs;
  po::options_description desc(
      "Usage: gloss average -o OUT MODEL_OR_CHECKPOINT ...\n"
      "Averages the parameters of model files and/or checkpoints of one training (e.g. the\n"
      "checkpoint.<step>.gckpt files that train.keep_last keeps) into a new model file");
  desc.add_options()("help,h", "print this help")("output,o", po::value(&output)->required(), "model file to write");
  po::options_description hidden;
  hidden.add_options()("inputs", po::value(&inputs)->multitoken());
  po::options_description all;
  all.add(desc).add(hidden);
  if (wants_help(args)) {
    out << desc;
    return 0;
  }
  po::positional_options_description pos;
  pos.add("inputs", -1);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(all).positional(pos).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    throw ConfigError(std::string(e.what()) + " (see gloss average --help)");
  }
  model::average_models(inputs, output);
  log << "average: " << counted(static_cast<long long>(inputs.size()), "file") << " -> " << output << std::endl;
  out << output << "\n";
  return 0;
}

int data_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& log) {
  if (args.empty() || wants_help(args)) {
    (args.empty() ? log : out)
        << "Usage: gloss data RECIPE [--section.key value ...]\n"
           "Prepares the recipe's data as training will see it: SentencePiece models (trained or\n"
           "reused), the training corpus encoded and length-filtered, one epoch of batches; prints\n"
           "what was dropped and why, the padding fraction and the time each step took.\n\n"
        << recipe::keys_help();
    return args.empty() ? 2 : 0;
  }
  const auto loaded = load(args);
  const auto& r = loaded.recipe;
  if (!r.data.test_src.empty()) text::check_parallel(r.data.test_src, r.data.test_tgt);
  const auto data = train::prepare_data(r, r.subword.threads, log);  // as training prepares it
  const auto& paths = data.paths;
  const auto& report = data.report;
  const auto& filter = data.filter;
  const auto& corpus = data.corpus;
  const double spm_seconds = data.subword_seconds, encode_seconds = data.encode_seconds;

  const auto t0 = std::chrono::steady_clock::now();
  text::Batcher batcher(corpus, train::batch_options(r.train));
  const auto batches = batcher.epoch_batches(1);
  std::size_t materialised_tokens = 0;
  for (const auto& b : batches)
    materialised_tokens += static_cast<std::size_t>(text::make_batch(corpus, b).target_tokens);
  const double batch_seconds = since(t0);

  const std::string pad = fixed(100.0 * batcher.padding_fraction(1), 1) + "%";
  out << "subword models: " << paths.src << (paths.tgt != paths.src ? ", " + paths.tgt : "") << " ("
      << fixed(spm_seconds, 2) << " s)\n";
  out << "train: " << report.summary(filter) << "\n";
  out << "encoded in " << fixed(encode_seconds, 2) << " s; " << corpus.size() << " pairs, " << materialised_tokens
      << " target tokens; " << fixed(static_cast<double>(corpus.disk_bytes()) / 1e6, 1)
      << " MB on disk in unnamed files in " << text::corpus_folder(r.data) << " (data.tempdir)\n";
  out << "batches (epoch 1): " << batches.size() << " (" << r.train.batch_by << "), padding " << pad << ", built in "
      << fixed(batch_seconds, 2) << " s\n";
  if (!r.data.valid_src.empty()) {
    text::FilterReport vr;
    const text::FilterOptions keep_all{0, 0, 0.0, false};
    const auto valid =
        text::encode_parallel(r.data.valid_src, r.data.valid_tgt, data.src, data.tgt, keep_all, r.subword.threads, &vr);
    out << "valid: " << vr.read << " pairs\n";
  }
  return 0;
}

}  // namespace gloss::cli
