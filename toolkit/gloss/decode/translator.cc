#include "gloss/decode/translator.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <numeric>

#include "gloss/report/plot.h"
#include "gloss/tensor/compute.h"
#include "gloss/model/model_file.h"
#include "gloss/util/atomic_file.h"
#include "gloss/util/error.h"
#include "gloss/util/unicode.h"

#include <unistd.h>
#include <zlib.h>

namespace gloss::decode {

void Translator::write_attention_svg(const std::vector<int>& src, const Hypothesis& h,
                                     const std::string& path) const {
  std::vector<std::string> src_pieces, tgt_pieces;
  for (int id : src) src_pieces.push_back(src_.piece(id));
  for (auto id : h.ids) tgt_pieces.push_back(tgt_.piece(id));
  const std::size_t rows = src.empty() ? 0 : h.attention.size() / src.size();
  if (rows > tgt_pieces.size()) tgt_pieces.push_back("</s>");
  atomic_write_file(path, path.ends_with(".png") ? report::attention_png(src_pieces, tgt_pieces, h.attention)
                                                : report::attention_svg(src_pieces, tgt_pieces, h.attention));
}

void validate(const TranslateOptions& o) {
  if (o.beam_size < 1) throw ConfigError("--beam-size must be at least 1 (got " + std::to_string(o.beam_size) + ")");
  if (o.n_best < 1 || o.n_best > o.beam_size)
    throw ConfigError("--n-best must be between 1 and --beam-size (got " + std::to_string(o.n_best) + ")");
  if (o.batch_size < 1) throw ConfigError("--batch-size must be at least 1");
  if (o.max_len_ratio <= 0) throw ConfigError("--max-len-ratio must be > 0");
  if (o.max_batch_tokens < 0) throw ConfigError("--max-batch-tokens must be >= 0 (0: no limit)");
  if (o.min_length < 0) throw ConfigError("--min-length must be >= 0");
  if (!o.alignment.empty() && o.alignment != "hard" && o.alignment != "soft")
    throw ConfigError("--alignment must be hard or soft (got '" + o.alignment + "')");
  if (o.attention_line < 1) throw ConfigError("--attention-line counts from 1");
  if (o.parallel != "data" && o.parallel != "ops")
    throw ConfigError("--parallel must be data or ops (got '" + o.parallel + "')");
  if (o.precision != "f32" && o.precision != "bf16")
    throw ConfigError("--precision must be f32 or bf16 (got '" + o.precision + "')");
  if (o.precision == "bf16" && !compute::has_bf16())
    throw ConfigError("--precision bf16 needs a CPU with AVX512-BF16 instructions, which this one lacks; use f32");
  if (!o.attention_svg.empty() && !o.attention_svg.ends_with(".svg") && !o.attention_svg.ends_with(".png"))
    throw ConfigError("--attention " + o.attention_svg + ": give a file name ending in .svg or .png (the heat map's format)");
}

Translator::Translator(const std::string& model_path) : Translator(std::vector<std::string>{model_path}) {}

Translator::Translator(const std::vector<std::string>& model_paths) {
  if (model_paths.empty()) throw ConfigError("give at least one model file (-m)");
  std::string src_spm, tgt_spm;
  for (const auto& path : model_paths) {
    const auto mf = model::load_model(path, nullptr);
    if (models_.empty()) {
      src_spm = mf.src_spm;
      tgt_spm = mf.tgt_spm;
      src_ = text::SubwordModel::from_bytes(mf.src_spm, path + " (source subwords)");
      tgt_ = text::SubwordModel::from_bytes(mf.tgt_spm, path + " (target subwords)");
    } else if (mf.src_spm != src_spm || mf.tgt_spm != tgt_spm) {
      throw InputError(path, 0, "uses other subword models than " + model_paths[0] +
                                    "; an ensemble needs models trained with the same ones");
    }
    auto member = std::make_unique<Member>();
    member->model = std::make_unique<model::Seq2Seq>(mf.config, member->params);
    member->params.release_grads();  // translation computes none
    model::load_model(path, &member->params);
    models_.push_back(std::move(member));
    configs_.push_back(mf.config);
  }
}

void Translator::set_shortlist(const std::string& path) {
  auto s = std::make_unique<Shortlist>(Shortlist::load(path));
  const auto& config = models_[0]->model->config();
  if (s->tgt_vocab() != config.tgt_vocab || s->src_vocab() != config.src_vocab)
    throw InputError(path, 1, "was built for vocabularies of " + std::to_string(s->src_vocab()) + " and " +
                                  std::to_string(s->tgt_vocab()) + " subwords, the model has " + std::to_string(config.src_vocab) +
                                  " and " + std::to_string(config.tgt_vocab) + "; build it with gloss shortlist -m MODEL");
  shortlist_ = std::move(s);
}

namespace {

// Invalid UTF-8 bytes become U+FFFD, so the line is still translated.
std::string repair_utf8(const std::string& line) {
  std::string out;
  std::string_view rest(line);
  for (;;) {
    const auto bad = unicode::find_invalid_utf8(rest);
    if (bad == std::string_view::npos) {
      out.append(rest);
      return out;
    }
    out.append(rest.substr(0, bad));
    out += "\xEF\xBF\xBD";
    rest.remove_prefix(bad + 1);
  }
}

std::string score_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4f", v);
  return buf;
}

}  // namespace

