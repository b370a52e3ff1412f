#include "gloss/cli/eval_cli.h"

#include <boost/program_options.hpp>

#include <algorithm>
#include <map>
#include <sstream>
#include <thread>

#include "gloss/util/error.h"

namespace po = boost::program_options;

namespace gloss::cli {
namespace {

int default_threads() {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(std::min(n, 8U));
}

// sacreBLEU's argparse accepts these single-dash multi-letter aliases.
const std::map<std::string, std::string>& aliases() {
  static const std::map<std::string, std::string> kAliases = {
      {"-nr", "--num-refs"},        {"-sl", "--sentence-level"}, {"-sv", "--smooth-value"},
      {"-tok", "--tokenize"},       {"-lc", "--lowercase"},      {"-cc", "--chrf-char-order"},
      {"-cw", "--chrf-word-order"}, {"-ci", "--confidence"},     {"-cin", "--confidence-n"},
      {"-par", "--paired-ar"},      {"-pbs", "--paired-bs"},     {"-part", "--paired-ar-n"},
      {"-parci", "--paired-ar-ci"}, {"-pbsn", "--paired-bs-n"},  {"-sh", "--short"},
      {"-nc", "--no-color"},
  };
  return kAliases;
}

// The option groups of gloss eval --help, each bound to where its values go.
po::options_description io_options(eval::EvalOptions& o, std::vector<std::string>& metrics) {
  po::options_description io("Input and output");
  io.add_options()("help,h", "print this help")(
      "input,i", po::value<std::vector<std::string>>(&o.inputs)->multitoken(),
      "system output file(s), - for standard input; several compare systems (default: standard input, "
      "tab-separated systems)")("num-refs", po::value<int>(&o.num_refs)->default_value(1),
                                "split each reference line on tabs into this many references (-nr)")(
      "metrics,m", po::value<std::vector<std::string>>(&metrics)->multitoken(),
      "metrics to compute: bleu chrf ter (default: bleu)")("sentence-level", po::bool_switch(&o.sentence_level),
                                                           "score every sentence (-sl)")(
      "format,f", po::value<std::string>(&o.format)->default_value("text"), "output format: text or json")(
      "score-only,b", po::bool_switch(&o.score_only), "print only the score")(
      "width,w", po::value<int>(&o.width)->default_value(1), "decimals of the score")(
      "short", po::bool_switch(&o.short_signature), "short signature (-sh)")(
      "quiet,q", "accepted for compatibility (Gloss prints no log lines here)")(
      "no-color", "accepted for compatibility (Gloss never colours its output) (-nc)")(
      "encoding,e", po::value<std::string>()->default_value("utf-8"), "input encoding; only utf-8 is supported")(
      "force", "accepted for compatibility")("threads", po::value<int>(&o.threads)->default_value(default_threads()),
                                             "threads that score segments in parallel (results do not depend on it)");
  return io;
}

po::options_description bleu_options(eval::EvalOptions& o, std::string& tokenize, std::string& smooth,
                                     double& smooth_value) {
  po::options_description bleu("BLEU");
  bleu.add_options()("smooth-method,s", po::value<std::string>(&smooth)->default_value("exp"),
                     "exp, floor, add-k or none")("smooth-value", po::value<double>(&smooth_value),
                                                  "value for floor (default 0.1) and add-k (default 1) (-sv)")(
      "tokenize", po::value<std::string>(&tokenize)->default_value("13a"), "13a, intl, char or none (-tok)")(
      "lowercase", po::bool_switch(&o.bleu.lowercase), "case-insensitive BLEU (-lc)")(
      "max-ngram-order", po::value<int>(&o.bleu.max_ngram_order)->default_value(4), "largest n-gram order")(
      "effective-order", po::bool_switch(&o.bleu.effective_order),
      "stop at the largest order with n-grams (always on with --sentence-level)");
  return bleu;
}

po::options_description chrf_options(eval::EvalOptions& o) {
  po::options_description chrf("chrF");
  chrf.add_options()("chrf-char-order", po::value<int>(&o.chrf.char_order)->default_value(6),
                     "character n-gram order (-cc)")(
      "chrf-word-order", po::value<int>(&o.chrf.word_order)->default_value(0), "word n-gram order; 2 = chrF++ (-cw)")(
      "chrf-beta", po::value<int>(&o.chrf.beta)->default_value(2), "weight of recall against precision")(
      "chrf-whitespace", po::bool_switch(&o.chrf.whitespace), "keep whitespace in character n-grams")(
      "chrf-lowercase", po::bool_switch(&o.chrf.lowercase), "case-insensitive chrF")(
      "chrf-eps-smoothing", po::bool_switch(&o.chrf.eps_smoothing), "epsilon smoothing (chrF++.py, NLTK, Moses)");
  return chrf;
}

po::options_description ter_options(eval::EvalOptions& o) {
  po::options_description ter("TER (defaults replicate Tercom)");
  ter.add_options()("ter-case-sensitive", po::bool_switch(&o.ter.case_sensitive), "case-sensitive TER")(
      "ter-asian-support", po::bool_switch(&o.ter.asian_support), "special treatment of CJK characters")(
      "ter-no-punct", po::bool_switch(&o.ter.no_punct), "remove punctuation")(
      "ter-normalized", po::bool_switch(&o.ter.normalized), "basic normalisation and tokenisation");
  return ter;
}

po::options_description stats_options(eval::EvalOptions& o) {
  po::options_description stats("Confidence intervals and paired tests");
  stats.add_options()("confidence", po::bool_switch(&o.confidence),
                      "bootstrap 95% confidence interval for one system (-ci)")(
      "confidence-n", po::value<int>(&o.confidence_n)->default_value(1000), "bootstrap resamples for -ci (-cin)")(
      "paired-bs", po::bool_switch(&o.paired_bs), "paired bootstrap resampling against the first system (-pbs)")(
      "paired-bs-n", po::value<int>(&o.paired_bs_n)->default_value(1000), "resamples for --paired-bs (-pbsn)")(
      "paired-ar", po::bool_switch(&o.paired_ar), "paired approximate randomisation against the first system (-par)")(
      "paired-ar-n", po::value<int>(&o.paired_ar_n)->default_value(10000), "trials for --paired-ar (-part)")(
      "paired-ar-ci", po::bool_switch(&o.paired_ar_ci), "add bootstrap confidence intervals to --paired-ar (-parci)")(
      "paired-jobs,j", po::value<int>()->default_value(1), "accepted for compatibility (tests run in-process)");
  return stats;
}

po::options_description describe(eval::EvalOptions& o, std::vector<std::string>& metrics, std::string& tokenize,
                                 std::string& smooth, double& smooth_value) {
  po::options_description all;
  all.add(io_options(o, metrics))
      .add(bleu_options(o, tokenize, smooth, smooth_value))
      .add(chrf_options(o))
      .add(ter_options(o))
      .add(stats_options(o));
  return all;
}

}  // namespace

EvalCommand parse_eval_args(const std::vector<std::string>& raw) {
  std::vector<std::string> args;
  for (const auto& a : raw) {
    auto it = aliases().find(a);
    args.push_back(it == aliases().end() ? a : it->second);
  }
  EvalCommand cmd;
  std::vector<std::string> metrics;
  std::string tokenize, smooth;
  double smooth_value = 0;
  po::options_description desc = describe(cmd.options, metrics, tokenize, smooth, smooth_value);
  po::options_description hidden;
  hidden.add_options()("refs", po::value<std::vector<std::string>>(&cmd.options.references)->multitoken());
  po::options_description all;
  all.add(desc).add(hidden);
  po::positional_options_description positional;
  positional.add("refs", -1);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(all).positional(positional).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    throw ConfigError(std::string(e.what()) + " (see gloss eval --help)");
  }
  if (vm.count("help")) {
    cmd.help = true;
    return cmd;
  }
  cmd.quiet = vm.count("quiet") > 0;
  if (!metrics.empty()) cmd.options.metrics = metrics;
  for (auto& m : cmd.options.metrics)
    for (auto& c : m) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  cmd.options.bleu.tokenizer = eval::parse_bleu_tokenizer(tokenize);
  cmd.options.bleu.smooth_method = eval::parse_smooth_method(smooth);
  if (vm.count("smooth-value")) cmd.options.bleu.smooth_value = smooth_value;
  const std::string encoding = vm["encoding"].as<std::string>();
  if (encoding != "utf-8" && encoding != "utf8" && encoding != "UTF-8")
    throw ConfigError("--encoding: only utf-8 is supported (got '" + encoding + "'); convert with iconv first");
  if (cmd.options.references.empty())
    throw ConfigError(
        "give at least one reference file: gloss eval REF [REF ...] [-i HYP ...] (see gloss eval --help)");
  eval::validate(cmd.options);
  return cmd;
}

std::string eval_usage() {
  eval::EvalOptions o;
  std::vector<std::string> metrics;
  std::string tokenize, smooth;
  double smooth_value = 0;
  std::ostringstream out;
  out << "Usage: gloss eval REF [REF ...] [-i HYP [HYP ...]] [options]\n"
         "Scores system output against references exactly as sacreBLEU 2.6.0 does (same\n"
         "arguments, same numbers, same output). Hypotheses come from standard input without -i.\n\n"
      << describe(o, metrics, tokenize, smooth, smooth_value);
  return out.str();
}

}  // namespace gloss::cli
