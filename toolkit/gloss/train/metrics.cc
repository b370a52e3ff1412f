#include "gloss/train/metrics.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <ostream>

#include "gloss/util/atomic_file.h"
#include "gloss/util/error.h"

namespace gloss::train {

void write_metrics_row(std::ostream& out, const MetricsRow& r) {
  out << "{\"step\": " << r.step << ", \"epoch\": " << r.epoch << ", \"train_loss\": " << r.train_loss
      << ", \"valid_ce\": " << r.valid_ce << ", \"valid_ppl\": " << r.valid_ppl << ", \"valid_bleu\": " << r.valid_bleu
      << ", \"valid_chrf\": " << r.valid_chrf << ", \"lr\": " << r.lr << ", \"elapsed_s\": " << r.elapsed_s << "}"
      << std::endl;
}

namespace {

// A row's step: a JSON integer in 0..10^12 (a float or a huge number is not converted: that is
// undefined behaviour for values beyond long long).
long long step_of(const nlohmann::json& j, const std::string& path, std::size_t line) {
  const auto& s = j.at("step");
  const bool fits = (s.is_number_unsigned() && s.get<std::uint64_t>() <= 1000000000000ULL) ||
                    (s.is_number_integer() && !s.is_number_unsigned() && s.get<std::int64_t>() >= 0 &&
                     s.get<std::int64_t>() <= 1000000000000LL);
  if (!fits)
    throw InputError(path, line, "step " + s.dump() + " is not an integer in 0..10^12; is this a metrics.jsonl?");
  return s.get<long long>();
}

// Values a training writes: finite numbers of sane size.
void check_row(const MetricsRow& r, const std::string& path, std::size_t line) {
  for (double v : {r.train_loss, r.valid_ce, r.valid_ppl, r.valid_bleu, r.valid_chrf, r.lr, r.elapsed_s})
    if (!std::isfinite(v) || std::abs(v) > 1e12)
      throw InputError(path, line, "has a value that is not a finite number below 10^12; is this a metrics.jsonl?");
}

}  // namespace

std::vector<MetricsRow> read_metrics(const std::string& path) {
  require_file(path);
  std::ifstream in(path);
  if (!in) throw InputError(path, 0, "cannot be opened");
  std::map<long long, MetricsRow> by_step;
  std::string line;
  std::size_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      const auto j = nlohmann::json::parse(line);
      MetricsRow r;
      r.step = step_of(j, path, n);
      r.epoch = j.value("epoch", 0);
      r.train_loss = j.value("train_loss", 0.0);
      r.valid_ce = j.value("valid_ce", 0.0);
      r.valid_ppl = j.value("valid_ppl", 0.0);
      r.valid_bleu = j.value("valid_bleu", 0.0);
      r.valid_chrf = j.value("valid_chrf", 0.0);
      r.lr = j.value("lr", 0.0);
      r.elapsed_s = j.value("elapsed_s", 0.0);
      check_row(r, path, n);
      by_step[r.step] = r;
    } catch (const nlohmann::json::exception&) {
      throw InputError(path, n,
                       "is not a metrics line of gloss train (a JSON object with \"step\"); give the "
                       "metrics.jsonl of a run folder");
    }
  }
  std::vector<MetricsRow> rows;
  for (auto& [step, r] : by_step) rows.push_back(r);
  return rows;
}

void truncate_metrics(const std::string& path, long long step) {
  if (!std::filesystem::is_regular_file(path))
    throw InputError(path, 0, "is not a regular file; move it away (gloss train writes its validation log there)");
  std::ifstream in(path);
  std::string line, kept;
  std::size_t n = 0;
  bool dropped = false;
  while (std::getline(in, line)) {
    ++n;
    long long s = -1;
    try {
      s = step_of(nlohmann::json::parse(line), path, n);
    } catch (const nlohmann::json::exception&) {
      throw InputError(path, n, "is not a metrics line of gloss train; move the file away to start a new log");
    }
    if (s <= step)
      kept += line + "\n";
    else
      dropped = true;
  }
  if (dropped) atomic_write_file(path, kept);
}

}  // namespace gloss::train
