#include "gloss/eval/evaluator.h"

#include <algorithm>
#include <cstdlib>
#include <istream>
#include <memory>
#include <numeric>
#include <ostream>
#include <random>
#include <sstream>

#include "gloss/eval/format.h"
#include "gloss/eval/table.h"
#include "gloss/eval/ter.h"
#include "gloss/util/error.h"
#include "gloss/util/text_file.h"
#include "gloss/util/threads.h"
#include "gloss/util/unicode.h"

namespace gloss::eval {
namespace {

struct System {
  std::string name;
  std::vector<std::string> lines;
};

struct NamedMetric {
  std::string key;  // "BLEU", "CHRF", "TER": sacreBLEU sorts metrics by this
  std::unique_ptr<Metric> metric;
};

// Bootstrap / randomisation seed: sacreBLEU's SACREBLEU_SEED, default 12345, "none" = random.
struct Seed {
  std::string text = "12345";
  std::uint64_t value = 12345;
  bool fixed = true;
};

Seed read_seed() {
  Seed seed;
  if (const char* env = std::getenv("SACREBLEU_SEED")) {
    std::string s = env;
    std::string lowered = unicode::lower(s);
    if (lowered == "none") {
      seed.text = "none";
      seed.fixed = false;
      seed.value = std::random_device{}();
    } else {
      char* end = nullptr;
      const long long v = std::strtoll(s.c_str(), &end, 10);
      if (s.empty() || *end != '\0') throw ConfigError("SACREBLEU_SEED must be an integer or 'none' (got '" + s + "')");
      seed.text = std::to_string(v);
      seed.value = static_cast<std::uint64_t>(v);
    }
  }
  return seed;
}

std::vector<std::string> rstripped(std::vector<std::string> lines) {
  for (auto& l : lines) l.resize(unicode::rstrip(l).size());
  return lines;
}

// Reference streams: refs[r][i]. With num_refs > 1, one file holds tab-separated references.
std::vector<std::vector<std::string>> read_references(const EvalOptions& o) {
  for (const auto& path : o.references)
    if (path == "-")
      throw ConfigError(
          "references are files: '-' (standard input) is where the hypotheses come from, without -i "
          "or with -i -");
  std::vector<std::vector<std::string>> refs;
  if (o.num_refs > 1) {
    refs.assign(static_cast<std::size_t>(o.num_refs), {});
    const auto lines = rstripped(read_lines(o.references[0]));
    for (std::size_t i = 0; i < lines.size(); ++i) {
      std::vector<std::string> fields;
      std::size_t start = 0;
      while (fields.size() + 1 < static_cast<std::size_t>(o.num_refs)) {
        const std::size_t tab = lines[i].find('\t', start);
        if (tab == std::string::npos) break;
        fields.push_back(lines[i].substr(start, tab - start));
        start = tab + 1;
      }
      fields.push_back(lines[i].substr(start));
      if (fields.size() != static_cast<std::size_t>(o.num_refs))
        throw InputError(o.references[0], i + 1,
                         "expected " + std::to_string(o.num_refs) + " tab-separated references, found " +
                             std::to_string(fields.size()) + " (check --num-refs)");
      for (std::size_t r = 0; r < fields.size(); ++r) refs[r].push_back(fields[r]);
    }
    return refs;
  }
  for (const auto& path : o.references) refs.push_back(rstripped(read_lines(path)));
  for (std::size_t r = 1; r < refs.size(); ++r) {
    if (refs[r].size() != refs[0].size())
      throw InputError(o.references[r], 0,
                       "has " + std::to_string(refs[r].size()) + " lines but " + o.references[0] + " has " +
                           std::to_string(refs[0].size()) + "; every reference file needs one line per segment");
  }
  return refs;
}

std::vector<System> read_systems(const EvalOptions& o, std::istream& in, bool paired) {
  std::vector<System> systems;
  if (o.inputs.empty()) {
    const auto lines = read_lines(in, "<stdin>", LineBreaks::kUniversal);
    for (std::size_t i = 0; i < lines.size(); ++i) {
      const std::string line(unicode::rstrip(lines[i]));
      std::vector<std::string> fields;
      std::size_t start = 0;
      for (;;) {
        const std::size_t tab = line.find('\t', start);
        fields.push_back(line.substr(start, tab == std::string::npos ? std::string::npos : tab - start));
        if (tab == std::string::npos) break;
        start = tab + 1;
      }
      if (i == 0) {
        for (std::size_t s = 0; s < fields.size(); ++s) systems.push_back({"System " + std::to_string(s + 1), {}});
      } else if (fields.size() != systems.size()) {
        throw InputError("<stdin>", i + 1,
                         "has " + std::to_string(fields.size()) + " tab-separated fields but line 1 has " +
                             std::to_string(systems.size()) + "; give each system its own file with -i");
      }
      for (std::size_t s = 0; s < fields.size(); ++s)
        systems[s].lines.push_back(std::string(unicode::rstrip(fields[s])));
    }
    if (systems.empty()) throw InputError("<stdin>", 0, "no hypotheses on standard input; pipe them in or use -i FILE");
    if (paired) {
      systems[0].name = "Baseline";
      for (std::size_t s = 1; s < systems.size(); ++s) systems[s].name = "System " + std::to_string(s);
    }
    return systems;
  }
  for (const auto& path : o.inputs) {
    const bool seen = std::any_of(systems.begin(), systems.end(), [&](const System& s) { return s.name == path; });
    if (seen) {
      if (paired && path == systems[0].name) continue;  // the baseline given twice
      throw ConfigError("-i: '" + path + "' is given twice; give each system once");
    }
    // "-": standard input, read as when -i is not given (one system, universal line breaks).
    systems.push_back(
        {path, rstripped(path == "-" ? read_lines(in, "<stdin>", LineBreaks::kUniversal) : read_lines(path))});
  }
  if (paired) systems[0].name = "Baseline: " + systems[0].name;
  return systems;
}

std::vector<NamedMetric> make_metrics(const EvalOptions& o) {
  std::vector<NamedMetric> metrics;
  for (const auto& name : o.metrics) {
    std::string key = name;
    for (auto& c : key) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (std::any_of(metrics.begin(), metrics.end(), [&](const NamedMetric& m) { return m.key == key; })) continue;
    if (name == "bleu") {
      BleuOptions bleu = o.bleu;
      if (o.sentence_level) bleu.effective_order = true;  // as sacreBLEU >= 2.0 does
      metrics.push_back({key, std::make_unique<Bleu>(bleu)});
    } else if (name == "chrf") {
      metrics.push_back({key, std::make_unique<Chrf>(o.chrf)});
    } else if (name == "ter") {
      metrics.push_back({key, std::make_unique<Ter>(o.ter)});
    } else {
      throw ConfigError("-m: unknown metric '" + name + "'; choose from: bleu, chrf, ter");
    }
  }
  std::sort(metrics.begin(), metrics.end(), [](const NamedMetric& a, const NamedMetric& b) { return a.key < b.key; });
  return metrics;
}

std::string nrefs_of(const std::vector<int>& per_segment) {
  if (per_segment.empty()) return "0";
  for (int n : per_segment)
    if (n != per_segment[0]) return "var";
  return std::to_string(per_segment[0]);
}

// Score.format() of sacreBLEU: text line, score only, or a JSON object.
struct Confidence {
  bool present = false;
  double mean = 0, ci = 0;
};

std::string score_line(const Score& s, int width, bool score_only, const std::string& signature, bool json,
                       const Confidence& conf) {
  std::string sc = format_fixed(s.score, width);
  std::string conf_str;
  const bool has_conf = conf.present && conf.mean > 0;
  if (has_conf) {
    conf_str = "μ = " + format_fixed(conf.mean, width) + " ± " + format_fixed(conf.ci, width);
    sc += " (" + conf_str + ")";
  }
  if (score_only) return sc;
  if (json) {
    std::vector<std::pair<std::string, std::string>> d;
    d.emplace_back("name", json_string(s.name, false));
    d.emplace_back("score", python_float_repr(std::strtod(format_fixed(s.score, width).c_str(), nullptr)));
    d.emplace_back("signature", json_string(signature, false));
    if (has_conf) {
      d.emplace_back("confidence_mean",
                     python_float_repr(std::strtod(format_fixed(conf.mean, width).c_str(), nullptr)));
      d.emplace_back("confidence_var", python_float_repr(std::strtod(format_fixed(conf.ci, width).c_str(), nullptr)));
      d.emplace_back("confidence", json_string(conf_str, false));
    }
    if (!s.verbose.empty()) d.emplace_back("verbose_score", json_string(s.verbose, false));
    std::size_t start = 0;
    while (start <= signature.size()) {
      std::size_t bar = signature.find('|', start);
      if (bar == std::string::npos) bar = signature.size();
      const std::string param = signature.substr(start, bar - start);
      const std::size_t colon = param.find(':');
      const std::string key = param.substr(0, colon), value = param.substr(colon + 1);
      auto it = std::find_if(d.begin(), d.end(), [&](const auto& kv) { return kv.first == key; });
      if (it != d.end())
        it->second = json_string(value, false);
      else
        d.emplace_back(key, json_string(value, false));
      start = bar + 1;
    }
    std::string out = "{\n";
    for (std::size_t i = 0; i < d.size(); ++i) {
      out += " " + json_string(d[i].first, false) + ": " + d[i].second;
      out += i + 1 < d.size() ? ",\n" : "\n";
    }
    return out + "}";
  }
  std::string line = s.name + "|" + signature + " = " + sc;
  if (!s.verbose.empty()) line += " " + s.verbose;
  return line;
}

// print_single_results(): several metrics of one system, aligned on '='.
void print_single_results(const std::vector<std::string>& results, const std::string& format, std::ostream& out) {
  if (format == "json") {
    if (results.size() > 1) {
      out << "[\n";
      for (std::size_t i = 0; i < results.size(); ++i) out << results[i] << (i + 1 < results.size() ? ",\n" : "\n");
      out << "]\n";
    } else {
      out << results[0] << "\n";
    }
    return;
  }
  if (results.size() == 1) {
    out << results[0] << "\n";
    return;
  }
  std::vector<std::size_t> lens;
  for (const auto& line : results) {
    const std::size_t eq = line.find('=');
    if (eq == std::string::npos)
      out << line << "\n";
    else
      lens.push_back(eq - 1);
  }
  if (lens.empty()) return;
  // Widths count characters, not bytes (the signature is ASCII; names too).
  std::size_t w = 0;
  for (std::size_t i = 0; i < lens.size(); ++i) w = std::max(w, unicode::decode(results[i].substr(0, lens[i])).size());
  for (std::size_t i = 0; i < lens.size(); ++i) {
    const std::string left = results[i].substr(0, lens[i]);
    const std::size_t lw = unicode::decode(left).size();
    out << std::string(w > lw ? w - lw : 0, ' ') << left << results[i].substr(lens[i]) << "\n";
  }
}

// Per-segment statistics of one system for one metric, computed on `threads` threads
// (segments are independent; metrics keep their scratch space per thread).
std::vector<Stats> all_stats(const Metric& metric, const System& system, int threads) {
  const std::size_t n = system.lines.size();
  std::vector<Stats> stats(n);
  const std::size_t workers =
      std::max<std::size_t>(1, std::min<std::size_t>(static_cast<std::size_t>(threads), n / 256));
  auto work = [&](std::size_t begin, std::size_t end) {
    for (std::size_t i = begin; i < end; ++i) stats[i] = metric.segment_stats(system.lines[i], i);
  };
  run_threads(workers, [&](std::size_t w) { work(n * w / workers, n * (w + 1) / workers); });
  return stats;
}

// Sums in segment order, so the result does not depend on the number of threads.
Stats sum_all(const Metric& metric, const System& system, int threads) {
  return sum_stats(all_stats(metric, system, threads), metric.num_stats());
}

// Bootstrap resamples: each draws n segments with replacement; the same draws (one seeded
// generator) serve every system, as in sacreBLEU's paired test.
class Resampler {
 public:
  Resampler(std::uint64_t seed, std::size_t segments) : seed_(seed), segments_(segments) {}
  template <class F>
  void for_each(int samples, F&& f) const {
    std::mt19937_64 rng(seed_);
    std::uniform_int_distribution<std::size_t> pick(0, segments_ - 1);
    std::vector<std::size_t> idx(segments_);
    for (int b = 0; b < samples; ++b) {
      for (auto& i : idx) i = pick(rng);
      f(idx);
    }
  }

