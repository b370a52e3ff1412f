#include "gloss/cli/bench.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <ostream>
#include <vector>

#include "gloss/cli/options.h"
#include "gloss/decode/translator.h"
#include "gloss/dist/comm.h"
#include "gloss/model/seq2seq.h"
#include "gloss/nn/optimizer.h"
#include "gloss/recipe/recipe.h"
#include "gloss/tensor/compute.h"
#include "gloss/text/batcher.h"
#include "gloss/text/corpus.h"
#include "gloss/text/subword.h"
#include "gloss/train/trainer.h"
#include "gloss/util/error.h"
#include "gloss/util/format.h"
#include "gloss/util/line_reader.h"

namespace fs = std::filesystem;

namespace gloss::cli {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// GEMM rates at the current thread count: 1024^3 (the usual "practical limit") and the best of
// that and two shapes this model uses. f32: dnnl_sgemm. bf16: the machine's bf16 rate, B
// rounded and packed once into oneDNN's blocked layout (compute::PackedBf16Weight) and A
// rounded at each call. (compute::gemm in a Bf16Gemms scope also rounds B and repacks it at
// every call: about 75 % of this rate at 1024^3 on Zen 4, so it would flatter the fraction.)
struct SgemmRates {
  double square = 0, best = 0;
};

SgemmRates sgemm_gflops(std::ostream& log, bool bf16 = false) {
  struct Shape {
    std::int64_t m, n, k;
  };
  const Shape shapes[] = {{1024, 1024, 1024}, {1024, 8000, 256}, {64, 1536, 768}};
  SgemmRates rates;
  for (const auto& s : shapes) {
    Tensor a({s.m, s.k}), b({s.k, s.n}), c({s.m, s.n});
    a.fill(0.5f);
    b.fill(0.25f);
    compute::PackedBf16Weight packed;
    if (bf16) packed.pack(false, s.k, s.n, b.data());
    const auto run = [&] {
      if (bf16)
        packed.run(s.m, a.data(), s.k, 0.0f, c.data(), s.n);
      else
        compute::gemm(false, false, s.m, s.n, s.k, 1.0f, a.data(), s.k, b.data(), s.n, 0.0f, c.data(), s.n);
    };
    run();  // warm up (and, in bf16, pack B)
    double fastest = 1e9;
    for (int r = 0; r < 5; ++r) {
      const auto t = Clock::now();
      int reps = 0;
      do {
        run();
        ++reps;
      } while (seconds_since(t) < 0.1);
      fastest = std::min(fastest, seconds_since(t) / reps);
    }
    const double gflops = 2.0 * s.m * s.n * s.k / fastest / 1e9;
    log << "bench: " << (bf16 ? "bf16 gemm " : "sgemm ") << s.m << "x" << s.n << "x" << s.k << ": " << fixed(gflops, 1)
        << " GFLOP/s" << std::endl;
    if (s.m == 1024 && s.n == 1024) rates.square = gflops;
    rates.best = std::max(rates.best, gflops);
  }
  return rates;
}

// Where a training batch's time went: each stage's share of the wall time. Stages run by the
// data-parallel workers side by side (GEMMs, RNN primitives, attention kernel, softmax and
// loss, and each worker's wait for the slowest at the batch's end) count their summed thread
// time divided by the workers; the rest (data, optimizer, clipping and weight average, summing
// the replicas' gradients) runs between batches while the workers wait.
// "other": embeddings, dropout, layer normalisation, element-wise work, copies.
void print_profile(std::ostream& out, double elapsed, int workers) {
  using compute::Stage;
  double accounted = 0;
  for (int s = 0; s < compute::kStages; ++s) {
    const auto stage = static_cast<Stage>(s);
    const bool parallel = stage == Stage::kGemm || stage == Stage::kRnn || stage == Stage::kAttention ||
                          stage == Stage::kLoss || stage == Stage::kWorkerWait;
    const double seconds = compute::stage_seconds(stage) / (parallel ? workers : 1);
    accounted += seconds;
    out << "BENCH train_time_" << compute::stage_name(stage) << " " << fixed(100.0 * seconds / elapsed, 1) << " %\n";
  }
  out << "BENCH train_time_other " << fixed(100.0 * std::max(0.0, elapsed - accounted) / elapsed, 1) << " %\n";
}

}  // namespace

