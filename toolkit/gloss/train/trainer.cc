#include "gloss/train/trainer.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numbers>
#include <numeric>
#include <ostream>
#include <utility>

#include <signal.h>

#ifdef __GLIBC__
#include <malloc.h>  // malloc_trim
#endif

#include "gloss/decode/search.h"
#include "gloss/decode/shortlist.h"
#include "gloss/decode/translator.h"
#include "gloss/eval/bleu.h"
#include "gloss/eval/chrf.h"
#include "gloss/model/model_file.h"
#include "gloss/tensor/compute.h"
#include "gloss/train/checkpoint.h"
#include "gloss/util/atomic_file.h"
#include "gloss/util/error.h"
#include "gloss/util/format.h"
#include "gloss/util/line_reader.h"

namespace fs = std::filesystem;

namespace gloss::train {

TrainingData prepare_data(const TrainSetup& setup, int threads, std::ostream& log) {
  const auto& d = setup.data;
  for (const auto* path : {&d.train_src, &d.train_tgt, &d.valid_src, &d.valid_tgt})
    if (!path->empty()) require_rereadable(*path, "training and validation files are read more than once");
  text::check_parallel(d.train_src, d.train_tgt);
  if (!d.valid_src.empty()) text::check_parallel(d.valid_src, d.valid_tgt);
  // Its files first: an unwritable data.tempdir is an error before minutes of subword training.
  auto corpus = text::EncodedCorpus::on_disk(text::corpus_folder(d));
  TrainingData data;
  auto t0 = std::chrono::steady_clock::now();
  const std::string spm = setup.subword_dir.empty() ? (fs::path(setup.workdir) / "spm").string() : setup.subword_dir;
  data.paths = text::prepare_subword_models(d, setup.subword, spm, log);
  data.src = text::SubwordModel::load(data.paths.src);
  data.tgt = text::SubwordModel::load(data.paths.tgt);
  data.subword_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  t0 = std::chrono::steady_clock::now();
  data.filter = text::training_filter(d);
  data.corpus = text::encode_parallel(d.train_src, d.train_tgt, data.src, data.tgt, data.filter, threads, &data.report,
                                      std::move(corpus));
  if (setup.subword.sample_nbest > 1) {
    const text::SamplingOptions so{setup.subword.sample_nbest, setup.subword.sample_alpha};
    data.sampler = std::make_shared<const text::SegmentationSampler>(d.train_src, d.train_tgt, data.src, data.tgt,
                                                                     data.corpus, so, data.filter, threads);
    log << "train: subword sampling: " << fixed(data.sampler->mean_candidates(), 1)
        << " segmentations per sentence on average (subword.sample_nbest " << so.nbest << ", sample_alpha " << so.alpha
        << ")" << std::endl;
  }
  data.encode_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return data;
}

text::BatchOptions batch_options(const TrainOptions& t) {
  text::BatchOptions bo;
  bo.by_tokens = t.batch_by == "tokens";
  bo.batch_size = t.batch_size;
  bo.batch_tokens = t.batch_tokens;
  bo.pool_batches = t.pool_batches;
  bo.seed = static_cast<std::uint64_t>(t.seed);
  return bo;
}

double lr_at(const TrainOptions& t, double plateau_lr, std::int64_t step) {
  double lr = t.lr_schedule == "plateau" ? plateau_lr : t.lr;
  const double s = static_cast<double>(step);
  if (t.lr_schedule == "cosine") {
    const double into = std::max(0.0, s - t.decay_start);
    const double done = std::min(1.0, into / std::max(1, t.decay_steps));  // the recipe checks decay_steps > 0
    lr = t.lr_min + (t.lr - t.lr_min) * 0.5 * (1 + std::cos(std::numbers::pi * done));
  }
  if (t.lr_schedule == "inverse_sqrt" && t.warmup_steps > 0) {
    lr *= std::min(s / t.warmup_steps, std::sqrt(t.warmup_steps / std::max(1.0, s)));
  } else if (t.warmup_steps > 0 && s < t.warmup_steps) {
    lr *= s / t.warmup_steps;
  }
  return lr;
}

namespace {

model::ModelConfig with_vocabularies(model::ModelConfig config, const TrainingData& data) {
  config.src_vocab = data.src.vocab_size();
  config.tgt_vocab = data.tgt.vocab_size();
  return config;
}

}  // namespace

Network::Network(const model::ModelConfig& model, const TrainingData& data, const TrainOptions& t)
    : config(with_vocabularies(model, data)),
      net(config, params),
      workers(net, params, config, t, dist::job()),
      optimizer(nn::make_optimizer(t.optimizer, params, t.weight_decay)) {}

namespace {

using Clock = std::chrono::steady_clock;

struct Validation {
  double ce = 0, ppl = 0, bleu = 0, chrf = 0;
};

// The validation set: encoded pairs for cross-entropy, sources and raw references for BLEU.
struct ValidSet {
  text::EncodedCorpus pairs;
  std::vector<std::vector<int>> sources;
  std::vector<std::string> references;
};

ValidSet load_valid(const text::DataOptions& d, const text::SubwordModel& src, const text::SubwordModel& tgt,
                    int threads) {
  ValidSet v;
  v.pairs = text::encode_parallel(d.valid_src, d.valid_tgt, src, tgt, {0, 0, 0.0, true}, threads);
  LineReader s(d.valid_src), t(d.valid_tgt);
  std::string a, b;
  while (s.next(a) && t.next(b)) {
    v.sources.push_back(src.encode(a));
    v.references.push_back(b);
  }
  return v;
}

// The batches (of `count`) this rank validates: every size()-th, from its rank.
std::vector<std::size_t> batches_of_this_rank(const dist::Comm& comm, std::size_t count) {
  std::vector<std::size_t> mine;
  for (std::size_t k = static_cast<std::size_t>(comm.rank()); k < count; k += static_cast<std::size_t>(comm.size()))
    mine.push_back(k);
  return mine;
}

// The ranks' BLEU and chrF statistics summed (integer counts: exact in doubles below 2^53).
void sum_across_ranks(dist::Comm& comm, int order, eval::BleuStats& bleu, eval::Stats& chrf) {
  if (comm.single()) return;
  bleu.correct.resize(static_cast<std::size_t>(order), 0);  // a rank without sentences has none yet
  bleu.total.resize(static_cast<std::size_t>(order), 0);
  std::vector<double> flat = {static_cast<double>(bleu.sys_len), static_cast<double>(bleu.ref_len)};
  for (auto v : bleu.correct) flat.push_back(static_cast<double>(v));
  for (auto v : bleu.total) flat.push_back(static_cast<double>(v));
  flat.insert(flat.end(), chrf.begin(), chrf.end());
  comm.sum_in_rank_order(flat.data(), flat.size());
  std::size_t at = 0;
  bleu.sys_len = static_cast<std::int64_t>(flat[at++]);
  bleu.ref_len = static_cast<std::int64_t>(flat[at++]);
  for (auto& v : bleu.correct) v = static_cast<std::int64_t>(flat[at++]);
  for (auto& v : bleu.total) v = static_cast<std::int64_t>(flat[at++]);
  for (auto& v : chrf) v = flat[at++];
}

// Cross-entropy (no label smoothing, no dropout) of batches of `bs` pairs of similar length,
// summed in batch order whoever ran them.
double valid_cross_entropy(Workers& workers, const ValidSet& valid, std::size_t bs, int split_positions) {
  std::vector<std::uint32_t> by_length(valid.pairs.size());
  std::iota(by_length.begin(), by_length.end(), 0U);
  std::stable_sort(by_length.begin(), by_length.end(), [&](std::uint32_t a, std::uint32_t b) {
    return valid.pairs.tgt_len(a) != valid.pairs.tgt_len(b) ? valid.pairs.tgt_len(a) < valid.pairs.tgt_len(b)
                                                            : valid.pairs.src_len(a) < valid.pairs.src_len(b);
  });
  const std::size_t ce_batches = (by_length.size() + bs - 1) / bs;
  std::vector<double> batch_nll(ce_batches, 0.0), batch_tokens(ce_batches, 0.0);
  const auto mine = batches_of_this_rank(workers.comm(), ce_batches);
  workers.for_each(mine.size(), [&](model::Seq2Seq& net, std::size_t i) {
    const std::size_t k = mine[i], start = k * bs;
    const std::vector<std::uint32_t> ids(
        by_length.begin() + static_cast<std::ptrdiff_t>(start),
        by_length.begin() + static_cast<std::ptrdiff_t>(std::min(by_length.size(), start + bs)));
    const auto b = text::make_batch(valid.pairs, ids);
    for (const auto& part : text::split_batch(valid.pairs, b, split_positions)) {  // memory as in training
      const auto loss = net.forward_backward(batch_view(part), 0.0f, nullptr, false);
      batch_nll[k] += loss.nll;
      batch_tokens[k] += static_cast<double>(loss.tokens);
    }
  });
  // mpirun: every batch's figures on every rank (x + 0 is exact: each has one owner).
  workers.comm().sum_in_rank_order(batch_nll.data(), batch_nll.size());
  workers.comm().sum_in_rank_order(batch_tokens.data(), batch_tokens.size());
  double nll = 0, tokens = 0;
  for (std::size_t k = 0; k < ce_batches; ++k) {
    nll += batch_nll[k];
    tokens += batch_tokens[k];
  }
  return tokens > 0 ? nll / tokens : 0.0;
}

// Greedy translations of the validation sources, in corpus order (batches of `bs`, shortest
// first, built as the translator builds them). Under mpirun, of this rank's batches only:
// `translated` says which sentences.
std::vector<std::string> valid_translations(Workers& workers, const ValidSet& valid, std::size_t bs,
                                            const decode::TranslateOptions& decode, const text::SubwordModel& tgt_sp,
                                            std::vector<char>& translated) {
  std::vector<std::size_t> src_order(valid.sources.size());
  std::iota(src_order.begin(), src_order.end(), std::size_t{0});
  std::stable_sort(src_order.begin(), src_order.end(),
                   [&](std::size_t a, std::size_t b) { return valid.sources[a].size() < valid.sources[b].size(); });
  std::vector<std::string> hyps(valid.sources.size());
  translated.assign(valid.sources.size(), 0);
  const auto mine = batches_of_this_rank(workers.comm(), (src_order.size() + bs - 1) / bs);
  for (std::size_t k : mine)
    for (std::size_t j = k * bs; j < std::min(src_order.size(), (k + 1) * bs); ++j) translated[src_order[j]] = 1;
  workers.for_each(mine.size(), [&](model::Seq2Seq& net, std::size_t i) {
    const std::size_t k = mine[i], start = k * bs, end = std::min(src_order.size(), start + bs);
    std::vector<std::size_t> idx;
    for (std::size_t j = start; j < end; ++j)
      if (!valid.sources[src_order[j]].empty()) idx.push_back(src_order[j]);
    if (idx.empty()) return;
    const auto batch = decode::make_source_batch(valid.sources, idx, decode);
    const auto out_ids = decode::greedy_search(net, batch.view(), batch.max_len);
    for (std::size_t n = 0; n < idx.size(); ++n)
      hyps[idx[n]] = tgt_sp.decode(std::vector<int>(out_ids[n].begin(), out_ids[n].end()));
  });
  workers.release_search_states();
  return hyps;
}

Validation validate(Workers& workers, const ValidSet& valid, const text::SubwordModel& tgt_sp, const TrainSetup& s) {
  // Each worker takes whole batches: a training-sized share of decode.batch_size each, so
  // that validation needs no more memory than training.
  // Under mpirun the ranks share the batches as workers of one process would.
  const int all_workers = workers.size() * workers.comm().size();
  const std::size_t bs = static_cast<std::size_t>(std::max(1, s.decode.batch_size / all_workers));
  Validation out;
  out.ce = valid_cross_entropy(workers, valid, bs, s.train.split_positions);
  out.ppl = std::exp(out.ce);
  // Greedy translations, scored exactly as sacreBLEU would (statistics summed in corpus order;
  // they are integer counts, so summing them across ranks is exact).
  std::vector<char> translated;
  const auto hyps = valid_translations(workers, valid, bs, s.decode, tgt_sp, translated);
  eval::BleuOptions bo;
  eval::ChrfOptions co;
  bo.lowercase = co.lowercase = text::folds_case(s.subword);
  eval::Bleu bleu(bo);
  eval::Chrf chrf(co);
  eval::BleuStats bleu_stats;
  eval::Stats chrf_stats(chrf.num_stats(), 0.0);
  for (std::size_t i = 0; i < hyps.size(); ++i) {
    if (!translated[i]) continue;  // another rank's
    bleu_stats += bleu.sentence_stats(hyps[i], {valid.references[i]});
    const auto c = chrf.sentence_stats(hyps[i], {valid.references[i]});
    for (std::size_t k = 0; k < c.size(); ++k) chrf_stats[k] += c[k];
  }
  sum_across_ranks(workers.comm(), bo.max_ngram_order, bleu_stats, chrf_stats);
  out.bleu = bleu.score(bleu_stats).score;
  out.chrf = chrf.f_score(chrf_stats);
  return out;
}

double metric_value(const Validation& v, const std::string& metric) {
  if (metric == "bleu") return v.bleu;
  if (metric == "chrf") return v.chrf;
  return -v.ce;  // higher is better
}

// While one is alive, SIGINT (Ctrl-C) and SIGTERM (kill, Slurm, mpirun passing one on) only
// note the signal: the training loop ends its update, saves a checkpoint and stops. A second
// signal ends the process at once, as it would have (SA_RESETHAND).
std::atomic<int> g_stop_signal{0};
extern "C" void note_stop_signal(int signal) { g_stop_signal.store(signal); }

class StopSignals {
 public:
  StopSignals() {
    struct sigaction sa {};
    sa.sa_handler = note_stop_signal;
    sa.sa_flags = SA_RESETHAND | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int_);
    sigaction(SIGTERM, &sa, &old_term_);
  }
  ~StopSignals() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
    g_stop_signal.store(0);
  }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;
  static int received() { return g_stop_signal.load(); }  // 0: none