 private:
  std::uint64_t seed_;
  std::size_t segments_;
};

std::vector<double> resampled_scores(const Metric& metric, const std::vector<Stats>& stats, const Resampler& rs,
                                     int samples) {
  std::vector<double> scores;
  scores.reserve(static_cast<std::size_t>(samples));
  const std::size_t width = metric.num_stats();
  Stats total(width);
  rs.for_each(samples, [&](const std::vector<std::size_t>& idx) {
    std::fill(total.begin(), total.end(), 0.0);
    for (std::size_t i : idx)
      for (std::size_t k = 0; k < width; ++k) total[k] += stats[i][k];
    scores.push_back(metric.compute(total).score);
  });
  return scores;
}

// sacreBLEU's estimate_ci: mean, and half the width of the central 95% of the resamples.
std::pair<double, double> estimate_ci(std::vector<double> scores) {
  std::sort(scores.begin(), scores.end());
  const std::size_t n = scores.size();
  const std::size_t lower = n / 40, upper = n - lower - 1;
  const double mean = std::accumulate(scores.begin(), scores.end(), 0.0) / static_cast<double>(n);
  return {mean, 0.5 * (scores[upper] - scores[lower])};
}

double p_value(const std::vector<double>& stats, double real_difference) {
  std::size_t c = 0;
  for (double s : stats)
    if (s > real_difference) ++c;
  return static_cast<double>(c + 1) / static_cast<double>(stats.size() + 1);
}

struct PairedResult {
  double score = 0;
  bool has_p = false;
  double p = 0;
  bool has_ci = false;
  double mean = 0, ci = 0;
};

// sacreBLEU's --format json for several systems: one object per system; with a paired test
// each metric is an object (score, p_value, mean, ci; null where the test gives none).
void print_json_table(const std::vector<System>& systems, const std::vector<std::string>& metric_names,
                      const std::vector<std::vector<PairedResult>>& results, const EvalOptions& o, std::ostream& out) {
  const bool paired = o.paired_bs || o.paired_ar;
  out << "[\n";
  for (std::size_t s = 0; s < systems.size(); ++s) {
    out << "    {\n        \"system\": " << json_string(systems[s].name, true);
    for (std::size_t m = 0; m < metric_names.size(); ++m) {
      const PairedResult& r = results[m][s];
      out << ",\n        " << json_string(metric_names[m], true) << ": ";
      if (!paired) {
        out << json_string(format_fixed(r.score, o.width), true);
      } else {
        out << "{\n            \"score\": " << python_float_repr(r.score)
            << ",\n            \"p_value\": " << (r.has_p ? python_float_repr(r.p) : "null")
            << ",\n            \"mean\": " << (r.has_ci ? python_float_repr(r.mean) : "null")
            << ",\n            \"ci\": " << (r.has_ci ? python_float_repr(r.ci) : "null") << "\n        }";
      }
    }
    out << "\n    }" << (s + 1 < systems.size() ? "," : "") << "\n";
  }
  out << "]\n";
}

// One metric's column of the text table: score, "(mean ± ci)" from bootstrap, and on a
// second line "(p = ...)", starred when significant.
std::vector<std::string> metric_column(const std::vector<PairedResult>& results, const EvalOptions& o) {
  std::vector<std::string> col;
  for (const auto& r : results) {
    std::string cell = format_fixed(r.score, o.width);
    if (r.has_ci) cell += " (" + format_fixed(r.mean, o.width) + " ± " + format_fixed(r.ci, o.width) + ")";
    if (r.has_p) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "(p = %.4f)", r.p);
      cell += "\n" + std::string(buf) + (r.p > 0.05 ? "" : "*");
    }
    col.push_back(cell);
  }
  return col;
}