void Translator::translate_batch(Models& models, const std::vector<std::vector<int>>& src,
                                 const std::vector<std::size_t>& idx, const TranslateOptions& o,
                                 std::vector<std::vector<Hypothesis>>& results) const {
  const int N = static_cast<int>(idx.size());
  const int S = static_cast<int>(src[idx[0]].size());
  std::vector<std::int32_t> ids(static_cast<std::size_t>(S) * N, text::kPadId), len(static_cast<std::size_t>(N));
  std::vector<int> max_len(static_cast<std::size_t>(N));
  for (int k = 0; k < N; ++k) {
    const auto& s = src[idx[static_cast<std::size_t>(k)]];
    len[static_cast<std::size_t>(k)] = static_cast<std::int32_t>(s.size());
    for (std::size_t t = 0; t < s.size(); ++t) ids[t * static_cast<std::size_t>(N) + static_cast<std::size_t>(k)] = s[t];
    max_len[static_cast<std::size_t>(k)] = static_cast<int>(o.max_len_ratio * static_cast<double>(s.size())) + o.max_len_add;
  }
  const model::BatchView view{N, S, 0, ids.data(), len.data(), nullptr, nullptr};
  const bool attention_wanted = !o.alignment.empty() || !o.attention_svg.empty();
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
      for (auto id : list) cols.push_back(static_cast<std::int32_t>(std::lower_bound(all.begin(), all.end(), id) - all.begin()));
      allowed.push_back(std::move(cols));
    }
    for (auto& m : models) m->model->set_output_subset(all);
  }
  const bool plain_greedy = !shortlist_ && models.size() == 1 && o.beam_size == 1 && o.n_best == 1 &&
                            o.coverage_penalty == 0 && o.min_length == 0 && !o.word_scores && !attention_wanted;
  if (plain_greedy) {
    const auto g = greedy_search(*models[0]->model, view, max_len);
    for (int k = 0; k < N; ++k) results[idx[static_cast<std::size_t>(k)]] = {{g[static_cast<std::size_t>(k)], 0.0, 0.0, {}, {}}};
  } else {
    SearchOptions so;
    so.beam_size = o.beam_size;
    so.length_penalty = o.length_penalty;
    so.n_best = o.n_best;
    so.coverage_penalty = o.coverage_penalty;
    so.min_length = o.min_length;
    so.word_scores = o.word_scores;
    so.attention = attention_wanted;
    if (shortlist_) so.allowed = &allowed;
    std::vector<model::Seq2Seq*> ensemble;
    for (auto& m : models) ensemble.push_back(m->model.get());
    auto beams = beam_search(ensemble, view, max_len, so);
    for (int k = 0; k < N; ++k) results[idx[static_cast<std::size_t>(k)]] = std::move(beams[static_cast<std::size_t>(k)]);
  }
  if (shortlist_)
    for (auto& m : models) m->model->set_output_subset({});
}