 private:
  struct sigaction old_int_ {
  }, old_term_{};
};

// One training run: its data, network and state, and the stages of the loop.
class TrainingRun {
 public:
  TrainingRun(const TrainSetup& setup, std::ostream& log);
  TrainOutcome run();

 private:
  void start_or_resume();
  std::string limit_reached() const;  // why to stop before the next update ("" to go on)
  void update();                      // one optimiser update over train.accumulate batches
  void report_progress();             // every 20 updates
  void validate_and_keep_best();      // with train.ema_decay: of the weight average
  void keep_best();                   // validation (or the latest model without validation data), early stopping
  void save_checkpoint();
  // Checkpoint (after the final validation when no step follows), one line on the log,
  // Interrupted. `checkpointed`: this step's validation and checkpoint are done.
  [[noreturn]] void stop_for_signal(bool checkpointed);
  std::vector<Tensor*> averages() { return average_ ? average_->state() : std::vector<Tensor*>{}; }
  double lr_at(std::int64_t step) const;
  double epochs_done() const;
  TrainOutcome outcome() const;

  const TrainSetup& s_;
  const TrainOptions& to_;
  std::ostream& log_;
  const bool writer_;  // rank 0 (or the only process): writes checkpoints, models and the metrics log
  const fs::path dir_;
  const std::string ckpt_path_, best_path_;
  TrainingData data_;
  text::Batcher batcher_;
  ValidSet valid_;
  bool has_valid_;
  Network network_;
  model::ModelFile mf_;
  TrainingState state_;
  Rng rng_;
  std::unique_ptr<nn::WeightAverage> average_;  // train.ema_decay > 0
  std::ofstream metrics_;
  std::optional<MetricsRow> best_row_;
  // Progress window (every 20 updates; the loss since the last validation is in state_).
  double window_loss_ = 0, window_seconds_ = 0;
  std::int64_t window_tokens_ = 0;
  std::string last_valid_ = "none yet", why_;
  int stop_signal_ = 0;  // rank 0's StopSignals::received() after the last update (every rank's)
  std::size_t batches_per_epoch_ = 0;
};