// The explanation sacreBLEU prints under a paired test's table.
void print_paired_legend(const std::string& baseline, const EvalOptions& o, std::ostream& out) {
  const std::string test_type = o.paired_bs ? "bootstrap resampling" : "approximate randomization";
  const int n = o.paired_bs ? o.paired_bs_n : o.paired_ar_n;
  const std::string msg =
      "Paired " + test_type + " test with " + std::to_string(n) + " " + (o.paired_bs ? "resampling trials" : "trials");
  const std::string dashes(unicode::decode(msg).size(), '-');
  out << dashes << "\n" << msg << "\n" << dashes << "\n";
  out << " - Each system is pairwise compared to " << baseline << ".\n";
  if (o.paired_bs)
    out << "   Actual system score / bootstrap estimated true mean / 95% CI are provided for each metric.\n";
  else
    out << "   Actual system score is provided for each metric.\n";
  out << "\n";
  out << " - Null hypothesis: the system and the baseline translations are essentially\n";
  out << "   generated by the same underlying process. For a given system and the baseline,\n";
  out << "   the p-value is roughly the probability of the absolute score difference (delta)\n";
  out << "   or higher occurring due to chance, under the assumption that the null hypothesis is correct.\n";
  out << "\n";
  out << " - Assuming a significance threshold of 0.05, the null hypothesis can be rejected\n";
  out << "   for p-values < 0.05 (marked with \"*\"). This means that the delta is unlikely to be attributed\n";
  out << "   to chance, hence the system is significantly \"different\" than the baseline.\n";
  out << "   Otherwise, the p-values are highlighted in red.\n";
  out << "\n";
  out << " - NOTE: Significance does not tell whether a system is \"better\" than the baseline but rather\n";
  out << "   emphasizes the \"difference\" of the systems in terms of the replicability of the delta.\n";
  out << "\n";
}

