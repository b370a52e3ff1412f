#include "gloss/eval/chrf.h"

#include <algorithm>

#include "gloss/eval/ngram_counter.h"
#include "gloss/util/error.h"
#include "gloss/util/unicode.h"

namespace gloss::eval {
namespace {

bool is_ascii_punct(char32_t c) {  // Python's string.punctuation
  return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) || (c >= 0x7B && c <= 0x7E);
}

// A segment prepared for counting: characters (whitespace removed unless kept) and, for
// chrF++, words with leading/trailing punctuation split off as sacreBLEU does.
struct Prepared {
  std::u32string chars;
  std::vector<std::uint64_t> char_hashes;
  std::vector<std::string> words;
  std::vector<std::string_view> word_views;
  std::vector<std::uint64_t> word_hashes;

  void assign(std::string_view text, bool whitespace, bool want_words) {
    chars.clear();
    std::u32string all = unicode::decode(text);
    for (char32_t c : all)
      if (whitespace || !unicode::is_space(c)) chars.push_back(c);
    char_hashes.resize(chars.size());
    for (std::size_t i = 0; i < chars.size(); ++i) char_hashes[i] = element_hash(chars[i]);
    words.clear();
    if (want_words) {
      for (std::string_view w : unicode::split(text)) {
        const std::u32string cps = unicode::decode(w);
        if (cps.size() == 1) {
          words.emplace_back(w);
        } else if (is_ascii_punct(cps.back())) {  // "(hi)" -> "(hi", ")"  (sacreBLEU issue #124)
          words.emplace_back(w.substr(0, w.size() - 1));
          words.emplace_back(w.substr(w.size() - 1));
        } else if (is_ascii_punct(cps.front())) {
          words.emplace_back(w.substr(0, 1));
          words.emplace_back(w.substr(1));
        } else {
          words.emplace_back(w);
        }
      }
    }
    word_views.assign(words.begin(), words.end());
    word_hashes.resize(words.size());
    for (std::size_t i = 0; i < words.size(); ++i) word_hashes[i] = element_hash(word_views[i]);
  }
};

struct Scratch {
  Prepared hyp, ref;
  NgramCounter<char32_t> ref_chars;
  NgramCounter<std::string_view> ref_words;
};

std::int64_t ngrams_of_order(std::size_t length, int n) {
  return length >= static_cast<std::size_t>(n) ? static_cast<std::int64_t>(length) - n + 1 : 0;
}

}  // namespace

void validate(const ChrfOptions& options) {
  if (options.char_order < 1 || options.char_order > 100)
    throw ConfigError("--chrf-char-order must be between 1 and 100 (got " + std::to_string(options.char_order) + ")");
  if (options.word_order < 0 || options.word_order > 100)
    throw ConfigError("--chrf-word-order must be between 0 and 100 (got " + std::to_string(options.word_order) + ")");
  if (options.beta < 0 || options.beta > 1000)
    throw ConfigError("--chrf-beta must be between 0 and 1000 (got " + std::to_string(options.beta) + ")");
}

Chrf::Chrf(ChrfOptions options) : options_(options) { validate(options_); }

std::string Chrf::name() const {
  return "chrF" + std::to_string(options_.beta) + std::string(options_.word_order, '+');
}

std::string Chrf::preprocess(std::string_view segment) const {
  return options_.lowercase ? unicode::lower(segment) : std::string(segment);
}

double Chrf::f_score(const Stats& stats) const {
  const double eps = 1e-16;
  const double factor = static_cast<double>(options_.beta) * options_.beta;
  const int order = options_.char_order + options_.word_order;
  double score = 0.0, avg_prec = 0.0, avg_rec = 0.0;
  int effective_order = 0;
  for (int i = 0; i < order; ++i) {
    const double n_hyp = stats[3 * i], n_ref = stats[3 * i + 1], n_match = stats[3 * i + 2];
    const double prec = n_hyp > 0 ? n_match / n_hyp : eps;
    const double rec = n_ref > 0 ? n_match / n_ref : eps;
    const double denom = factor * prec + rec;
    score += denom > 0 ? (1 + factor) * prec * rec / denom : eps;
    if (n_hyp > 0 && n_ref > 0) {
      avg_prec += prec;
      avg_rec += rec;
      ++effective_order;
    }
  }
  if (options_.eps_smoothing) return 100 * score / order;
  if (effective_order == 0) {
    avg_prec = avg_rec = 0.0;
  } else {
    avg_prec /= effective_order;
    avg_rec /= effective_order;
  }
  if (avg_prec + avg_rec != 0.0) {
    score = (1 + factor) * avg_prec * avg_rec;
    score /= (factor * avg_prec) + avg_rec;
    return 100 * score;
  }
  return 0.0;
}