std::vector<std::string> Translator::translate(const std::vector<std::string>& lines, const TranslateOptions& o,
                                               std::size_t first_line, std::ostream& log) {
  const std::size_t n = lines.size();
  std::vector<std::vector<int>> src(n);
  for (std::size_t i = 0; i < n; ++i) {
    src[i] = src_.encode(lines[i]);
    if (static_cast<int>(src[i].size()) > o.max_src_len) {
      log << "translate: warning: line " << first_line + i << " has " << src[i].size() << " subwords; translating the first "
          << o.max_src_len << std::endl;
      src[i].resize(static_cast<std::size_t>(o.max_src_len));
    }
  }
  // Longest first within the window, so batches hold similar lengths; results go back in order.
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return src[a].size() > src[b].size(); });
  std::vector<std::vector<Hypothesis>> results(n);
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
  if ((o.precision == "bf16") != bf16_) {
    bf16_ = o.precision == "bf16";
    for (auto& m : models_) m->model->set_bf16(bf16_);
    for (auto& r : replicas_)
      for (auto& m : r) m->model->set_bf16(bf16_);
  }
  // parallel = data: one batch per thread at a time, each thread alone inside it (no thread
  // waits for another within a search step). A batch's result does not depend on who runs it.
  const int workers = o.parallel == "data" ? std::min<int>(compute::threads(), static_cast<int>(batches.size())) : 1;
  if (workers <= 1) {
    for (const auto& idx : batches) translate_batch(models_, src, idx, o, results);
  } else {
    while (static_cast<int>(replicas_.size()) < workers - 1) {
      Models replica;
      for (std::size_t m = 0; m < models_.size(); ++m) {
        auto member = std::make_unique<Member>();
        member->model = std::make_unique<model::Seq2Seq>(configs_[m], member->params);
        member->params.release_grads();
        member->params.share_values_of(models_[m]->params);
        member->model->set_bf16(bf16_);
        replica.push_back(std::move(member));
      }
      replicas_.push_back(std::move(replica));
    }
    compute::run_workers(workers, batches.size(), [&](int w, std::size_t b) {
      translate_batch(w == 0 ? models_ : replicas_[static_cast<std::size_t>(w - 1)], src, batches[b], o, results);
    });
  }
  // What --alignment and --word-scores append to a translation.
  auto extras = [&](const Hypothesis& h, std::size_t src_len) {
    std::string x;
    const std::size_t T = h.ids.size();
    if (!o.alignment.empty()) {
      x += " |||";
      for (std::size_t t = 0; t < T && (t + 1) * src_len <= h.attention.size(); ++t) {
        const float* row = h.attention.data() + t * src_len;
        if (o.alignment == "hard") {
          char buf[48];
          std::snprintf(buf, sizeof buf, " %td-%zu", std::max_element(row, row + src_len) - row, t);
          x += buf;
        } else {
          x += " ";
          for (std::size_t j = 0; j < src_len; ++j) {
            char buf[16];
            std::snprintf(buf, sizeof buf, "%s%.4f", j ? "," : "", static_cast<double>(row[j]));
            x += buf;
          }
        }
      }
    }
    if (o.word_scores) {
      // Words are the output's whitespace-separated words: a piece starting with U+2581 starts one.
      x += " ||| WordScores=";
      double word = 0;
      for (std::size_t t = 0; t < T && t < h.word_log_probs.size(); ++t) {
        if (t > 0 && tgt_.piece(h.ids[t]).rfind("\xE2\x96\x81", 0) == 0) {  // a new word starts
          x.append(" ").append(score_text(word));
          word = 0;
        }
        word += h.word_log_probs[t];
      }
      if (T > 0) x.append(" ").append(score_text(word));
    }
    return x;
  };
  std::vector<std::string> out;
  for (std::size_t i = 0; i < n; ++i) {
    auto& hyps = results[i];
    if (hyps.empty()) hyps.push_back({});  // empty input: empty output
    if (!o.attention_svg.empty() && first_line + i == o.attention_line) write_attention_svg(src[i], hyps[0], o.attention_svg);
    if (o.n_best == 1) {
      out.push_back(tgt_.decode(std::vector<int>(hyps[0].ids.begin(), hyps[0].ids.end())) + extras(hyps[0], src[i].size()));
      continue;
    }
    for (const auto& h : hyps)
      out.push_back(std::to_string(first_line + i - 1) + " ||| " + tgt_.decode(std::vector<int>(h.ids.begin(), h.ids.end())) +
                    " ||| " + score_text(h.score) + extras(h, src[i].size()));
  }
  return out;
}