// Several systems as sacreBLEU prints them: json, or a grid (a row per system, a column per
// metric), a paired test's legend, and the metrics' signatures.
void print_table(const std::vector<System>& systems, const std::vector<std::string>& metric_names,
                 const std::vector<std::vector<PairedResult>>& results, const std::vector<std::string>& signatures,
                 const EvalOptions& o, std::ostream& out) {
  if (o.format == "json") {
    print_json_table(systems, metric_names, results, o, out);
    return;
  }
  const bool any_ci = std::any_of(results.begin(), results.end(), [](const auto& col) {
    return std::any_of(col.begin(), col.end(), [](const PairedResult& r) { return r.has_ci; });
  });
  std::vector<std::string> headers{"System"};
  std::vector<std::vector<std::string>> columns(1);
  std::vector<Align> aligns{Align::kRight};
  for (const auto& s : systems) columns[0].push_back(s.name);
  for (std::size_t m = 0; m < metric_names.size(); ++m) {
    headers.push_back(any_ci ? metric_names[m] + " (μ ± 95% CI)" : metric_names[m]);
    columns.push_back(metric_column(results[m], o));
    aligns.push_back(Align::kCenter);
  }
  out << fancy_grid(headers, columns, aligns) << "\n\n";
  if (o.paired_bs || o.paired_ar) print_paired_legend(systems[0].name, o, out);
  out << "-----------------\nMetric signatures\n-----------------\n";
  for (std::size_t m = 0; m < metric_names.size(); ++m) {
    std::string name = metric_names[m];
    if (name.size() < 10) name += std::string(10 - name.size(), ' ');
    out << " - " << name << " " << signatures[m] << "\n";
  }
}

}  // namespace