namespace {

// Walks a `gloss bench` command line (raw[0] is the subcommand) one argument at a time;
// errors name the option.
class ArgWalker {
 public:
  explicit ArgWalker(const std::vector<std::string>& raw) : raw_(raw) {}
  bool next() { return ++i_ < raw_.size(); }
  const std::string& arg() const { return raw_[i_]; }
  // The current option's value.
  std::string value() {
    if (i_ + 1 >= raw_.size()) throw ConfigError(raw_[i_] + " needs a value");
    return raw_[++i_];
  }
  // The current option's value, a whole number >= 1.
  int positive() {
    const std::string name = raw_[i_], v = value();
    std::size_t used = 0;
    int n = 0;
    try {
      n = std::stoi(v, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != v.size()) throw ConfigError(name + ": '" + v + "' is not a number");
    if (n < 1) throw ConfigError(name + " must be at least 1");
    return n;
  }

 private:
  const std::vector<std::string>& raw_;
  std::size_t i_ = 0;
};

// `gloss bench translate -m MODEL -i FILE [--beam-size N] [--threads N] [--batch-size N] [--parallel data|ops]
// [--shortlist FILE] [--precision P] [--runs N]`.
struct TranslateBenchArgs {
  std::string model, input;
  decode::TranslateOptions options;
  int threads = 2, runs = 3;
};

TranslateBenchArgs parse_translate_bench_args(const std::vector<std::string>& raw) {
  TranslateBenchArgs b;
  decode::TranslateOptions& o = b.options;
  for (ArgWalker args(raw); args.next();) {
    const std::string& a = args.arg();
    if (a == "-m" || a == "--model")
      b.model = args.value();
    else if (a == "-i" || a == "--input")
      b.input = args.value();
    else if (a == "--beam-size" || a == "-b")
      o.search.beam_size = args.positive();
    else if (a == "--batch-size")
      o.batch_size = args.positive();
    else if (a == "--threads")
      b.threads = args.positive();
    else if (a == "--runs")
      b.runs = args.positive();
    else if (a == "--parallel")
      o.parallel = args.value();
    else if (a == "--shortlist")
      o.shortlist = args.value();
    else if (a == "--precision")
      o.precision = args.value();
    else
      throw ConfigError("gloss bench translate: unknown option '" + a + "' (see gloss bench --help)");
  }
  if (b.model.empty() || b.input.empty()) throw ConfigError("gloss bench translate needs -m MODEL and -i FILE");
  decode::validate(o);
  compute::check_threads(b.threads, "--threads");
  return b;
}

// Words (space-separated) of the best translation of each sentence, in all.
std::size_t output_words(const decode::Translator& translator, const std::vector<decode::Translation>& outputs) {
  std::size_t words = 0;
  for (const auto& tr : outputs) {
    const std::string l = translator.text(tr.hypotheses.front());
    words += static_cast<std::size_t>(std::count(l.begin(), l.end(), ' ') + (l.empty() ? 0 : 1));
  }
  return words;
}

// The median of `runs` translations of the input file: sentences/s and output words/s.
int bench_translate(const std::vector<std::string>& raw, std::ostream& out, std::ostream& log) {
  const TranslateBenchArgs b = parse_translate_bench_args(raw);
  const auto loaded = open_translator({b.model}, b.options, b.threads);
  decode::Translator& translator = *loaded;
  std::vector<std::string> lines;
  {
    LineReader reader(b.input);
    std::string line;
    while (reader.next(line)) lines.push_back(line);
  }
  if (lines.empty()) throw InputError(b.input, 0, "has no lines to translate; give a text with one sentence per line");
  std::vector<double> times;
  std::size_t words = 0;
  for (int r = 0; r < b.runs; ++r) {
    const auto t = Clock::now();
    const auto outputs = translator.translate(lines, b.options, b.input, 1, log);
    times.push_back(seconds_since(t));
    words = output_words(translator, outputs);
    log << "bench: run " << (r + 1) << ": " << fixed(times.back(), 2) << " s" << std::endl;
  }
  std::sort(times.begin(), times.end());
  const double median = times[times.size() / 2];
  out << "BENCH translate_sentences_per_s " << fixed(static_cast<double>(lines.size()) / median, 1) << " sent/s\n";
  out << "BENCH translate_words_per_s " << fixed(static_cast<double>(words) / median, 0) << " words/s\n";
  return 0;
}

// `gloss bench train [RECIPE] [--threads N] [--batches N] [--section.key value ...]`.
struct TrainBenchArgs {
  int threads = 2, batches = 40;
  std::string recipe;                  // quick-en-de when none is given
  std::vector<std::string> overrides;  // --section.key value pairs, for the recipe loader
};

TrainBenchArgs parse_train_bench_args(const std::vector<std::string>& raw) {
  TrainBenchArgs a;
  for (ArgWalker args(raw); args.next();) {
    const std::string& arg = args.arg();
    if (arg == "--threads")
      a.threads = args.positive();
    else if (arg == "--batches")
      a.batches = args.positive();
    else if (a.recipe.empty() && a.overrides.empty() && arg[0] != '-')
      a.recipe = arg;
    else
      a.overrides.push_back(arg);
  }
  if (a.recipe.empty()) {
    a.recipe = "recipes/quick-en-de.ini";
    if (!fs::exists(a.recipe))
      throw ConfigError("no recipe given and " + a.recipe + " is not here; run from the Gloss folder or name a recipe");
  }
  compute::check_threads(a.threads, "--threads");
  return a;
}

// What the timed batches of `gloss bench train` did.
struct TrainBenchResult {
  std::int64_t tokens = 0;    // target tokens trained on
  double elapsed = 0;         // seconds of wall time
  double wait_seconds = 0;    // under mpirun: this rank waiting for the others to finish their parts
  double reduce_seconds = 0;  // under mpirun: then summing the ranks' gradients
  double flops = 0;           // GEMM and RNN floating-point operations (compute::flops)
};

// BENCH lines: the job's speed (and, under mpirun, the waiting's and the reduction's shares)
// and the time profile (under mpirun rank 0's, with its workers: where a rank's update goes);
// in one process also the GEMM rate against dnnl_sgemm's (and bf16's, when training in bf16).
void print_train_bench(std::ostream& out, std::ostream& log, const TrainBenchResult& m, int threads, bool bf16,
                       int workers) {
  const double tok_s = static_cast<double>(m.tokens) / m.elapsed;
  const double gflops = m.flops / m.elapsed / 1e9;
  if (!dist::job().single()) {  // the GEMM rate of one rank would mislead; the job's speed, its reduction, the profile
    out << "BENCH train_processes " << dist::job().size() << " x " << threads << " thread(s)\n";
    out << "BENCH train_target_tokens_per_s " << fixed(tok_s, 0) << " tok/s\n";
    // The ranks' mean wait is what uneven parts cost: the slowest part's time above the mean
    // part's. Each rank's own share says which was the slower (it waits least).
    std::vector<double> waits(static_cast<std::size_t>(dist::job().size()), 0.0);
    waits[static_cast<std::size_t>(dist::job().rank())] = m.wait_seconds;
    dist::job().sum_in_rank_order(waits.data(), waits.size());
    double waited = 0;
    for (const double w : waits) waited += w;
    waited /= static_cast<double>(waits.size());
    out << "BENCH train_rank_wait_share " << fixed(100.0 * waited / m.elapsed, 1)
        << " % of each update (the ranks' mean wait for the slowest)\n";
    out << "BENCH train_each_rank_wait_share";
    for (const double w : waits) out << " " << fixed(100.0 * w / m.elapsed, 1);
    out << " % (rank 0, 1, ...: the slowest rank waits least)\n";
    out << "BENCH train_allreduce_share " << fixed(100.0 * m.reduce_seconds / m.elapsed, 1) << " % of each update\n";
    print_profile(out, m.elapsed, workers);
    return;
  }
  const SgemmRates sgemm = sgemm_gflops(log);
  out << "BENCH train_target_tokens_per_s " << fixed(tok_s, 0) << " tok/s\n";
  out << "BENCH train_gemm_gflops " << fixed(gflops, 1) << " GFLOP/s\n";
  out << "BENCH train_mflop_per_target_token " << fixed(m.flops / static_cast<double>(m.tokens) / 1e6, 1) << " MFLOP\n";
  out << "BENCH sgemm_1024_gflops " << fixed(sgemm.square, 1) << " GFLOP/s\n";
  out << "BENCH sgemm_best_gflops " << fixed(sgemm.best, 1) << " GFLOP/s\n";
  out << "BENCH train_fraction_of_sgemm_1024 " << fixed(100.0 * gflops / sgemm.square, 1) << " %\n";
  out << "BENCH train_fraction_of_sgemm_best " << fixed(100.0 * gflops / sgemm.best, 1) << " %\n";
  if (bf16) {
    const SgemmRates rates = sgemm_gflops(log, true);
    out << "BENCH bf16_gemm_1024_gflops " << fixed(rates.square, 1) << " GFLOP/s\n";
    out << "BENCH train_fraction_of_bf16_gemm_1024 " << fixed(100.0 * gflops / rates.square, 1) << " %\n";
  }
  print_profile(out, m.elapsed, workers);
}

// The training step of `gloss bench train`, as gloss train takes it: the next batch, forward
// and backward on the workers, the ranks' gradient sum, clipping, the optimiser and (with
// train.ema_decay) the weight average. Owns the network; reads the recipe and data it is given.
class BenchTrainer {
 public:
  BenchTrainer(const recipe::Recipe& r, const train::TrainingData& data, const train::TrainOptions& to)
      : r_(r),
        data_(data),
        batcher_(data.corpus, train::batch_options(to)),
        network_(r.model, data, to),
        rng_(static_cast<std::uint64_t>(r.train.seed)) {
    nn::init_parameters(network_.params, r.train.init, static_cast<float>(r.train.init_scale), rng_);
    if (r.train.ema_decay > 0) average_.emplace(network_.params, r.train.ema_decay);
  }
  const train::Network& network() const { return network_; }