TrainingData prepared(const TrainSetup& s, std::ostream& log) {
  compute::set_threads(s.train.threads);
  fs::create_directories(s.workdir);
  // Under mpirun, rank 0 trains the subword models (or finds them) before the others read them.
  dist::Comm& comm = dist::job();
  std::optional<TrainingData> data;
  dist::rank0_first(comm, [&] { data.emplace(prepare_data(s, s.train.threads, log)); });
  if (comm.rank() != 0) data.emplace(prepare_data(s, s.train.threads, log));
  log << "train: data: " << data->report.summary(data->filter) << std::endl;
  return std::move(*data);
}

TrainingRun::TrainingRun(const TrainSetup& setup, std::ostream& log)
    : s_(setup),
      to_(setup.train),
      log_(log),
      writer_(dist::job().rank() == 0),
      dir_(setup.workdir),
      ckpt_path_((dir_ / "checkpoint.gckpt").string()),
      best_path_((dir_ / "model.best.gloss").string()),
      data_(prepared(setup, log)),
      batcher_(data_.corpus, batch_options(to_)),
      has_valid_(!setup.data.valid_src.empty()),
      network_(setup.model, data_, to_),
      rng_(static_cast<std::uint64_t>(to_.seed)) {
  if (has_valid_) valid_ = load_valid(s_.data, data_.src, data_.tgt, to_.threads);
  if (data_.sampler)  // every epoch its own segmentations, drawn from (train.seed, epoch)
    batcher_.on_epoch_start([this](int epoch) {
      data_.corpus = text::EncodedCorpus();  // the last epoch's files go before the next ones are written
      data_.corpus = data_.sampler->sample(static_cast<std::uint64_t>(to_.seed), epoch,
                                           text::EncodedCorpus::on_disk(text::corpus_folder(s_.data)));
    });
  mf_.config = network_.config;
  mf_.src_spm = data_.src.bytes();
  mf_.tgt_spm = data_.tgt.bytes();
  mf_.recipe = s_.recipe_text;
  // The lexical shortlist stored with the model (translate --shortlist model), from the best
  // segmentations of the training pairs.
  mf_.shortlist = decode::Shortlist::build(data_.corpus, static_cast<int>(network_.config.src_vocab),
                                           static_cast<int>(network_.config.tgt_vocab), {})
                      .to_text();
}