void validate(const EvalOptions& o) {
  if (o.references.empty())
    throw ConfigError("give at least one reference file: gloss eval REF [REF ...] [-i HYP ...]");
  if (o.metrics.empty()) throw ConfigError("-m: give at least one metric (bleu, chrf, ter)");
  for (const auto& m : o.metrics)
    if (m != "bleu" && m != "chrf" && m != "ter")
      throw ConfigError("-m: unknown metric '" + m + "'; choose from: bleu, chrf, ter");
  if (o.format != "text" && o.format != "json")
    throw ConfigError("-f: unknown format '" + o.format + "'; choose text or json");
  if (o.width < 0 || o.width > 20)
    throw ConfigError("-w must be between 0 and 20 (got " + std::to_string(o.width) + ")");
  if (o.num_refs < 1 || o.num_refs > 1000)
    throw ConfigError("--num-refs must be between 1 and 1000 (got " + std::to_string(o.num_refs) + ")");
  if (o.num_refs > 1 && o.references.size() > 1)
    throw ConfigError("--num-refs reads tab-separated references from one file; give a single reference file");
  if (o.paired_bs && o.paired_ar) throw ConfigError("--paired-bs and --paired-ar exclude each other; choose one");
  if (o.sentence_level && o.metrics.size() > 1)
    throw ConfigError("--sentence-level works with one metric at a time (got -m with " +
                      std::to_string(o.metrics.size()) + ")");
  if (o.sentence_level && (o.confidence || o.paired_bs || o.paired_ar))
    throw ConfigError("statistical tests are unavailable with --sentence-level");
  if (o.threads < 1 || o.threads > 256)
    throw ConfigError("--threads must be between 1 and 256 (got " + std::to_string(o.threads) + ")");
  for (const auto& [name, n] : {std::pair<const char*, int>{"--paired-bs-n", o.paired_bs_n},
                                {"--paired-ar-n", o.paired_ar_n},
                                {"--confidence-n", o.confidence_n}})
    if (n < 1 || n > 1000000)
      throw ConfigError(std::string(name) + " must be between 1 and 1000000 (got " + std::to_string(n) + ")");
  validate(o.bleu);
  validate(o.chrf);
}

