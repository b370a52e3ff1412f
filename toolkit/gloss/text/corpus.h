#pragma once
// Parallel corpora: streamed from plain or .gz files in lock step, encoded into subword ids,
// and length-filtered with a report of every dropped pair.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "gloss/text/options.h"
#include "gloss/text/subword.h"

namespace gloss::text {

// Sentence pairs as subword ids (no BOS/EOS), stored flat.
class EncodedCorpus {
 public:
  std::size_t size() const { return src_offsets_.size() - 1; }
  std::span<const std::int32_t> src(std::size_t i) const {
    return {src_ids_.data() + src_offsets_[i], src_offsets_[i + 1] - src_offsets_[i]};
  }
  std::span<const std::int32_t> tgt(std::size_t i) const {
    return {tgt_ids_.data() + tgt_offsets_[i], tgt_offsets_[i + 1] - tgt_offsets_[i]};
  }
  std::size_t src_len(std::size_t i) const { return src_offsets_[i + 1] - src_offsets_[i]; }
  std::size_t tgt_len(std::size_t i) const { return tgt_offsets_[i + 1] - tgt_offsets_[i]; }
  // Line number (1-based) of pair i in the original files.
  std::size_t line(std::size_t i) const { return lines_[i]; }
  void add(const std::vector<int>& src, const std::vector<int>& tgt, std::size_t line);

 private:
  std::vector<std::int32_t> src_ids_, tgt_ids_;
  std::vector<std::size_t> src_offsets_{0}, tgt_offsets_{0};
  std::vector<std::size_t> lines_;
};

struct FilterOptions {
  int max_src_len = 0;         // 0: no limit
  int max_tgt_len = 0;         // 0: no limit
  double max_len_ratio = 0.0;  // 0: no limit
  bool drop_empty = true;
};

struct FilterReport {
  std::size_t read = 0, kept = 0, empty = 0, src_too_long = 0, tgt_too_long = 0, bad_ratio = 0;
  // "29000 pairs read, 28911 kept; dropped: 3 empty, 60 source > 100, ..." (nothing dropped silently)
  std::string summary(const FilterOptions& options) const;
  // Its "dropped: ..." part ("" when nothing was dropped).
  std::string dropped(const FilterOptions& options) const;
};

FilterOptions training_filter(const DataOptions& data);

// Whether a pair of these subword lengths passes the filter (the rule encode_parallel applies).
bool keeps(std::size_t src_len, std::size_t tgt_len, const FilterOptions& filter);

// Reads both files in lock step and returns their common line count; throws InputError naming
// both files and the line where one ends (and for invalid UTF-8). Cheap: run it before training.
std::size_t check_parallel(const std::string& src_path, const std::string& tgt_path);

// Reads src_path and tgt_path line by line in lock step and encodes them on `threads`
// threads. Throws InputError if the files differ in length (naming both and the line).
EncodedCorpus encode_parallel(const std::string& src_path, const std::string& tgt_path, const SubwordModel& src_model,
                              const SubwordModel& tgt_model, const FilterOptions& filter, int threads,
                              FilterReport* report = nullptr);

}  // namespace gloss::text
