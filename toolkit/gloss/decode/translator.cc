#include "gloss/decode/translator.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <ostream>

#include "gloss/model/model_file.h"
#include "gloss/tensor/compute.h"
#include "gloss/tensor/tensor.h"
#include "gloss/util/error.h"

namespace gloss::decode {

void validate(const TranslateOptions& o) {
  const SearchOptions& s = o.search;
  if (s.beam_size < 1 || s.beam_size > 1000)
    throw ConfigError("--beam-size must be between 1 and 1000 (got " + std::to_string(s.beam_size) + ")");
  if (s.n_best < 1 || s.n_best > s.beam_size)
    throw ConfigError("--n-best must be between 1 and --beam-size (got " + std::to_string(s.n_best) + ")");
  if (s.min_length < 0 || s.min_length > 10000) throw ConfigError("--min-length must be between 0 and 10000");
  if (s.stop_after < 1 || s.stop_after > s.beam_size)
    throw ConfigError("--stop-after must be between 1 and --beam-size (got " + std::to_string(s.stop_after) + ")");
  if (o.batch_size < 1 || o.batch_size > 100000) throw ConfigError("--batch-size must be between 1 and 100000");
  if (!(o.max_len_ratio > 0 && o.max_len_ratio <= 100)) throw ConfigError("--max-len-ratio must be in (0, 100]");
  if (o.max_len_add < 0 || o.max_len_add > 10000) throw ConfigError("--max-len-add must be between 0 and 10000");
  if (o.max_batch_tokens < 0) throw ConfigError("--max-batch-tokens must be >= 0 (0: no limit)");
  if (!std::isfinite(s.length_penalty) || s.length_penalty < 0 || s.length_penalty > 10)
    throw ConfigError("--length-penalty must be between 0 and 10");
  if (o.parallel != "data" && o.parallel != "ops")
    throw ConfigError("--parallel must be data or ops (got '" + o.parallel + "')");
  if (o.precision != "f32" && o.precision != "bf16" && o.precision != "auto")
    throw ConfigError("--precision must be f32, bf16 or auto (got '" + o.precision + "')");
  if (o.precision == "bf16" && !compute::has_bf16())
    throw ConfigError("--precision bf16 needs a CPU with AVX512-BF16 instructions, which this one lacks; use f32");
}

SourceBatch make_source_batch(const std::vector<std::vector<int>>& src, const std::vector<std::size_t>& idx,
                              const TranslateOptions& o) {
  SourceBatch b;
  b.N = static_cast<int>(idx.size());
  for (auto i : idx) b.S = std::max(b.S, static_cast<int>(src[i].size()));
  const auto N = static_cast<std::size_t>(b.N);
  b.ids.assign(static_cast<std::size_t>(b.S) * N, text::kPadId);
  b.lengths.resize(N);
  b.max_len.resize(N);
  for (std::size_t k = 0; k < N; ++k) {
    const auto& s = src[idx[k]];
    b.lengths[k] = static_cast<std::int32_t>(s.size());
    for (std::size_t t = 0; t < s.size(); ++t) b.ids[t * N + k] = s[t];
    b.max_len[k] = max_output_length(o, s.size());
  }
  return b;
}

Translator::Translator(const std::vector<std::string>& model_paths) {
  if (model_paths.empty()) throw ConfigError("give at least one model file (-m)");
  set_huge_pages(true);  // before the weights and every search buffer are allocated
  std::string src_spm, tgt_spm;
  for (const auto& path : model_paths) {
    auto member = std::make_unique<Member>();
    const auto mf = model::load_any(path, [&](const model::ModelFile& file) -> nn::ParameterSet& {
      member->params.release_grads();  // translation computes none
      member->model = std::make_unique<model::Seq2Seq>(file.config, member->params);
      return member->params;
    });
    if (models_.empty()) {
      first_path_ = path;
      stored_shortlist_ = mf.shortlist;
      src_spm = mf.src_spm;
      tgt_spm = mf.tgt_spm;
      src_ = text::SubwordModel::from_bytes(mf.src_spm, path + " (source subwords)");
      tgt_ = text::SubwordModel::from_bytes(mf.tgt_spm, path + " (target subwords)");
    } else if (mf.src_spm != src_spm || mf.tgt_spm != tgt_spm) {
      throw InputError(
          path, 0,
          "uses other subword models than " + model_paths[0] + "; an ensemble needs models trained with the same ones");
    }
    models_.push_back(std::move(member));
    configs_.push_back(mf.config);
  }
}

void Translator::use_shortlist(const std::string& choice) {
  const auto& config = models_[0]->model->config();
  const int src_vocab = static_cast<int>(config.src_vocab), tgt_vocab = static_cast<int>(config.tgt_vocab);
  shortlist_.reset();
  if (choice.empty() || choice == "none") return;
  if (choice != "model") {
    shortlist_ = std::make_unique<Shortlist>(Shortlist::load(choice, src_vocab, tgt_vocab));
  } else if (!stored_shortlist_.empty()) {
    shortlist_ = std::make_unique<Shortlist>(
        Shortlist::parse(stored_shortlist_, first_path_ + " (its shortlist)", src_vocab, tgt_vocab));
  }
}

std::string Translator::text(const Hypothesis& h) const {
  return tgt_.decode(std::vector<int>(h.ids.begin(), h.ids.end()));
}

void Translator::translate_batch(Models& models, const std::vector<std::vector<int>>& src,
                                 const std::vector<std::size_t>& idx, const TranslateOptions& o,
                                 std::vector<Translation>& results) const {
  const int N = static_cast<int>(idx.size());
  const SourceBatch batch = make_source_batch(src, idx, o);
  const model::BatchView view = batch.view();
  // Lexical shortlist: each sentence's own list; the output layer computes their union.
  std::vector<std::vector<std::int32_t>> allowed;
  if (shortlist_) {
    std::vector<std::vector<std::int32_t>> lists;
    std::vector<std::int32_t> all;
    for (int k = 0; k < N; ++k) {
      lists.push_back(shortlist_->for_sentence(src[idx[static_cast<std::size_t>(k)]]));
      all.insert(all.end(), lists.back().begin(), lists.back().end());
    }
    std::sort(all.begin(), all.end());
    all.erase(std::unique(all.begin(), all.end()), all.end());
    for (const auto& list : lists) {
      std::vector<std::int32_t> cols;
      for (auto id : list)
        cols.push_back(static_cast<std::int32_t>(std::lower_bound(all.begin(), all.end(), id) - all.begin()));
      allowed.push_back(std::move(cols));
    }
    for (auto& m : models) m->model->set_output_subset(all);
  }
  const SearchOptions& s = o.search;
  const bool plain_greedy = !shortlist_ && models.size() == 1 && s.beam_size == 1 && s.n_best == 1 &&
                            s.coverage_penalty == 0 && s.min_length == 0 && s.stop_after == 1 && !s.word_scores &&
                            !s.attention;
  if (plain_greedy) {
    const auto g = greedy_search(*models[0]->model, view, batch.max_len);
    for (int k = 0; k < N; ++k)
      results[idx[static_cast<std::size_t>(k)]].hypotheses = {{g[static_cast<std::size_t>(k)], 0.0, 0.0, {}, {}}};
  } else {
    SearchOptions so = s;
    if (shortlist_) so.allowed = &allowed;
    std::vector<model::Seq2Seq*> ensemble;
    for (auto& m : models) ensemble.push_back(m->model.get());
    auto beams = beam_search(ensemble, view, batch.max_len, so);
    for (int k = 0; k < N; ++k)
      results[idx[static_cast<std::size_t>(k)]].hypotheses = std::move(beams[static_cast<std::size_t>(k)]);
  }
  if (shortlist_)
    for (auto& m : models) m->model->set_output_subset({});
}

std::vector<std::vector<std::size_t>> Translator::length_batches(const std::vector<std::vector<int>>& src,
                                                                 const TranslateOptions& o) {
  const std::size_t n = src.size();
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return src[a].size() > src[b].size(); });
  std::vector<std::vector<std::size_t>> batches;
  std::size_t pos = 0;
  while (pos < n && src[order[pos]].empty() == false) {
    const std::size_t end = std::min(n, pos + static_cast<std::size_t>(o.batch_size));
    std::vector<std::size_t> idx;
    // Longest first: the first sentence sets the padded length of the batch.
    const std::size_t padded = src[order[pos]].size();
    for (std::size_t k = pos; k < end && !src[order[k]].empty(); ++k) {
      if (o.max_batch_tokens > 0 && !idx.empty() &&
          (idx.size() + 1) * padded > static_cast<std::size_t>(o.max_batch_tokens))
        break;
      idx.push_back(order[k]);
    }
    pos += idx.size();
    batches.push_back(std::move(idx));
  }
  return batches;
}