void TrainingRun::start_or_resume() {
  // What a write killed midway left of this run's files (up to a checkpoint's size each).
  if (writer_)
    for (const auto& path : {ckpt_path_, best_path_, (dir_ / "metrics.jsonl").string()}) sweep_stale_temporaries(path);
  if (fs::exists(ckpt_path_)) {
    const model::ModelFile old = peek_checkpoint(ckpt_path_);
    if (old.src_spm != mf_.src_spm || old.tgt_spm != mf_.tgt_spm)
      throw InputError(ckpt_path_, 0, "was trained with other subword models; delete it or choose another run.workdir");
    if (const std::string d = model::shape_difference(old.config, mf_.config); !d.empty())
      throw InputError(ckpt_path_, 0,
                       "is a checkpoint of another model (" + d + "); delete it or choose another run.workdir");
    if (to_.ema_decay > 0) average_ = std::make_unique<nn::WeightAverage>(network_.params, to_.ema_decay);
    load_checkpoint(ckpt_path_, network_.params, *network_.optimizer, state_, averages());
    rng_.set_state(state_.rng);
    batcher_.restore({state_.epoch, state_.batch});
    log_ << "train: resuming from " << ckpt_path_ << " at step " << state_.step << " (epoch " << state_.epoch << ")"
         << std::endl;
  } else {
    nn::init_parameters(network_.params, to_.init, static_cast<float>(to_.init_scale), rng_);
    state_.lr = to_.lr;
    if (to_.ema_decay > 0) average_ = std::make_unique<nn::WeightAverage>(network_.params, to_.ema_decay);
  }
  log_ << "train: " << network_.params.num_values() << " parameters; " << data_.corpus.size()
       << " training pairs; workdir " << dir_.string() << std::endl;
  if (to_.precision != "f32")
    log_ << "train: precision " << (trains_in_bf16(to_) ? "bf16" : "f32")
         << (to_.precision == "auto" && !trains_in_bf16(to_) ? " (train.precision auto: this CPU lacks AVX512-BF16)"
                                                             : "")
         << std::endl;
  // The best model's validation, when an earlier run of this training had it.
  const fs::path metrics_path = dir_ / "metrics.jsonl";
  batches_per_epoch_ = batcher_.epoch_batches(1).size();
  if (!writer_) return;
  if (fs::exists(metrics_path) || fs::is_symlink(metrics_path))
    truncate_metrics(metrics_path.string(), state_.step);  // validations after the checkpoint run again
  if (state_.best_step >= 0 && fs::exists(metrics_path))
    for (const auto& row : read_metrics(metrics_path.string()))
      if (row.step == state_.best_step) best_row_ = row;
  metrics_.open(metrics_path, std::ios::app);
  if (!metrics_) throw UserError(metrics_path.string() + ": cannot write the validation log");
}

