#include "gloss/cli/bench.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <ostream>

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

// GEMM rates at the current thread count (dnnl_sgemm; with bf16, compute::gemm in a Bf16Gemms
// scope, as training in bf16 runs it): 1024^3 (the usual "practical limit") and the best of
// that and two shapes this model uses.
struct SgemmRates {
  double square = 0, best = 0;
};

SgemmRates sgemm_gflops(std::ostream& log, bool bf16 = false) {
  std::optional<compute::Bf16Gemms> scope;
  if (bf16) scope.emplace();
  struct Shape {
    std::int64_t m, n, k;
  };
  const Shape shapes[] = {{1024, 1024, 1024}, {1024, 8000, 256}, {64, 1536, 768}};
  SgemmRates rates;
  for (const auto& s : shapes) {
    Tensor a({s.m, s.k}), b({s.k, s.n}), c({s.m, s.n});
    a.fill(0.5f);
    b.fill(0.25f);
    compute::gemm(false, false, s.m, s.n, s.k, 1.0f, a.data(), s.k, b.data(), s.n, 0.0f, c.data(), s.n);  // warm up
    double fastest = 1e9;
    for (int r = 0; r < 5; ++r) {
      const auto t = Clock::now();
      int reps = 0;
      do {
        compute::gemm(false, false, s.m, s.n, s.k, 1.0f, a.data(), s.k, b.data(), s.n, 0.0f, c.data(), s.n);
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
// loss) count their summed thread time divided by the workers; the rest (data, optimizer,
// clipping and weight average, summing the replicas' gradients) runs between batches while the
// workers wait.
// "other": embeddings, dropout, layer normalisation, element-wise work, copies, waiting.
void print_profile(std::ostream& out, double elapsed, int workers) {
  using compute::Stage;
  double accounted = 0;
  for (int s = 0; s < compute::kStages; ++s) {
    const auto stage = static_cast<Stage>(s);
    const bool parallel =
        stage == Stage::kGemm || stage == Stage::kRnn || stage == Stage::kAttention || stage == Stage::kLoss;
    const double seconds = compute::stage_seconds(stage) / (parallel ? workers : 1);
    accounted += seconds;
    out << "BENCH train_time_" << compute::stage_name(stage) << " " << fixed(100.0 * seconds / elapsed, 1) << " %\n";
  }
  out << "BENCH train_time_other " << fixed(100.0 * std::max(0.0, elapsed - accounted) / elapsed, 1) << " %\n";
}

}  // namespace

namespace {

// `gloss bench translate -m MODEL -i FILE [--beam-size N] [--threads N] [--batch-size N] [--parallel data|ops]
// [--shortlist FILE]`
int bench_translate(const std::vector<std::string>& raw, std::ostream& out, std::ostream& log) {
  std::string model, input;
  decode::TranslateOptions o;
  int threads = 2, runs = 3;
  for (std::size_t i = 1; i < raw.size(); ++i) {
    auto value = [&]() -> std::string {
      if (i + 1 >= raw.size()) throw ConfigError(raw[i] + " needs a value");
      return raw[++i];
    };
    auto number = [&]() {
      const std::string name = raw[i], v = value();
      try {
        const int n = std::stoi(v);
        if (n < 1) throw ConfigError(name + " must be at least 1");
        return n;
      } catch (const std::invalid_argument&) {
        throw ConfigError(name + ": '" + v + "' is not a number");
      }
    };
    if (raw[i] == "-m" || raw[i] == "--model")
      model = value();
    else if (raw[i] == "-i" || raw[i] == "--input")
      input = value();
    else if (raw[i] == "--beam-size" || raw[i] == "-b")
      o.search.beam_size = number();
    else if (raw[i] == "--batch-size")
      o.batch_size = number();
    else if (raw[i] == "--threads")
      threads = number();
    else if (raw[i] == "--runs")
      runs = number();
    else if (raw[i] == "--parallel")
      o.parallel = value();
    else if (raw[i] == "--shortlist")
      o.shortlist = value();
    else if (raw[i] == "--precision")
      o.precision = value();
    else
      throw ConfigError("gloss bench translate: unknown option '" + raw[i] + "' (see gloss bench --help)");
  }
  if (model.empty() || input.empty()) throw ConfigError("gloss bench translate needs -m MODEL and -i FILE");
  decode::validate(o);
  compute::check_threads(threads, "--threads");
  compute::set_threads(threads);
  decode::Translator translator({model});
  translator.use_shortlist(o.shortlist);
  std::vector<std::string> lines;
  {
    LineReader reader(input);
    std::string line;
    while (reader.next(line)) lines.push_back(line);
  }
  std::vector<double> times;
  std::size_t words = 0;
  for (int r = 0; r < runs; ++r) {
    const auto t = Clock::now();
    const auto outputs = translator.translate(lines, o, input, 1, log);
    times.push_back(seconds_since(t));
    words = 0;
    for (const auto& tr : outputs) {
      const std::string l = translator.text(tr.hypotheses.front());
      words += static_cast<std::size_t>(std::count(l.begin(), l.end(), ' ') + (l.empty() ? 0 : 1));
    }
    log << "bench: run " << (r + 1) << ": " << fixed(times.back(), 2) << " s" << std::endl;
  }
  std::sort(times.begin(), times.end());
  const double median = times[times.size() / 2];
  out << "BENCH translate_sentences_per_s " << fixed(static_cast<double>(lines.size()) / median, 1) << " sent/s\n";
  out << "BENCH translate_words_per_s " << fixed(static_cast<double>(words) / median, 0) << " words/s\n";
  return 0;
}

// `gloss bench train ...` (see bench_command).
int bench_train(const std::vector<std::string>& raw, std::ostream& out, std::ostream& log) {
  int threads = 2, batches = 40;
  std::string path;
  std::vector<std::string> overrides;
  for (std::size_t i = 1; i < raw.size(); ++i) {
    auto int_arg = [&](int& target) {
      if (i + 1 >= raw.size()) throw ConfigError(raw[i] + " needs a number");
      try {
        target = std::stoi(raw[++i]);
      } catch (const std::exception&) {
        throw ConfigError(raw[i - 1] + ": '" + raw[i] + "' is not a number");
      }
      if (target < 1) throw ConfigError(raw[i - 1] + " must be at least 1");
    };
    if (raw[i] == "--threads")
      int_arg(threads);
    else if (raw[i] == "--batches")
      int_arg(batches);
    else if (path.empty() && overrides.empty() && raw[i][0] != '-')
      path = raw[i];
    else
      overrides.push_back(raw[i]);
  }
  if (path.empty()) {
    path = "recipes/quick-en-de.ini";
    if (!fs::exists(path))
      throw ConfigError("no recipe given and " + path + " is not here; run from the Gloss folder or name a recipe");
  }
  compute::check_threads(threads, "--threads");
  const auto loaded = recipe::load_recipe(path, overrides);
  const auto& r = loaded.recipe;
  compute::set_threads(threads);
  // The training run's own data and network (train/trainer.h), with --threads workers.
  std::optional<train::TrainingData> prepared;  // under mpirun rank 0 trains the subword models first
  dist::rank0_first(dist::job(), [&] { prepared.emplace(train::prepare_data(r, threads, log)); });
  if (!prepared) prepared.emplace(train::prepare_data(r, threads, log));
  const train::TrainingData& data = *prepared;
  train::TrainOptions to = r.train;
  to.threads = threads;
  text::Batcher batcher(data.corpus, train::batch_options(to));
  train::Network network(r.model, data, to);
  const auto& corpus = data.corpus;
  auto& params = network.params;
  auto& workers = network.workers;
  auto& optimizer = network.optimizer;
  const model::ModelConfig& mc = network.config;
  Rng rng(static_cast<std::uint64_t>(r.train.seed));
  nn::init_parameters(params, r.train.init, static_cast<float>(r.train.init_scale), rng);
  log << "bench: " << params.num_values() << " parameters, " << mc.src_vocab << "/" << mc.tgt_vocab
      << " vocabulary, batches of " << r.train.batch_size << ", " << threads << " threads, "
      << (workers.size() > 1 ? std::to_string(workers.size()) + " data-parallel workers"
                             : std::string("threads inside each operation"))
      << std::endl;

  std::optional<nn::WeightAverage> average;  // train.ema_decay: updated after every step, as training does
  if (r.train.ema_decay > 0) average.emplace(params, r.train.ema_decay);
  std::int64_t step = 0;
  double reduce_seconds = 0;  // under mpirun: summing the ranks' gradients (and waiting for the slowest)
  auto train_batch = [&](std::int64_t& tokens) {
    std::optional<compute::StageTimer> data_timer(compute::Stage::kData);
    const text::Batch b = batcher.next();
    data_timer.reset();
    params.zero_grad();
    auto loss = workers.train_batch(corpus, b, rng, 1.0f / static_cast<float>(b.target_tokens), 0);
    const auto reduce_start = Clock::now();
    workers.sum_across_ranks(loss);
    reduce_seconds += seconds_since(reduce_start);
    {
      const compute::StageTimer timer(compute::Stage::kOptimizer);
      nn::clip_grad_norm(params, r.train.clip_norm);
      optimizer->step(params, static_cast<float>(r.train.lr));
      if (average) average->update(params, ++step);
    }
    tokens += loss.tokens;
    return loss;
  };
  std::int64_t warm_tokens = 0;
  for (int i = 0; i < 5; ++i) train_batch(warm_tokens);
  compute::reset_flops();
  compute::reset_stage_seconds();
  compute::set_profiling(true);
  std::int64_t tokens = 0;
  reduce_seconds = 0;
  const auto start = Clock::now();
  for (int i = 0; i < batches; ++i) {
    const auto loss = train_batch(tokens);
    if ((i + 1) % 10 == 0 || i + 1 == batches) {
      const double s = seconds_since(start);
      log << "bench: batch " << (i + 1) << "/" << batches << ", loss/token "
          << fixed(loss.loss / static_cast<double>(loss.tokens), 3) << ", " << fixed(static_cast<double>(tokens) / s, 0)
          << " tok/s, ETA " << fixed(s / (i + 1) * (batches - i - 1), 0) << " s" << std::endl;
    }
  }
  const double elapsed = seconds_since(start);
  compute::set_profiling(false);
  const double flops = compute::flops();
  const double tok_s = static_cast<double>(tokens) / elapsed;
  const double gflops = flops / elapsed / 1e9;
  if (!dist::job().single()) {  // the GEMM rate of one rank would mislead; the job's speed and its reduction
    out << "BENCH train_processes " << dist::job().size() << " x " << threads << " thread(s)\n";
    out << "BENCH train_target_tokens_per_s " << fixed(tok_s, 0) << " tok/s\n";
    out << "BENCH train_allreduce_share " << fixed(100.0 * reduce_seconds / elapsed, 1) << " % of each update\n";
    return 0;
  }
  const SgemmRates sgemm = sgemm_gflops(log);
  out << "BENCH train_target_tokens_per_s " << fixed(tok_s, 0) << " tok/s\n";
  out << "BENCH train_gemm_gflops " << fixed(gflops, 1) << " GFLOP/s\n";
  out << "BENCH train_mflop_per_target_token " << fixed(flops / static_cast<double>(tokens) / 1e6, 1) << " MFLOP\n";
  out << "BENCH sgemm_1024_gflops " << fixed(sgemm.square, 1) << " GFLOP/s\n";
  out << "BENCH sgemm_best_gflops " << fixed(sgemm.best, 1) << " GFLOP/s\n";
  out << "BENCH train_fraction_of_sgemm_1024 " << fixed(100.0 * gflops / sgemm.square, 1) << " %\n";
  out << "BENCH train_fraction_of_sgemm_best " << fixed(100.0 * gflops / sgemm.best, 1) << " %\n";
  if (train::trains_in_bf16(to)) {
    const SgemmRates bf16 = sgemm_gflops(log, true);
    out << "BENCH bf16_gemm_1024_gflops " << fixed(bf16.square, 1) << " GFLOP/s\n";
    out << "BENCH train_fraction_of_bf16_gemm_1024 " << fixed(100.0 * gflops / bf16.square, 1) << " %\n";
  }
  print_profile(out, elapsed, workers.size());
  return 0;
}

}  // namespace

int bench_command(const std::vector<std::string>& raw, std::ostream& out, std::ostream& log) {
  if (!raw.empty() && raw[0] == "translate" && std::find(raw.begin(), raw.end(), "--help") == raw.end())
    return bench_translate(raw, out, log);
  if (raw.empty() || raw[0] != "train" || std::find(raw.begin(), raw.end(), "--help") != raw.end()) {
    (raw.empty() ? log : out)
        << "Usage: gloss bench train [RECIPE] [--threads N] [--batches N] [--section.key value ...]\n"
           "       gloss bench translate -m MODEL -i FILE [--beam-size N] [--batch-size N] [--threads N] [--runs N]\n"
           "                             [--parallel data|ops] [--shortlist FILE] [--precision f32|bf16|auto]\n"
           "translate: median over runs of translating FILE (sentences/s, output words/s).\n"
           "Measures training speed (forward + backward + Adam, and the weight average with\n"
           "train.ema_decay) of the recipe's model on its data\n"
           "(default recipe: recipes/quick-en-de.ini, the reference model of the PyTorch peer) and\n"
           "prints BENCH lines: target tokens/s, GFLOP/s of all GEMMs, and that rate against the\n"
           "machine's dnnl_sgemm rate at the same thread count.\n\n"
        << recipe::keys_help();
    return raw.empty() ? 2 : 0;
  }
  dist::Comm& comm = dist::job();
  if (comm.rank() == 0) return bench_train(raw, out, log);
  std::ostream quiet(nullptr);  // under mpirun rank 0 alone reports
  return bench_train(raw, quiet, quiet);
}

}  // namespace gloss::cli