namespace {

// Every system has as many lines as the references, and the options fit the system count.
void check_systems(const EvalOptions& o, const std::vector<System>& systems, std::size_t segments,
                   const std::string& ref_name) {
  const bool paired = o.paired_bs || o.paired_ar;
  if (o.sentence_level && systems.size() > 1)
    throw ConfigError("--sentence-level evaluates one system; got " + std::to_string(systems.size()));
  if (paired && systems.size() == 1) throw ConfigError("paired tests need several systems: -i BASELINE SYSTEM [...]");
  if (systems.size() > 1 && o.confidence) throw ConfigError("-ci is for one system; use --paired-bs for several");
  for (const auto& s : systems) {
    if (s.lines.empty()) throw InputError(s.name, 0, "contains no sentence; give one hypothesis per reference line");
    if (s.lines.size() != segments)
      throw InputError(s.name, 0,
                       "has " + std::to_string(s.lines.size()) + " lines but the reference " + ref_name + " has " +
                           std::to_string(segments) + "; hypothesis and reference files need one line per segment");
  }
}

// --sentence-level: one score line per segment.
void write_sentence_scores(const EvalOptions& o, const Metric& metric, const System& system,
                           const std::vector<int>& refs_per_segment, std::ostream& out) {
  for (std::size_t i = 0; i < system.lines.size(); ++i) {
    const Score s = metric.compute(metric.segment_stats(system.lines[i], i));
    const std::string sig = metric.signature(std::to_string(refs_per_segment[i])).format(o.short_signature);
    out << score_line(s, o.width, o.score_only, sig, false, {}) << "\n";
  }
}

// One system's score line for `metric` (with -ci, its bootstrap confidence interval).
std::string single_system_line(const EvalOptions& o, const Metric& metric, const System& system,
                               const std::string& nrefs, const Seed& seed) {
  Confidence conf;
  Signature sig = metric.signature(nrefs);
  Stats total;
  if (o.confidence) {
    const auto stats = all_stats(metric, system, o.threads);
    total = sum_stats(stats, metric.num_stats());
    const Resampler rs(seed.value, system.lines.size());
    std::tie(conf.mean, conf.ci) = estimate_ci(resampled_scores(metric, stats, rs, o.confidence_n));
    conf.present = true;
    sig.set("bs", "bs", std::to_string(o.confidence_n));
    sig.set("seed", "rs", seed.text);
  } else {
    total = sum_all(metric, system, o.threads);
  }
  const bool json = o.format == "json";
  return score_line(metric.compute(total), o.width, o.score_only, sig.format(json ? false : o.short_signature), json,
                    conf);
}

// Approximate randomisation: swap each segment's outputs between the two systems with
// probability 1/2 and count how often the shuffled difference exceeds the real one.
double approximate_randomisation_p(const Metric& metric, const std::vector<Stats>& baseline,
                                   const std::vector<Stats>& system, const Seed& seed, int samples, double diff) {
  std::mt19937_64 rng(seed.value);
  const std::size_t width = metric.num_stats();
  Stats a(width), b(width);
  std::vector<double> diffs;
  diffs.reserve(static_cast<std::size_t>(samples));
  for (int t = 0; t < samples; ++t) {
    std::fill(a.begin(), a.end(), 0.0);
    std::fill(b.begin(), b.end(), 0.0);
    std::uint64_t bits = 0;
    for (std::size_t i = 0; i < baseline.size(); ++i) {
      if (i % 64 == 0) bits = rng();
      const bool swap = (bits >> (i % 64)) & 1U;
      const Stats& x = swap ? baseline[i] : system[i];
      const Stats& y = swap ? system[i] : baseline[i];
      for (std::size_t k = 0; k < width; ++k) {
        a[k] += x[k];
        b[k] += y[k];
      }
    }
    diffs.push_back(std::abs(metric.compute(a).score - metric.compute(b).score));
  }
  return p_value(diffs, diff);
}

// Paired bootstrap resampling: the p-value of the difference from the baseline's resampled
// scores (the same resamples for both), and the system's confidence interval.
void paired_bootstrap(const Metric& metric, const std::vector<Stats>& system,
                      const std::vector<double>& baseline_resampled, const Resampler& rs, int samples, double diff,
                      PairedResult& r) {
  const auto sys_resampled = resampled_scores(metric, system, rs, samples);
  std::vector<double> sample_diffs(sys_resampled.size());
  for (std::size_t k = 0; k < sample_diffs.size(); ++k)
    sample_diffs[k] = std::abs(sys_resampled[k] - baseline_resampled[k]);
  const double mean =
      std::accumulate(sample_diffs.begin(), sample_diffs.end(), 0.0) / static_cast<double>(sample_diffs.size());
  for (auto& d : sample_diffs) d -= mean;
  r.p = p_value(sample_diffs, diff);
  std::tie(r.mean, r.ci) = estimate_ci(sys_resampled);
  r.has_ci = true;
}

// One metric's column of the several-systems table with --paired-bs or --paired-ar: the
// baseline (systems[0]) first, then each system with its p-value against it. Sets `name` and
// adds the test's settings to `sig`.
std::vector<PairedResult> paired_column(const EvalOptions& o, const Metric& metric, const std::vector<System>& systems,
                                        const Seed& seed, Signature& sig, std::string& name) {
  const auto bl_stats = all_stats(metric, systems[0], o.threads);
  const Score bl_score = metric.compute(sum_stats(bl_stats, metric.num_stats()));
  name = bl_score.name;
  const Resampler rs(seed.value, systems[0].lines.size());
  const int n_samples = o.paired_bs ? o.paired_bs_n : o.paired_ar_n;
  const int n_ci = o.paired_bs ? o.paired_bs_n : (o.paired_ar_ci ? 1000 : 0);
  PairedResult bl{bl_score.score};
  std::vector<double> bl_resampled;
  if (n_ci > 0) {
    bl_resampled = resampled_scores(metric, bl_stats, rs, n_ci);
    std::tie(bl.mean, bl.ci) = estimate_ci(bl_resampled);
    bl.has_ci = true;
  }
  std::vector<PairedResult> column{bl};
  sig.set("seed", "rs", seed.text);
  sig.set(o.paired_bs ? "bs" : "ar", o.paired_bs ? "bs" : "ar", std::to_string(n_samples));
  if (o.paired_ar && n_ci > 0) sig.set("bs", "bs", std::to_string(n_ci));
  for (std::size_t s = 1; s < systems.size(); ++s) {
    const auto sys_stats = all_stats(metric, systems[s], o.threads);
    const Score sys_score = metric.compute(sum_stats(sys_stats, metric.num_stats()));
    const double diff = std::abs(bl_score.score - sys_score.score);
    PairedResult r{sys_score.score};
    if (o.paired_bs) {
      paired_bootstrap(metric, sys_stats, bl_resampled, rs, n_samples, diff, r);
    } else {
      r.p = approximate_randomisation_p(metric, bl_stats, sys_stats, seed, n_samples, diff);
      if (n_ci > 0) {
        std::tie(r.mean, r.ci) = estimate_ci(resampled_scores(metric, sys_stats, rs, n_ci));
        r.has_ci = true;
      }
    }
    r.has_p = true;
    column.push_back(r);
  }
  return column;
}

// Several systems: a table, optionally with a paired significance test against the first.
void write_table(const EvalOptions& o, const std::vector<NamedMetric>& metrics, const std::vector<System>& systems,
                 const std::string& nrefs, const Seed& seed, std::ostream& out) {
  std::vector<std::string> metric_names, signatures;
  std::vector<std::vector<PairedResult>> results;
  for (const auto& nm : metrics) {
    const Metric& metric = *nm.metric;
    Signature sig = metric.signature(nrefs);
    std::vector<PairedResult> column;
    std::string name;
    if (o.paired_bs || o.paired_ar) {
      column = paired_column(o, metric, systems, seed, sig, name);
    } else {
      for (const auto& s : systems) {
        const Score score = metric.compute(sum_all(metric, s, o.threads));
        name = score.name;
        column.push_back({score.score});
      }
    }
    metric_names.push_back(name);
    signatures.push_back(sig.format(o.short_signature));
    results.push_back(column);
  }
  print_table(systems, metric_names, results, signatures, o, out);
}

}  // namespace