double TrainingRun::lr_at(std::int64_t step) const { return train::lr_at(to_, state_.lr, step); }

void TrainingRun::save_checkpoint() {
  state_.epoch = batcher_.position().epoch;
  state_.batch = batcher_.position().batch;
  state_.rng = rng_.state();
  if (!writer_) return;
  train::save_checkpoint(ckpt_path_, mf_, network_.params, *network_.optimizer, state_, averages());
  // Keep the last train.keep_last checkpoints as checkpoint.<step>.gckpt: hard links, free,
  // since every save renames a new file into place.
  const std::string numbered = numbered_checkpoint_path(dir_.string(), state_.step);
  std::error_code ec;
  fs::remove(numbered, ec);
  fs::create_hard_link(ckpt_path_, numbered, ec);
  if (ec) fs::copy_file(ckpt_path_, numbered, fs::copy_options::overwrite_existing, ec);
  const auto kept = numbered_checkpoints(dir_.string());
  for (std::size_t i = 0; i + static_cast<std::size_t>(to_.keep_last) < kept.size(); ++i)
    fs::remove(kept[i].second, ec);
}

// The checkpoint holds everything the next update needs, so a rerun resumes from this step
// and trains the same model as a run that was never stopped. A rerun's first step is the next
// update, so a validation this step is due goes first: at every train.valid_every (run() did it
// before calling) and at the last step, whose final validation a rerun taking no step would skip.
void TrainingRun::stop_for_signal(bool checkpointed) {
  if (!checkpointed) {
    if (!limit_reached().empty()) validate_and_keep_best();
    save_checkpoint();
  }
  log_ << "train: stopped by " << (stop_signal_ == SIGINT ? "SIGINT" : "SIGTERM") << " after step " << state_.step
       << "; checkpoint saved (" << ckpt_path_ << "): run the same command to resume" << std::endl;
  throw Interrupted(stop_signal_);
}