void Translator::use_precision(const std::string& precision) {
  const bool bf16 = precision == "bf16" || (precision == "auto" && compute::has_bf16());
  if (bf16 == bf16_) return;
  bf16_ = bf16;
  for (auto& m : models_) m->model->set_bf16(bf16_);
  for (auto& r : replicas_)
    for (auto& m : r) m->model->set_bf16(bf16_);
}

void Translator::ensure_replicas(int count) {
  while (static_cast<int>(replicas_.size()) < count) {
    Models replica;
    for (std::size_t m = 0; m < models_.size(); ++m) {
      auto member = std::make_unique<Member>();
      member->params.release_grads();
      member->params.share_values_of(models_[m]->params);  // before building: no values of its own
      member->model = std::make_unique<model::Seq2Seq>(configs_[m], member->params);
      member->model->set_bf16(bf16_);
      replica.push_back(std::move(member));
    }
    replicas_.push_back(std::move(replica));
  }
}

std::vector<Translation> Translator::translate(const std::vector<std::string>& lines, const TranslateOptions& o,
                                               std::string_view source, std::size_t first_line, std::ostream& log) {
  const std::size_t n = lines.size();
  std::vector<Translation> results(n);
  std::vector<std::vector<int>> src(n);
  for (std::size_t i = 0; i < n; ++i) {
    src[i] = src_.encode(lines[i]);
    if (static_cast<int>(src[i].size()) > o.max_src_len) {
      log << "translate: warning: " << source << ":" << first_line + i << ": " << src[i].size()
          << " subwords; translating the first " << o.max_src_len << std::endl;
      src[i].resize(static_cast<std::size_t>(o.max_src_len));
    }
  }
  const auto batches = length_batches(src, o);
  use_precision(o.precision);
  // parallel = data: one batch per thread at a time, each thread alone inside it (no thread
  // waits for another within a search step). A batch's result does not depend on who runs it.
  const int workers = o.parallel == "data" ? std::min<int>(compute::threads(), static_cast<int>(batches.size())) : 1;
  if (workers <= 1) {
    for (const auto& idx : batches) translate_batch(models_, src, idx, o, results);
  } else {
    ensure_replicas(workers - 1);
    compute::run_workers(workers, batches.size(), [&](int w, std::size_t b) {
      translate_batch(w == 0 ? models_ : replicas_[static_cast<std::size_t>(w - 1)], src, batches[b], o, results);
    });
  }
  for (std::size_t i = 0; i < n; ++i) {
    results[i].source = std::move(src[i]);
    if (results[i].hypotheses.empty()) results[i].hypotheses.push_back({});  // empty input: empty output
  }
  return results;
}

}  // namespace gloss::decode