  // One update; its tokens and gradient-sum time are added to m.
  nn::LossSum step(TrainBenchResult& m) {
    std::optional<compute::StageTimer> data_timer(compute::Stage::kData);
    const text::Batch b = batcher_.next();
    data_timer.reset();  // the gradients are zero: the last optimiser step consumed them
    auto loss = network_.workers.train_batch(data_.corpus, b, rng_, 1.0f / static_cast<float>(b.target_tokens), 0);
    const auto wait_start = Clock::now();
    network_.workers.comm().barrier();  // the slower ranks' lag, timed apart from the sum itself
    m.wait_seconds += seconds_since(wait_start);
    const auto reduce_start = Clock::now();
    network_.workers.sum_across_ranks(loss);
    m.reduce_seconds += seconds_since(reduce_start);
    {
      const compute::StageTimer timer(compute::Stage::kOptimizer);
      const float clip = nn::clip_scale(nn::grad_norm(network_.params), r_.train.clip_norm);
      network_.optimizer->step(network_.params, static_cast<float>(r_.train.lr), clip, average_ ? &*average_ : nullptr);
    }
    m.tokens += loss.tokens;
    return loss;
  }

 private:
  const recipe::Recipe& r_;
  const train::TrainingData& data_;
  text::Batcher batcher_;
  train::Network network_;
  Rng rng_;
  std::optional<nn::WeightAverage> average_;  // train.ema_decay: updated by every step, as training does
};

// `batches` timed updates with the FLOP counter and stage profile on; progress every 10.
TrainBenchResult timed_batches(BenchTrainer& trainer, int batches, std::ostream& log) {
  compute::reset_flops();
  compute::reset_stage_seconds();
  compute::set_profiling(true);
  TrainBenchResult m;
  const auto start = Clock::now();
  for (int i = 0; i < batches; ++i) {
    const auto loss = trainer.step(m);
    if ((i + 1) % 10 == 0 || i + 1 == batches) {
      const double s = seconds_since(start);
      log << "bench: batch " << (i + 1) << "/" << batches << ", loss/token "
          << fixed(loss.loss / static_cast<double>(loss.tokens), 3) << ", "
          << fixed(static_cast<double>(m.tokens) / s, 0) << " tok/s, ETA " << fixed(s / (i + 1) * (batches - i - 1), 0)
          << " s" << std::endl;
    }
  }
  m.elapsed = seconds_since(start);
  compute::set_profiling(false);
  m.flops = compute::flops();
  return m;
}

// `gloss bench train ...` (see bench_command): the training run's own data and network
// (train/trainer.h) with --threads workers, 5 warm-up batches, then --batches timed ones.
int bench_train(const std::vector<std::string>& raw, std::ostream& out, std::ostream& log) {
  const TrainBenchArgs args = parse_train_bench_args(raw);
  const auto loaded = recipe::load_recipe(args.recipe, args.overrides);
  const auto& r = loaded.recipe;
  compute::set_threads(args.threads);
  std::optional<train::TrainingData> prepared;  // under mpirun rank 0 trains the subword models first
  dist::rank0_first(dist::job(), [&] { prepared.emplace(train::prepare_data(r, args.threads, log)); });
  if (!prepared) prepared.emplace(train::prepare_data(r, args.threads, log));
  train::TrainOptions to = r.train;
  to.threads = args.threads;
  BenchTrainer trainer(r, *prepared, to);
  const train::Network& network = trainer.network();
  log << "bench: " << network.params.num_values() << " parameters, " << network.config.src_vocab << "/"
      << network.config.tgt_vocab << " vocabulary, batches of " << r.train.batch_size << ", " << args.threads
      << " threads, "
      << (network.workers.size() > 1 ? std::to_string(network.workers.size()) + " data-parallel workers"
                                     : std::string("threads inside each operation"))
      << std::endl;
  TrainBenchResult warm_up;
  for (int i = 0; i < 5; ++i) trainer.step(warm_up);  // primitives created, caches filled
  const TrainBenchResult m = timed_batches(trainer, args.batches, log);
  print_train_bench(out, log, m, args.threads, train::trains_in_bf16(to), network.workers.size());
  return 0;
}

}  // namespace

int bench_command(const std::vector<std::string>& raw, std::ostream& out, std::ostream& log) {
  if (!raw.empty() && raw[0] == "translate" && std::find(raw.begin(), raw.end(), "--help") == raw.end())
    return bench_translate(raw, out, log);
  const bool help = std::find(raw.begin(), raw.end(), "--help") != raw.end() || (!raw.empty() && raw[0] == "-h");
  if (!raw.empty() && raw[0] != "train" && raw[0] != "translate" && !help)
    throw ConfigError("gloss bench: unknown action '" + raw[0] + "'; choose train or translate");
  if (raw.empty() || raw[0] != "train" || help) {
    (raw.empty() ? log : out)
        << "Usage: gloss bench train [RECIPE] [--threads N] [--batches N] [--section.key value ...]\n"
           "       gloss bench translate -m MODEL -i FILE [--beam-size N] [--batch-size N] [--threads N] [--runs N]\n"
           "                             [--parallel data|ops] [--shortlist FILE] [--precision f32|bf16|auto]\n"
           "translate: median over runs of translating FILE (sentences/s, output words/s).\n"
           "Measures training speed (forward + backward + Adam, and the weight average with\n"
           "train.ema_decay) of the recipe's model on its data\n"
           "(default recipe: recipes/quick-en-de.ini, the reference model of the PyTorch peer) and\n"
           "prints BENCH lines: target tokens/s, GFLOP/s of all GEMMs, and that rate against the\n"
           "machine's dnnl_sgemm rate at the same thread count. Like `gloss spm train`, it trains\n"
           "the recipe's subword models under <run.workdir>/spm/ (default runs/<recipe name>/ in\n"
           "the current folder), or reuses them when corpus and options are unchanged.\n\n"
        << recipe::keys_help();
    return raw.empty() ? 2 : 0;
  }
  dist::Comm& comm = dist::job();
  if (comm.rank() == 0) return bench_train(raw, out, log);
  std::ostream quiet(nullptr);  // under mpirun rank 0 alone reports
  return bench_train(raw, quiet, quiet);
}

}  // namespace gloss::cli