void TrainingRun::validate_and_keep_best() {
  if (average_) average_->swap_with(network_.params);  // validated and saved: the average
  keep_best();
  if (average_) average_->swap_with(network_.params);
}

void TrainingRun::keep_best() {
  if (!has_valid_) {
    if (writer_) model::save_model(best_path_, mf_, network_.params);  // without validation data the latest is the best
    state_.best_step = state_.step;
    return;
  }
  const auto v = validate(network_.workers, valid_, data_.tgt, s_);
  const double score = metric_value(v, to_.valid_metric);
  const bool improved = state_.best_step < 0 || score > state_.best_score;
  bool decayed = false;
  if (improved) {
    state_.best_score = score;
    state_.best_step = state_.step;
    state_.stalls = state_.lr_stalls = 0;
    if (writer_) model::save_model(best_path_, mf_, network_.params);
  } else {
    ++state_.stalls;
    if (to_.lr_schedule == "plateau" && ++state_.lr_stalls >= to_.lr_patience) {
      state_.lr *= to_.lr_decay;
      state_.lr_stalls = 0;
      decayed = true;
    }
  }
  last_valid_ = "ce " + fixed(v.ce, 3) + " ppl " + fixed(v.ppl, 2) + " bleu " + fixed(v.bleu, 2) + " chrf " +
                fixed(v.chrf, 2) + (improved ? " (best)" : " (best at step " + std::to_string(state_.best_step) + ")");
  log_ << "train: step " << state_.step << " validation: " << last_valid_ << std::endl;
  if (decayed)  // after the validation line it comes from
    log_ << "train: validation " << to_.valid_metric << " did not improve; learning rate now "
         << fixed_exp(state_.lr, 2) << std::endl;
  const MetricsRow row{
      state_.step,
      batcher_.position().epoch,
      state_.tokens_since_valid ? state_.loss_since_valid / static_cast<double>(state_.tokens_since_valid) : 0.0,
      v.ce,
      v.ppl,
      v.bleu,
      v.chrf,
      lr_at(state_.step),
      state_.elapsed_seconds};
  if (writer_) write_metrics_row(metrics_, row);
  if (improved) best_row_ = row;
  state_.loss_since_valid = 0;
  state_.tokens_since_valid = 0;
}

