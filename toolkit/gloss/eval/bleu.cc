#include "gloss/eval/bleu.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "gloss/eval/format.h"
#include "gloss/eval/ngram_counter.h"
#include "gloss/util/error.h"
#include "gloss/util/format.h"
#include "gloss/util/unicode.h"

namespace gloss::eval {
namespace {

double default_smooth_value(SmoothMethod method) {
  return method == SmoothMethod::kFloor ? 0.1 : method == SmoothMethod::kAddK ? 1.0 : 0.0;
}

// sacreBLEU's my_log: log(0) is floored to -9999999999.
double floored_log(double x) { return x == 0.0 ? -9999999999.0 : std::log(x); }

struct TokenizedSegment {
  std::vector<std::string_view> tokens;
  std::vector<std::uint64_t> hashes;
  void assign(std::string_view text) {
    unicode::split(text, tokens);
    hashes.resize(tokens.size());
    for (std::size_t i = 0; i < tokens.size(); ++i) hashes[i] = element_hash(tokens[i]);
  }
};

struct Scratch {
  TokenizedSegment hyp;
  std::vector<TokenizedSegment> refs;
  NgramCounter<std::string_view> ref_counts, one_ref;
};

// The references tokenised into s.refs[0 .. references.size()).
void tokenize_references(const std::vector<std::string>& references, Scratch& s) {
  if (s.refs.size() < references.size()) s.refs.resize(references.size());
  for (std::size_t r = 0; r < references.size(); ++r) s.refs[r].assign(references[r]);
}

// s.ref_counts: each n-gram's largest count in any one of the first `count` references.
void count_references(std::size_t count, int order, Scratch& s) {
  std::size_t total_ref_tokens = 0;
  for (std::size_t r = 0; r < count; ++r) total_ref_tokens += s.refs[r].tokens.size();
  s.ref_counts.reset(total_ref_tokens * static_cast<std::size_t>(order));
  for (std::size_t r = 0; r < count; ++r) {
    const TokenizedSegment& ref = s.refs[r];
    if (r == 0) {
      s.ref_counts.add_all(ref.tokens.data(), ref.hashes.data(), ref.tokens.size(), order);
      continue;
    }
    s.one_ref.reset(ref.tokens.size() * static_cast<std::size_t>(order));
    s.one_ref.add_all(ref.tokens.data(), ref.hashes.data(), ref.tokens.size(), order);
    s.one_ref.for_each([&](const auto& e) {
      std::int32_t& c = s.ref_counts.at(e.seq, e.order, e.hash);
      c = std::max(c, e.count);
    });
  }
}

// The length of the reference closest to the hypothesis' (ties go to the shorter one); -1
// without references.
std::int64_t closest_length(std::int64_t hyp_len, const std::vector<TokenizedSegment>& refs, std::size_t count) {
  std::int64_t closest_len = -1, closest_diff = -1;
  for (std::size_t r = 0; r < count; ++r) {
    const auto len = static_cast<std::int64_t>(refs[r].tokens.size());
    const std::int64_t diff = std::llabs(hyp_len - len);
    if (closest_diff == -1 || diff < closest_diff) {
      closest_diff = diff;
      closest_len = len;
    } else if (diff == closest_diff && len < closest_len) {
      closest_len = len;
    }
  }
  return closest_len;
}

}  // namespace

SmoothMethod parse_smooth_method(std::string_view name) {
  if (name == "none") return SmoothMethod::kNone;
  if (name == "floor") return SmoothMethod::kFloor;
  if (name == "add-k") return SmoothMethod::kAddK;
  if (name == "exp") return SmoothMethod::kExp;
  throw ConfigError("--smooth-method: unknown method '" + std::string(name) +
                    "'; choose one of: exp, floor, add-k, none");
}

void validate(const BleuOptions& options) {
  if (options.max_ngram_order < 1 || options.max_ngram_order > 100)
    throw ConfigError("--max-ngram-order must be between 1 and 100 (got " + std::to_string(options.max_ngram_order) +
                      ")");
  // sacreBLEU takes any number here; a negative one makes a precision negative (its log then
  // fails) or above 100 %, and a huge one makes every precision infinite.
  if (options.smooth_value && !(*options.smooth_value >= 0 && *options.smooth_value <= 1e6))
    throw ConfigError("--smooth-value must be between 0 and 1000000 (got " + fixed_g(*options.smooth_value) + ")");
}

BleuStats& BleuStats::operator+=(const BleuStats& other) {
  sys_len += other.sys_len;
  ref_len += other.ref_len;
  if (correct.size() < other.correct.size()) correct.resize(other.correct.size(), 0);
  if (total.size() < other.total.size()) total.resize(other.total.size(), 0);
  for (std::size_t i = 0; i < other.correct.size(); ++i) correct[i] += other.correct[i];
  for (std::size_t i = 0; i < other.total.size(); ++i) total[i] += other.total[i];
  return *this;
}

std::string BleuScore::verbose() const {
  std::string out;
  for (std::size_t i = 0; i < precisions.size(); ++i) {
    if (i) out += '/';
    out += format_fixed(precisions[i], 1);
  }
  out += " (BP = " + format_fixed(bp, 3) + " ratio = " + format_fixed(ratio, 3) +
         " hyp_len = " + std::to_string(sys_len) + " ref_len = " + std::to_string(ref_len) + ")";
  return out;
}

Bleu::Bleu(BleuOptions options) : options_(std::move(options)) { validate(options_); }

std::string Bleu::preprocess(std::string_view segment) const {
  if (options_.lowercase) {
    const std::string lowered = unicode::lower(segment);
    return tokenize(options_.tokenizer, unicode::rstrip(lowered));
  }
  return tokenize(options_.tokenizer, unicode::rstrip(segment));
}

BleuStats Bleu::preprocessed_stats(std::string_view hypothesis, const std::vector<std::string>& references) const {
  thread_local Scratch s;
  const int order = options_.max_ngram_order;
  BleuStats stats;
  stats.correct.assign(static_cast<std::size_t>(order), 0);
  stats.total.assign(static_cast<std::size_t>(order), 0);
  s.hyp.assign(hypothesis);
  const auto hyp_len = static_cast<std::int64_t>(s.hyp.tokens.size());
  tokenize_references(references, s);
  count_references(references.size(), order, s);
  for (int n = 1; n <= order; ++n)
    stats.total[static_cast<std::size_t>(n - 1)] = std::max<std::int64_t>(0, hyp_len - n + 1);
  NgramCounter<std::string_view>::for_each_ngram(s.hyp.tokens.data(), s.hyp.hashes.data(), s.hyp.tokens.size(), order,
                                                 [&](const std::string_view* p, int n, std::uint64_t h) {
                                                   if (s.ref_counts.consume(p, n, h))
                                                     ++stats.correct[static_cast<std::size_t>(n - 1)];
                                                 });
  stats.sys_len = hyp_len;
  stats.ref_len = closest_length(hyp_len, s.refs, references.size());
  return stats;
}

BleuStats Bleu::sentence_stats(std::string_view hypothesis, const std::vector<std::string>& references) const {
  std::vector<std::string> refs;
  refs.reserve(references.size());
  for (const auto& r : references)
    if (!r.empty()) refs.push_back(preprocess(r));
  return preprocessed_stats(preprocess(hypothesis), refs);
}

BleuScore Bleu::score(const BleuStats& stats) const {
  const auto order = static_cast<std::size_t>(options_.max_ngram_order);
  std::vector<double> correct(order, 0.0), total(order, 0.0);
  for (std::size_t i = 0; i < order && i < stats.correct.size(); ++i)
    correct[i] = static_cast<double>(stats.correct[i]);
  for (std::size_t i = 0; i < order && i < stats.total.size(); ++i) total[i] = static_cast<double>(stats.total[i]);
  const double smooth_value = options_.smooth_value.value_or(default_smooth_value(options_.smooth_method));

  BleuScore out;
  out.sys_len = stats.sys_len;
  out.ref_len = stats.ref_len;
  out.ratio = stats.ref_len ? static_cast<double>(stats.sys_len) / static_cast<double>(stats.ref_len) : 0.0;
  if (stats.sys_len < stats.ref_len) {
    out.bp = stats.sys_len > 0 ? std::exp(1.0 - static_cast<double>(stats.ref_len) / static_cast<double>(stats.sys_len))
                               : 0.0;
  } else {
    out.bp = 1.0;
  }
  out.precisions.assign(order, 0.0);
  out.counts = correct;
  out.totals = total;
  if (std::all_of(correct.begin(), correct.end(), [](double c) { return c == 0.0; })) return out;

  double smooth_mteval = 1.0;
  std::size_t eff_order = order;
  for (std::size_t n = 1; n <= order; ++n) {
    if (options_.smooth_method == SmoothMethod::kAddK && n > 1) {
      correct[n - 1] += smooth_value;
      total[n - 1] += smooth_value;
    }
    if (total[n - 1] == 0.0) break;
    if (options_.effective_order) eff_order = n;
    if (correct[n - 1] == 0.0) {
      if (options_.smooth_method == SmoothMethod::kExp) {
        smooth_mteval *= 2;
        out.precisions[n - 1] = 100.0 / (smooth_mteval * total[n - 1]);
      } else if (options_.smooth_method == SmoothMethod::kFloor) {
        out.precisions[n - 1] = 100.0 * smooth_value / total[n - 1];
      }
    } else {
      out.precisions[n - 1] = 100.0 * correct[n - 1] / total[n - 1];
    }
  }
  out.counts = correct;
  out.totals = total;
  double log_sum = 0.0;
  for (std::size_t i = 0; i < eff_order; ++i) log_sum += floored_log(out.precisions[i]);
  out.score = out.bp * std::exp(log_sum / static_cast<double>(eff_order));
  return out;
}

std::vector<int> Bleu::set_references(const std::vector<std::vector<std::string>>& refs) {
  return collect_references(refs, refs_, [this](const std::string& r) { return preprocess(r); });
}

Stats Bleu::flatten(const BleuStats& stats) {
  Stats out;
  out.reserve(2 + stats.correct.size() + stats.total.size());
  out.push_back(static_cast<double>(stats.sys_len));
  out.push_back(static_cast<double>(stats.ref_len));
  for (auto c : stats.correct) out.push_back(static_cast<double>(c));
  for (auto t : stats.total) out.push_back(static_cast<double>(t));
  return out;
}

BleuStats Bleu::unflatten(const Stats& stats) const {
  const auto order = static_cast<std::size_t>(options_.max_ngram_order);
  BleuStats out;
  out.sys_len = static_cast<std::int64_t>(stats[0]);
  out.ref_len = static_cast<std::int64_t>(stats[1]);
  for (std::size_t i = 0; i < order; ++i) out.correct.push_back(static_cast<std::int64_t>(stats[2 + i]));
  for (std::size_t i = 0; i < order; ++i) out.total.push_back(static_cast<std::int64_t>(stats[2 + order + i]));
  return out;
}

Stats Bleu::segment_stats(std::string_view hypothesis, std::size_t segment) const {
  return flatten(preprocessed_stats(preprocess(hypothesis), refs_.at(segment)));
}

Score Bleu::compute(const Stats& summed) const {
  const BleuScore s = score(unflatten(summed));
  return {"BLEU", s.score, s.verbose()};
}

Signature Bleu::signature(const std::string& nrefs) const {
  Signature sig;
  sig.set("nrefs", "#", nrefs);
  sig.set("case", "c", options_.lowercase ? "lc" : "mixed");
  sig.set("eff", "e", options_.effective_order ? "yes" : "no");
  sig.set("tok", "tok", tokenizer_name(options_.tokenizer));
  std::string smooth;
  switch (options_.smooth_method) {
    case SmoothMethod::kNone:
      smooth = "none";
      break;
    case SmoothMethod::kExp:
      smooth = "exp";
      break;
    case SmoothMethod::kFloor:
      smooth = "floor[" + format_fixed(options_.smooth_value.value_or(0.1), 2) + "]";
      break;
    case SmoothMethod::kAddK:
      smooth = "add-k[" + format_fixed(options_.smooth_value.value_or(1.0), 2) + "]";
      break;
  }
  sig.set("smooth", "s", smooth);
  return sig;
}

}  // namespace gloss::eval