void translate_file(Translator& translator, const std::string& input, const std::string& output,
                    const TranslateOptions& o, std::ostream& out, std::ostream& log) {
  validate(o);
  require_file(input);
  gzFile in = input == "-" ? gzdopen(dup(0), "rb") : gzopen(input.c_str(), "rb");
  if (!in) throw InputError(input, 0, "cannot open");
  std::string buffer, pending;
  std::vector<std::string> window;
  std::size_t line_no = 0, done = 0;
  // A file output is written to a temporary name beside it and renamed when complete.
  const std::string tmp_path = output + ".tmp." + std::to_string(::getpid());
  std::ofstream file;
  if (output != "-") {
    file.open(tmp_path, std::ios::binary);
    if (!file) throw UserError(output + ": cannot write");
  }
  std::ostream& sink = output == "-" ? out : file;
  const auto start = std::chrono::steady_clock::now();
  const bool progress = o.progress || ::isatty(2);  // automatic on a terminal
  // For an ETA, a file's lines are counted first (a quick pass; not possible for stdin).
  std::size_t total = 0;
  if (progress && input != "-") {
    gzFile count = gzopen(input.c_str(), "rb");
    if (count) {
      char buf[1 << 16];
      int got;
      while ((got = gzread(count, buf, sizeof buf)) > 0) total += static_cast<std::size_t>(std::count(buf, buf + got, '\n'));
      gzclose(count);
    }
  }
  auto flush = [&]() {
    if (window.empty()) return;
    const auto lines = translator.translate(window, o, line_no - window.size() + 1, log);
    for (const auto& l : lines) sink << l << '\n';
    sink.flush();
    done += window.size();
    window.clear();
    if (progress) {
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      const double rate = static_cast<double>(done) / s;
      log << "translate: " << done;
      if (total >= done) {
        const auto eta = static_cast<long>(static_cast<double>(total - done) / std::max(rate, 1e-9));
 char r[32];
        std::snprintf(r, sizeof r, "%.1f", rate);
        log << "/" << total << " lines, " << r << " sentences/s, ETA " << eta / 60 << "m"
            << (eta % 60 < 10 ? "0" : "") << eta % 60 << "s" << std::endl;
      } else {
        log << " lines, " << score_text(rate) << " sentences/s" << std::endl;
      }
    }
  };
  auto take_line = [&](std::string line) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line_no == 1 && line.compare(0, 3, "\xEF\xBB\xBF") == 0) line.erase(0, 3);
    if (unicode::find_invalid_utf8(line) != std::string_view::npos) {
      log << "translate: warning: " << input << ":" << line_no << ": invalid UTF-8, replaced by U+FFFD" << std::endl;
      line = repair_utf8(line);
    }
    window.push_back(std::move(line));
    if (static_cast<int>(window.size()) >= o.window) flush();
  };
  char chunk[1 << 16];
  for (;;) {
    const int got = gzread(in, chunk, sizeof chunk);
    if (got < 0) {
      gzclose(in);
      throw InputError(input, line_no + 1, "read error (a truncated .gz file?)");
    }
    if (got == 0) break;
    pending.append(chunk, static_cast<std::size_t>(got));
    std::size_t startpos = 0, nl;
    while ((nl = pending.find('\n', startpos)) != std::string::npos) {
      take_line(pending.substr(startpos, nl - startpos));
      startpos = nl + 1;
    }
    pending.erase(0, startpos);
  }
  gzclose(in);
  if (!pending.empty()) take_line(pending);
  flush();
  if (!o.attention_svg.empty() && o.attention_line > line_no)
    throw ConfigError("--attention-line " + std::to_string(o.attention_line) + ": the input has only " +
                      std::to_string(line_no) + " lines");
  if (output != "-") {
    file.close();
    if (!file || std::rename(tmp_path.c_str(), output.c_str()) != 0) {
      std::remove(tmp_path.c_str());
      throw UserError(output + ": cannot write the translation");
    }
  }
}

}  // namespace gloss::decode