// Why training stops now, or "" to go on. Patience is read from the state, so a rerun of a
// run that stopped early takes no step either.
std::string TrainingRun::limit_reached() const {
  if (state_.stalls >= to_.patience)
    return "no improvement of validation " + to_.valid_metric + " in " + std::to_string(to_.patience) + " validations";
  if (to_.epochs > 0 && batcher_.position().epoch > to_.epochs) return counted(to_.epochs, "epoch") + " done";
  if (to_.max_steps > 0 && state_.step >= to_.max_steps) return counted(to_.max_steps, "step") + " done";
  if (to_.max_minutes > 0 && state_.elapsed_seconds >= to_.max_minutes * 60)
    return "time limit of " + fixed_g(to_.max_minutes) + " minutes reached";
  return "";
}

void TrainingRun::update() {
  const auto t0 = Clock::now();  // the gradients are zero: the last step consumed them
  nn::LossSum step{};
  for (int a = 0; a < to_.accumulate; ++a) {
    const text::Batch b = batcher_.next();
    const float scale = 1.0f / static_cast<float>(b.target_tokens * to_.accumulate);
    const auto loss = network_.workers.train_batch(data_.corpus, b, rng_, scale, state_.step);
    step.tokens += loss.tokens;
    step.nll += loss.nll;
  }
  network_.workers.sum_across_ranks(step);  // mpirun: the job's gradients on every rank
  const std::int64_t step_tokens = step.tokens;
  const double step_loss = step.nll;
  const double grad_norm = nn::grad_norm(network_.params);
  if (!std::isfinite(step_loss) || !std::isfinite(grad_norm))  // nothing of this step is applied or saved
    throw UserError("training diverged at step " + std::to_string(state_.step + 1) + " (loss " + fixed_g(step_loss) +
                    ", gradient norm " + fixed_g(grad_norm) + "); lower train.lr or set train.clip_norm, then run " +
                    "again: it resumes from the last checkpoint, which holds no such step");
  ++state_.step;
  network_.optimizer->step(network_.params, static_cast<float>(lr_at(state_.step)),
                           nn::clip_scale(grad_norm, to_.clip_norm), average_.get());
  // Rank 0's clock and signal: time limits and a stop signal end every rank at the same update.
  double shared[2] = {std::chrono::duration<double>(Clock::now() - t0).count(),
                      static_cast<double>(StopSignals::received())};
  network_.workers.comm().broadcast(shared, 2);
  const double dt = shared[0];
  stop_signal_ = static_cast<int>(shared[1]);
  state_.elapsed_seconds += dt;
  state_.target_tokens += step_tokens;
  window_loss_ += step_loss;
  window_tokens_ += step_tokens;
  state_.loss_since_valid += step_loss;
  state_.tokens_since_valid += step_tokens;
  window_seconds_ += dt;
}

void TrainingRun::report_progress() {
  const std::size_t batches_per_epoch = batches_per_epoch_;
  const double sec_per_step = window_seconds_ / 20;
  double eta = 1e18;
  if (to_.max_steps > 0) eta = std::min(eta, static_cast<double>(to_.max_steps - state_.step) * sec_per_step);
  if (to_.epochs > 0) {
    const double left =
        static_cast<double>(to_.epochs - batcher_.position().epoch) * batches_per_epoch +
        static_cast<double>(batches_per_epoch - std::min<std::uint64_t>(batcher_.position().batch, batches_per_epoch));
    eta = std::min(eta, left / to_.accumulate * sec_per_step);
  }
  if (to_.max_minutes > 0) eta = std::min(eta, to_.max_minutes * 60 - state_.elapsed_seconds);
  log_ << "train: epoch " << batcher_.position().epoch << " step " << state_.step << " | loss "
       << fixed(window_loss_ / static_cast<double>(std::max<std::int64_t>(1, window_tokens_)), 3) << " | "
       << fixed(static_cast<double>(window_tokens_) / window_seconds_, 0) << " tok/s | lr "
       << fixed_exp(lr_at(state_.step), 2)
       << (to_.teacher_forcing < 1 ? " | tf " + fixed(teacher_forcing_at(to_, state_.step), 2) : std::string())
       << " | ETA " << (eta < 1e17 ? duration_text(eta) : "?") << " | valid " << last_valid_ << std::endl;
  window_loss_ = window_seconds_ = 0;
  window_tokens_ = 0;
}

