#include "gloss/train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <ostream>

#include "gloss/decode/search.h"
#include "gloss/eval/bleu.h"
#include "gloss/eval/chrf.h"
#include "gloss/nn/optimizer.h"
#include "gloss/tensor/compute.h"
#include "gloss/tensor/kernels.h"
#include "gloss/text/corpus.h"
#include "gloss/text/subword.h"
#include "gloss/train/checkpoint.h"
#include "gloss/util/atomic_file.h"
#include "gloss/util/error.h"
#include "gloss/util/format.h"
#include "gloss/util/line_reader.h"

namespace fs = std::filesystem;

namespace gloss::train {
namespace {

using Clock = std::chrono::steady_clock;

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}


struct Validation {
  double ce = 0, ppl = 0, bleu = 0, chrf = 0;
};

// The validation set: encoded pairs for cross-entropy, sources and raw references for BLEU.
struct ValidSet {
  text::EncodedCorpus pairs;
  std::vector<std::vector<int>> sources;
  std::vector<std::string> references;
};

ValidSet load_valid(const text::DataOptions& d, const text::SubwordModel& src, const text::SubwordModel& tgt, int threads) {
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

Validation validate(Workers& workers, const ValidSet& valid, const text::SubwordModel& tgt_sp,
                    const recipe::Recipe& r) {
  Validation out;
  // Cross-entropy (no label smoothing, no dropout), batches in corpus order.
  double nll = 0;
  std::int64_t tokens = 0;
  // Each worker takes whole batches: a training-sized share of decode.batch_size each, so
  // that validation needs no more memory than training.
  const std::size_t bs = static_cast<std::size_t>(std::max(1, r.decode.batch_size / workers.size()));
  // Batches of sentences of similar length (less padding: less time and memory).
  std::vector<std::uint32_t> by_length(valid.pairs.size());
  std::iota(by_length.begin(), by_length.end(), 0U);
  std::stable_sort(by_length.begin(), by_length.end(), [&](std::uint32_t a, std::uint32_t b) {
    return valid.pairs.tgt_len(a) != valid.pairs.tgt_len(b) ? valid.pairs.tgt_len(a) < valid.pairs.tgt_len(b)
                                                           : valid.pairs.src_len(a) < valid.pairs.src_len(b);
  });
  const std::size_t ce_batches = (by_length.size() + bs - 1) / bs;
  std::vector<double> batch_nll(ce_batches, 0.0);
  std::vector<std::int64_t> batch_tokens(ce_batches, 0);
  workers.for_each(ce_batches, [&](model::Seq2Seq& net, std::size_t k) {
    const std::size_t start = k * bs;
    const std::vector<std::uint32_t> ids(by_length.begin() + static_cast<std::ptrdiff_t>(start),
                                         by_length.begin() + static_cast<std::ptrdiff_t>(std::min(by_length.size(), start + bs)));
    const auto b = text::make_batch(valid.pairs, ids);
    for (const auto& part : text::split_batch(valid.pairs, b, r.train.split_positions)) {  // memory as in training
      const auto loss = net.forward_backward(batch_view(part), 0.0f, nullptr, false);
      batch_nll[k] += loss.nll;
      batch_tokens[k] += loss.tokens;
    }
  });
  for (std::size_t k = 0; k < ce_batches; ++k) {  // summed in batch order, whoever ran them
    nll += batch_nll[k];
    tokens += batch_tokens[k];
  }
  out.ce = tokens ? nll / static_cast<double>(tokens) : 0.0;
  out.ppl = std::exp(out.ce);
  // Greedy translations, scored exactly as sacreBLEU would.
  eval::Bleu bleu;
  eval::Chrf chrf;
  eval::BleuStats bleu_stats;
  eval::Stats chrf_stats(chrf.num_stats(), 0.0);
  std::vector<std::size_t> src_order(valid.sources.size());
  std::iota(src_order.begin(), src_order.end(), std::size_t{0});
  std::stable_sort(src_order.begin(), src_order.end(),
                   [&](std::size_t a, std::size_t b) { return valid.sources[a].size() < valid.sources[b].size(); });
  std::vector<std::string> hyps(valid.sources.size());
  workers.for_each((src_order.size() + bs - 1) / bs, [&](model::Seq2Seq& net, std::size_t k) {
    const std::size_t start = k * bs, end = std::min(src_order.size(), start + bs);
    std::vector<std::size_t> idx;
    for (std::size_t j = start; j < end; ++j)
      if (!valid.sources[src_order[j]].empty()) idx.push_back(src_order[j]);
    if (idx.empty()) return;
    const int N = static_cast<int>(idx.size());
    int S = 0;
    for (auto i : idx) S = std::max(S, static_cast<int>(valid.sources[i].size()));
    std::vector<std::int32_t> src(static_cast<std::size_t>(S) * N, text::kPadId), len(static_cast<std::size_t>(N));
    std::vector<int> max_len(static_cast<std::size_t>(N));
    for (int n = 0; n < N; ++n) {
      const auto& s = valid.sources[idx[static_cast<std::size_t>(n)]];
      len[static_cast<std::size_t>(n)] = static_cast<std::int32_t>(s.size());
      for (std::size_t t = 0; t < s.size(); ++t) src[t * static_cast<std::size_t>(N) + static_cast<std::size_t>(n)] = s[t];
      max_len[static_cast<std::size_t>(n)] =
          static_cast<int>(r.decode.max_len_ratio * static_cast<double>(s.size())) + r.decode.max_len_add;
    }
    const model::BatchView view{N, S, 0, src.data(), len.data(), nullptr, nullptr};
    const auto out_ids = decode::greedy_search(net, view, max_len);
    for (int n = 0; n < N; ++n) {
      const auto& ids = out_ids[static_cast<std::size_t>(n)];
      hyps[idx[static_cast<std::size_t>(n)]] = tgt_sp.decode(std::vector<int>(ids.begin(), ids.end()));
    }
  });
  for (std::size_t i = 0; i < hyps.size(); ++i) {  // in corpus order, as sacreBLEU sums
    bleu_stats += bleu.sentence_stats(hyps[i], {valid.references[i]});
    const auto c = chrf.sentence_stats(hyps[i], {valid.references[i]});
    for (std::size_t k = 0; k < c.size(); ++k) chrf_stats[k] += c[k];
  }
  out.bleu = bleu.score(bleu_stats).score;
  out.chrf = chrf.f_score(chrf_stats);
  return out;
}

double metric_value(const Validation& v, const std::string& metric) {
  if (metric == "bleu") return v.bleu;
  if (metric == "chrf") return v.chrf;
  return -v.ce;  // higher is better
}

}  // namespace

model::ModelConfig model_config(const recipe::ModelOptions& m, std::int64_t src_vocab, std::int64_t tgt_vocab) {
  model::ModelConfig c;
  c.cell = nn::parse_cell(m.cell);
  c.src_vocab = src_vocab;
  c.tgt_vocab = tgt_vocab;
  c.emb = m.emb_dim;
  c.enc_hidden = m.enc_hidden;
  c.enc_layers = m.enc_layers;
  c.bidirectional = m.bidirectional;
  c.dec_hidden = m.dec_hidden;
  c.att = m.att_dim;
  c.readout = m.readout;
  c.readout_dim = m.readout_dim;
  c.dec_init = m.dec_init;
  c.tie_target_embeddings = m.tie_target_embeddings;
  c.dropout_emb = static_cast<float>(m.dropout_emb);
  c.dropout_rnn = static_cast<float>(m.dropout_rnn);
  c.dropout_readout = static_cast<float>(m.dropout_readout);
  c.dec_layers = m.dec_layers;
  return c;
}

double teacher_forcing_at(const recipe::TrainOptions& t, std::int64_t step) {
  const double p0 = t.teacher_forcing, pm = std::min(t.teacher_forcing_min, t.teacher_forcing);
  const double s = static_cast<double>(step), k = t.teacher_forcing_steps;
  if (t.teacher_forcing_decay == "linear") return std::max(pm, p0 - (p0 - pm) * s / k);
  if (t.teacher_forcing_decay == "exponential") return pm + (p0 - pm) * std::pow(0.5, s / k);
  if (t.teacher_forcing_decay == "inverse_sigmoid") return pm + (p0 - pm) * k / (k + std::exp(std::min(700.0, s / k)));
  return p0;
}

void configure(model::Seq2Seq& net, const recipe::TrainOptions& t, int workers) {
  net.set_rnn_cache_bytes((static_cast<std::size_t>(t.rnn_cache_mb) << 20) / static_cast<std::size_t>(std::max(1, workers)));
}

Workers::Workers(model::Seq2Seq& net, nn::ParameterSet& params, const model::ModelConfig& config,
                 const recipe::TrainOptions& t)
    : t_(t), params_(params) {
  const int n = t.parallel == "data" ? std::max(1, t.threads) : 1;
  nets_.push_back(&net);
  for (int w = 1; w < n; ++w) {
    replica_params_.push_back(std::make_unique<nn::ParameterSet>());
    replicas_.push_back(std::make_unique<model::Seq2Seq>(config, *replica_params_.back()));
    replica_params_.back()->share_values_of(params);
    replicas_.back()->share_backward_weights_of(net);
    nets_.push_back(replicas_.back().get());
  }
  for (auto* w : nets_) configure(*w, t, n);
}

void Workers::for_each(std::size_t tasks, const std::function<void(model::Seq2Seq&, std::size_t)>& task) {
  compute::run_workers(size(), tasks, [&](int w, std::size_t i) { task(*nets_[static_cast<std::size_t>(w)], i); });
}

Workers::~Workers() = default;

nn::LossSum Workers::train_batch(const text::EncodedCorpus& corpus, const text::Batch& batch, Rng& rng, float scale,
                                 std::int64_t step) {
  const int n = size();
  const auto tf = static_cast<float>(teacher_forcing_at(t_, step));
  const auto ls = static_cast<float>(t_.label_smoothing);
  for (auto* w : nets_) w->set_teacher_forcing(tf);
  const auto parts = text::split_batch(corpus, batch, t_.split_positions, n);
  auto add = [](nn::LossSum& into, const nn::LossSum& l) {
    into.loss += l.loss;
    into.nll += l.nll;
    into.tokens += l.tokens;
  };
  nn::LossSum total;
  if (n == 1) {
    for (const auto& part : parts) add(total, nets_[0]->forward_backward(batch_view(part), ls, &rng, true, scale));
    return total;
  }
  // Each worker draws from a generator seeded from the run's: the same batches, seed and
  // workers give the same model, bit for bit.
  std::vector<Rng> rngs;
  for (int w = 0; w < n; ++w) rngs.emplace_back(rng.next());
  std::vector<nn::LossSum> losses(static_cast<std::size_t>(n));
  nets_[0]->prepare_backward();  // the replicas read its reordered weights
  compute::run_workers(n, static_cast<std::size_t>(n), [&](int, std::size_t w) {  // task w: worker w's parts
    for (std::size_t i = w; i < parts.size(); i += static_cast<std::size_t>(n))
      if (parts[i].size > 0)
        add(losses[w], nets_[w]->forward_backward(batch_view(parts[i]), ls, &rngs[w], true, scale));
  });
  for (const auto& l : losses) add(total, l);
  // The replicas' gradients into net's, in worker order; theirs start the next batch at zero.
  for (const auto& rp : replica_params_) {
    const auto& mine = params_.all();
    const auto& theirs = rp->all();
    for (std::size_t i = 0; i < mine.size(); ++i)
      kernels::move_add(mine[i]->grad.size(), theirs[i]->grad.data(), mine[i]->grad.data());
  }
  return total;
}

model::BatchView batch_view(const text::Batch& b) {
  return {b.size, b.src_len, b.tgt_len, b.src.data(), b.src_lengths.data(), b.tgt_in.data(), b.tgt_out.data()};
}

text::BatchOptions batch_options(const recipe::TrainOptions& t) {
  text::BatchOptions bo;
  bo.by_tokens = t.batch_by == "tokens";
  bo.batch_size = t.batch_size;
  bo.batch_tokens = t.batch_tokens;
  bo.pool_batches = t.pool_batches;
  bo.seed = static_cast<std::uint64_t>(t.seed);
  return bo;
}

TrainOutcome train(const recipe::LoadedRecipe& loaded, std::ostream& log) {
  const recipe::Recipe& r = loaded.recipe;
  const recipe::TrainOptions& to = r.train;
  compute::set_threads(to.threads);
  const fs::path dir(r.run.workdir);
  fs::create_directories(dir);
  const std::string ckpt_path = (dir / "checkpoint.gckpt").string(), best_path = (dir / "model.best.gloss").string();

  // Data and subword models.
  text::check_parallel(r.data.train_src, r.data.train_tgt);
  const bool has_valid = !r.data.valid_src.empty();
  if (has_valid) text::check_parallel(r.data.valid_src, r.data.valid_tgt);
  const auto paths = text::prepare_subword_models(r.data, r.subword, (dir / "spm").string(), log);
  const auto src_sp = text::SubwordModel::load(paths.src), tgt_sp = text::SubwordModel::load(paths.tgt);
  text::FilterReport report;
  const auto filter = text::training_filter(r.data);
  const auto corpus = text::encode_parallel(r.data.train_src, r.data.train_tgt, src_sp, tgt_sp, filter, to.threads, &report);
  log << "train: data: " << report.summary(filter) << std::endl;
  text::Batcher batcher(corpus, batch_options(to));
  ValidSet valid;
  if (has_valid) valid = load_valid(r.data, src_sp, tgt_sp, to.threads);

  // Model, optimiser, state: fresh, or from the checkpoint.
  model::ModelFile mf;
  mf.config = model_config(r.model, src_sp.vocab_size(), tgt_sp.vocab_size());
  mf.src_spm = src_sp.bytes();
  mf.tgt_spm = tgt_sp.bytes();
  mf.recipe = recipe::show(loaded);
  nn::ParameterSet params;
  model::Seq2Seq net(mf.config, params);
  Workers workers(net, params, mf.config, to);
  auto optimizer = nn::make_optimizer(to.optimizer, params);
  TrainingState state;
  Rng rng(static_cast<std::uint64_t>(to.seed));
  if (fs::exists(ckpt_path)) {
    const model::ModelFile old = peek_checkpoint(ckpt_path);
    if (old.src_spm != mf.src_spm || old.tgt_spm != mf.tgt_spm)
      throw InputError(ckpt_path, 0, "was trained with other subword models; delete it or choose another run.workdir");
    load_checkpoint(ckpt_path, params, *optimizer, state);
    rng.set_state(state.rng);
    batcher.restore({state.epoch, state.batch});
    log << "train: resuming from " << ckpt_path << " at step " << state.step << " (epoch " << state.epoch << ")" << std::endl;
  } else {
    nn::init_parameters(params, to.init, static_cast<float>(to.init_scale), rng);
    state.lr = to.lr;
  }
  log << "train: " << params.num_values() << " parameters; " << corpus.size() << " training pairs; workdir " << dir.string()
      << std::endl;

  auto lr_at = [&](std::int64_t step) {
    double lr = to.lr_schedule == "plateau" ? state.lr : to.lr;
    const double s = static_cast<double>(step);
    if (to.lr_schedule == "inverse_sqrt" && to.warmup_steps > 0) {
      lr *= std::min(s / to.warmup_steps, std::sqrt(to.warmup_steps / std::max(1.0, s)));
    } else if (to.warmup_steps > 0 && s < to.warmup_steps) {
      lr *= s / to.warmup_steps;
    }
    return lr;
  };

  std::ofstream metrics(dir / "metrics.jsonl", std::ios::app);
  const auto start = Clock::now();
  const double elapsed_before = state.elapsed_seconds;
  double window_loss = 0, window_seconds = 0, since_valid_loss = 0;
  std::int64_t window_tokens = 0, since_valid_tokens = 0;
  std::string last_valid = "none yet";
  bool stop = false;
  std::string why = "";
  auto checkpoint = [&]() {
    state.epoch = batcher.position().epoch;
    state.batch = batcher.position().batch;
    state.rng = rng.state();
    save_checkpoint(ckpt_path, mf, params, *optimizer, state);
    // Keep the last train.keep_last checkpoints as checkpoint.<step>.gckpt: hard links, free,
    // since every save renames a new file into place.
    const fs::path numbered = dir / ("checkpoint." + std::to_string(state.step) + ".gckpt");
    std::error_code ec;
    fs::remove(numbered, ec);
    fs::create_hard_link(ckpt_path, numbered, ec);
    if (ec) fs::copy_file(ckpt_path, numbered, fs::copy_options::overwrite_existing, ec);
    std::vector<std::pair<std::int64_t, fs::path>> kept;
    for (const auto& entry : fs::directory_iterator(dir)) {
      const std::string name = entry.path().filename().string();
      if (name.rfind("checkpoint.", 0) != 0 || name.size() < 18 || name.compare(name.size() - 6, 6, ".gckpt") != 0) continue;
      const std::string middle = name.substr(11, name.size() - 17);
      if (middle.empty() || middle.find_first_not_of("0123456789") != std::string::npos) continue;
      kept.emplace_back(std::stoll(middle), entry.path());
    }
    std::sort(kept.begin(), kept.end());
    for (std::size_t i = 0; i + static_cast<std::size_t>(to.keep_last) < kept.size(); ++i) fs::remove(kept[i].second, ec);
  };
  auto run_validation = [&]() {
    if (!has_valid) {
      model::save_model(best_path, mf, params);  // without validation data the latest model is the best
      state.best_step = state.step;
      return;
    }
    const auto v = validate(workers, valid, tgt_sp, r);
    const double score = metric_value(v, to.valid_metric);
    const bool improved = state.best_step < 0 || score > state.best_score;
    if (improved) {
      state.best_score = score;
      state.best_step = state.step;
      state.stalls = state.lr_stalls = 0;
      model::save_model(best_path, mf, params);
    } else {
      ++state.stalls;
      if (to.lr_schedule == "plateau" && ++state.lr_stalls >= to.lr_patience) {
        state.lr *= to.lr_decay;
        state.lr_stalls = 0;
        log << "train: validation " << to.valid_metric << " did not improve; learning rate now " << fmt("%.2e", state.lr)
            << std::endl;
      }
    }
    last_valid = "ce " + fmt("%.3f", v.ce) + " ppl " + fmt("%.2f", v.ppl) + " bleu " + fmt("%.2f", v.bleu) + " chrf " +
                 fmt("%.2f", v.chrf) + (improved ? " (best)" : " (best at step " + std::to_string(state.best_step) + ")");
    log << "train: step " << state.step << " validation: " << last_valid << std::endl;
    metrics << "{\"step\": " << state.step << ", \"epoch\": " << batcher.position().epoch << ", \"train_loss\": "
            << (since_valid_tokens ? since_valid_loss / static_cast<double>(since_valid_tokens) : 0.0)
            << ", \"valid_ce\": " << v.ce
            << ", \"valid_ppl\": " << v.ppl << ", \"valid_bleu\": " << v.bleu << ", \"valid_chrf\": " << v.chrf
            << ", \"lr\": " << lr_at(state.step) << ", \"elapsed_s\": " << state.elapsed_seconds << "}" << std::endl;
    since_valid_loss = 0;
    since_valid_tokens = 0;
    if (state.stalls >= to.patience) {
      stop = true;
      why = "no improvement of validation " + to.valid_metric + " in " + std::to_string(to.patience) + " validations";
    }
  };

  const std::size_t batches_per_epoch = batcher.epoch_batches(1).size();
  const std::int64_t steps_at_start = state.step;
  while (!stop) {
    if (to.epochs > 0 && batcher.position().epoch > to.epochs) {
      why = std::to_string(to.epochs) + " epochs done";
      break;
    }
    if (to.max_steps > 0 && state.step >= to.max_steps) {
      why = std::to_string(to.max_steps) + " steps done";
      break;
    }
    if (to.max_minutes > 0 && state.elapsed_seconds >= to.max_minutes * 60) {
      why = "time limit of " + fmt("%g", to.max_minutes) + " minutes reached";
      break;
    }
    const auto t0 = Clock::now();
    params.zero_grad();
    std::int64_t step_tokens = 0;
    double step_loss = 0;
    for (int a = 0; a < to.accumulate; ++a) {
      const text::Batch b = batcher.next();
      const float scale = 1.0f / static_cast<float>(b.target_tokens * to.accumulate);
      const auto loss = workers.train_batch(corpus, b, rng, scale, state.step);
      step_tokens += loss.tokens;
      step_loss += loss.nll;
    }
    nn::clip_grad_norm(params, to.clip_norm);
    ++state.step;
    optimizer->step(params, static_cast<float>(lr_at(state.step)));
    const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
    state.elapsed_seconds += dt;
    state.target_tokens += step_tokens;
    window_loss += step_loss;
    window_tokens += step_tokens;
    since_valid_loss += step_loss;
    since_valid_tokens += step_tokens;
    window_seconds += dt;
    if (state.step % 20 == 0) {
      const double sec_per_step = window_seconds / 20;
      double eta = 1e18;
      if (to.max_steps > 0) eta = std::min(eta, static_cast<double>(to.max_steps - state.step) * sec_per_step);
      if (to.epochs > 0) {
        const double left = static_cast<double>(to.epochs - batcher.position().epoch) * batches_per_epoch +
                            static_cast<double>(batches_per_epoch - std::min<std::uint64_t>(batcher.position().batch, batches_per_epoch));
        eta = std::min(eta, left / to.accumulate * sec_per_step);
      }
      if (to.max_minutes > 0) eta = std::min(eta, to.max_minutes * 60 - state.elapsed_seconds);
      log << "train: epoch " << batcher.position().epoch << " step " << state.step << " | loss "
          << fmt("%.3f", window_loss / static_cast<double>(std::max<std::int64_t>(1, window_tokens))) << " | "
          << fmt("%.0f", static_cast<double>(window_tokens) / window_seconds) << " tok/s | lr " << fmt("%.2e", lr_at(state.step))
          << (to.teacher_forcing < 1 ? " | tf " + fmt("%.2f", teacher_forcing_at(to, state.step)) : std::string())
          << " | ETA " << (eta < 1e17 ? duration_text(eta) : "?") << " | valid " << last_valid << std::endl;
      window_loss = window_seconds = 0;
      window_tokens = 0;
    }
    if (state.step % to.valid_every == 0) {
      run_validation();
      checkpoint();
    }
  }
  // Final validation and checkpoint, unless the last step already had them. A rerun of a
  // finished training takes no step and changes nothing.
  if (state.step != steps_at_start && state.step % to.valid_every != 0) {
    run_validation();
    checkpoint();
  }
  const double wall = std::chrono::duration<double>(Clock::now() - start).count();
  log << "train: finished: " << why << "; " << state.step << " steps, " << state.target_tokens << " target tokens, "
      << duration_text(state.elapsed_seconds - elapsed_before) << " training this run (" << duration_text(wall) << " wall); best "
      << to.valid_metric << " " << fmt("%.2f", to.valid_metric == "ce" ? -state.best_score : state.best_score) << " at step "
      << state.best_step << std::endl;
  TrainOutcome outcome;
  outcome.best_model = best_path;
  outcome.checkpoint = ckpt_path;
  outcome.steps = state.step;
  outcome.best_score = state.best_score;
  outcome.best_step = state.best_step;
  outcome.parameters = params.num_values();
  outcome.pairs_read = report.read;
  outcome.pairs_kept = report.kept;
  outcome.valid_pairs = valid.references.size();
  outcome.data_summary = report.summary(filter);
  outcome.src_vocab = src_sp.vocab_size();
  outcome.tgt_vocab = tgt_sp.vocab_size();
  outcome.epoch = static_cast<int>(state.epoch);
  outcome.epochs_done = static_cast<double>(batcher.position().epoch - 1) +
                        static_cast<double>(batcher.position().batch) / static_cast<double>(std::max<std::size_t>(1, batches_per_epoch));
  outcome.target_tokens = state.target_tokens;
  outcome.train_seconds = state.elapsed_seconds;
  outcome.stop_reason = why;
  return outcome;
}

}  // namespace gloss::train
