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

// An integer field of a row (`fallback` when absent): a JSON integer in 0..max. A float or a
// number beyond the target type is never converted (that is undefined behaviour).
long long integer_field(const nlohmann::json& j, const char* key, long long max, long long fallback,
                        const std::string& path, std::size_t line) {
  if (!j.contains(key)) return fallback;
  const auto& v = j.at(key);
  const bool fits =
      (v.is_number_unsigned() && v.get<std::uint64_t>() <= static_cast<std::uint64_t>(max)) ||
      (v.is_number_integer() && !v.is_number_unsigned() && v.get<std::int64_t>() >= 0 && v.get<std::int64_t>() <= max);
  if (!fits)
    throw InputError(path, line,
                     std::string(key) + " " + v.dump() + " is not an integer in 0.." + std::to_string(max) +
                         "; is this a metrics.jsonl?");
  return v.get<long long>();
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
      r.step = integer_field(j, "step", 1000000000000LL, -1, path, n);
      if (r.step < 0) throw InputError(path, n, "has no \"step\"; is this a metrics.jsonl?");
      r.epoch = static_cast<int>(integer_field(j, "epoch", 1000000000, 0, path, n));
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
      s = integer_field(nlohmann::json::parse(line), "step", 1000000000000LL, -1, path, n);
      if (s < 0) throw InputError(path, n, "has no \"step\"; move the file away to start a new log");
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