double TrainingRun::epochs_done() const {
  const std::size_t batches_per_epoch = batches_per_epoch_;
  return static_cast<double>(batcher_.position().epoch - 1) +
         static_cast<double>(batcher_.position().batch) /
             static_cast<double>(std::max<std::size_t>(1, batches_per_epoch));
}

// Hands the heap's free pages back to the system (glibc's malloc_trim; elsewhere nothing).
// Validation and checkpoints allocate and free large buffers, and the freed pages stayed
// resident: best-en-fr's peak RSS crept from 562 MB after its first validation to 621 MB
// after its 37th. Over 2,600 of its updates: 587,728 kB and rising without this, 549,544 kB
// and flat with it. It costs 11-12 ms a call on quick-en-de, beside a validation's seconds.
void return_free_heap() {
#ifdef __GLIBC__
  malloc_trim(0);
#endif
}

TrainOutcome TrainingRun::run() {
  start_or_resume();
  const auto start = Clock::now();
  const double elapsed_before = state_.elapsed_seconds;
  const std::int64_t steps_at_start = state_.step;
  const StopSignals signals;  // from here on, Ctrl-C stops after a checkpoint
  for (;;) {
    why_ = limit_reached();
    if (!why_.empty()) break;
    update();
    if (state_.step % 20 == 0) report_progress();
    const bool validation_step = state_.step % to_.valid_every == 0;
    if (validation_step) {
      validate_and_keep_best();
      save_checkpoint();
      return_free_heap();
    }
    if (stop_signal_ != 0) stop_for_signal(validation_step);
  }
  // Final validation and checkpoint, unless the last step already had them. A rerun of a
  // finished training takes no step and changes nothing.
  if (state_.step != steps_at_start && state_.step % to_.valid_every != 0) {
    validate_and_keep_best();
    save_checkpoint();
  }
  const double wall = std::chrono::duration<double>(Clock::now() - start).count();
  log_ << "train: finished: " << why_ << "; " << counted(state_.step, "step") << ", " << state_.target_tokens
       << " target tokens, " << duration_text(state_.elapsed_seconds - elapsed_before) << " training this run ("
       << duration_text(wall) << " wall); best " << to_.valid_metric << " "
       << fixed(to_.valid_metric == "ce" ? -state_.best_score : state_.best_score, 2) << " at step " << state_.best_step
       << std::endl;
  return outcome();
}

TrainOutcome TrainingRun::outcome() const {
  TrainOutcome o;
  o.best_model = best_path_;
  o.checkpoint = ckpt_path_;
  o.steps = state_.step;
  o.best_score = state_.best_score;
  o.best_step = state_.best_step;
  o.best_validation = best_row_;
  o.parameters = network_.params.num_values();
  o.filter = data_.filter;
  o.data = data_.report;
  o.valid_pairs = valid_.references.size();
  o.src_vocab = data_.src.vocab_size();
  o.tgt_vocab = data_.tgt.vocab_size();
  o.epochs_done = epochs_done();
  o.target_tokens = state_.target_tokens;
  o.train_seconds = state_.elapsed_seconds;
  o.stop_reason = why_;
  return o;
}

}  // namespace

TrainOutcome train(const TrainSetup& setup, std::ostream& log) {
  dist::Comm& comm = dist::job();
  if (comm.single()) return TrainingRun(setup, log).run();
  // Under mpirun rank 0 alone speaks; the others train silently beside it.
  std::ostream quiet(nullptr);  // discards what it is given
  if (comm.rank() == 0)
    log << "train: " << comm.size() << " processes (mpirun), " << setup.train.threads << " thread(s) each" << std::endl;
  return TrainingRun(setup, comm.rank() == 0 ? log : quiet).run();
}

}  // namespace gloss::train