Stats Chrf::preprocessed_stats(std::string_view hypothesis, const std::vector<std::string>& references) const {
  thread_local Scratch s;
  const int char_order = options_.char_order, word_order = options_.word_order;
  const bool want_words = word_order > 0;
  s.hyp.assign(hypothesis, options_.whitespace, want_words);

  Stats best;
  double best_f = -1.0;
  Stats stats(num_stats(), 0.0);
  for (const std::string& reference : references) {
    s.ref.assign(reference, options_.whitespace, want_words);
    std::fill(stats.begin(), stats.end(), 0.0);
    s.ref_chars.reset(s.ref.chars.size() * static_cast<std::size_t>(char_order));
    s.ref_chars.add_all(s.ref.chars.data(), s.ref.char_hashes.data(), s.ref.chars.size(), char_order);
    for (int n = 1; n <= char_order; ++n) {
      const std::int64_t ref_total = ngrams_of_order(s.ref.chars.size(), n);
      // sacreBLEU counts no hypothesis n-grams of an order the reference has none of.
      stats[3 * (n - 1)] = ref_total > 0 ? static_cast<double>(ngrams_of_order(s.hyp.chars.size(), n)) : 0.0;
      stats[3 * (n - 1) + 1] = static_cast<double>(ref_total);
    }
    NgramCounter<char32_t>::for_each_ngram(s.hyp.chars.data(), s.hyp.char_hashes.data(), s.hyp.chars.size(), char_order,
                                           [&](const char32_t* p, int n, std::uint64_t h) {
                                             if (s.ref_chars.consume(p, n, h)) stats[3 * (n - 1) + 2] += 1;
                                           });
    if (want_words) {
      s.ref_words.reset(s.ref.words.size() * static_cast<std::size_t>(word_order));
      s.ref_words.add_all(s.ref.word_views.data(), s.ref.word_hashes.data(), s.ref.words.size(), word_order);
      for (int n = 1; n <= word_order; ++n) {
        const std::size_t base = 3 * static_cast<std::size_t>(char_order + n - 1);
        const std::int64_t ref_total = ngrams_of_order(s.ref.words.size(), n);
        stats[base] = ref_total > 0 ? static_cast<double>(ngrams_of_order(s.hyp.words.size(), n)) : 0.0;
        stats[base + 1] = static_cast<double>(ref_total);
      }
      NgramCounter<std::string_view>::for_each_ngram(
          s.hyp.word_views.data(), s.hyp.word_hashes.data(), s.hyp.words.size(), word_order,
          [&](const std::string_view* p, int n, std::uint64_t h) {
            if (s.ref_words.consume(p, n, h)) stats[3 * static_cast<std::size_t>(char_order + n - 1) + 2] += 1;
          });
    }
    const double f = f_score(stats);
    if (f > best_f) {
      best_f = f;
      best = stats;
    }
  }
  return best;
}

Stats Chrf::sentence_stats(std::string_view hypothesis, const std::vector<std::string>& references) const {
  std::vector<std::string> refs;
  for (const auto& r : references)
    if (!r.empty()) refs.push_back(preprocess(r));
  return preprocessed_stats(preprocess(hypothesis), refs);
}

std::vector<int> Chrf::set_references(const std::vector<std::vector<std::string>>& refs) {
  return collect_references(refs, refs_, [this](const std::string& r) { return preprocess(r); });
}

Stats Chrf::segment_stats(std::string_view hypothesis, std::size_t segment) const {
  return preprocessed_stats(preprocess(hypothesis), refs_.at(segment));
}

Score Chrf::compute(const Stats& summed) const { return {name(), f_score(summed), ""}; }

Signature Chrf::signature(const std::string& nrefs) const {
  Signature sig;
  sig.set("nrefs", "#", nrefs);
  sig.set("case", "c", options_.lowercase ? "lc" : "mixed");
  sig.set("eff", "e", options_.eps_smoothing ? "no" : "yes");
  sig.set("nc", "nc", std::to_string(options_.char_order));
  sig.set("nw", "nw", std::to_string(options_.word_order));
  sig.set("space", "s", options_.whitespace ? "yes" : "no");
  return sig;
}

}  // namespace gloss::eval