void run_eval(const EvalOptions& o, std::istream& in, std::ostream& out) {
  validate(o);
  const auto refs = read_references(o);
  const auto systems = read_systems(o, in, o.paired_bs || o.paired_ar);
  const std::size_t segments = refs[0].size();
  const std::string ref_name = o.references[0];
  check_systems(o, systems, segments, ref_name);

  auto metrics = make_metrics(o);
  std::vector<int> refs_per_segment;
  for (auto& m : metrics) refs_per_segment = m.metric->set_references(refs);
  for (std::size_t i = 0; i < segments; ++i)
    if (refs_per_segment[i] == 0)
      throw InputError(ref_name, i + 1, "empty reference; every segment needs at least one non-empty reference");
  const std::string nrefs = nrefs_of(refs_per_segment);

  std::ostringstream buffer;  // nothing is written unless everything succeeds
  if (o.sentence_level) {
    write_sentence_scores(o, *metrics[0].metric, systems[0], refs_per_segment, buffer);
  } else if (systems.size() == 1) {
    const Seed seed = read_seed();
    std::vector<std::string> results;
    for (const auto& nm : metrics) results.push_back(single_system_line(o, *nm.metric, systems[0], nrefs, seed));
    print_single_results(results, o.format, buffer);
  } else {
    write_table(o, metrics, systems, nrefs, read_seed(), buffer);
  }
  out << buffer.str();
}

}  // namespace gloss::eval
