#pragma once
// Parallel corpora: streamed from plain or .gz files in lock step, encoded into subword ids,
// and length-filtered with a report of every dropped pair.
#include <cstdint>
#include <deque>
#include <span>
#include <string>
#include <vector>

#include "gloss/text/options.h"
#include "gloss/text/subword.h"

namespace gloss::text {

// Sentence pairs as subword ids (no BOS/EOS). The ids live in blocks that never move (a pair's
// source and target ids contiguous in one block; blocks double from 4,096 ids up to kBlockIds),
// the per-pair records in a deque: a corpus grows without copying what it holds, so its peak
// memory is its size (4 bytes a subword, 24 a pair), not two or three times that as a doubling
// vector's would be while it moves.
class EncodedCorpus {
 public:
  std::size_t size() const { return pairs_.size(); }
  std::span<const std::int32_t> src(std::size_t i) const {
    const Pair& p = pairs_[i];
    return {blocks_[p.block].data() + p.offset, p.src_len};
  }
  std::span<const std::int32_t> tgt(std::size_t i) const {
    const Pair& p = pairs_[i];
    return {blocks_[p.block].data() + p.offset + p.src_len, p.tgt_len};
  }
  std::size_t src_len(std::size_t i) const { return pairs_[i].src_len; }
  std::size_t tgt_len(std::size_t i) const { return pairs_[i].tgt_len; }
  // Line number (1-based) of pair i in the original files.
  std::size_t line(std::size_t i) const { return pairs_[i].line; }
  // Appends a pair; one of more than 2^32 - 1 ids in all throws std::length_error.
  void add(const std::vector<int>& src, const std::vector<int>& tgt, std::size_t line);

  static constexpr std::size_t kFirstBlockIds = 4096, kBlockIds = std::size_t{1} << 20;  // 16 KB .. 4 MB

 private:
  struct Pair {
    std::uint32_t block, offset;     // where its ids start: blocks_[block][offset]
    std::uint32_t src_len, tgt_len;  // source ids, then target ids
    std::uint64_t line;
  };
  std::vector<std::vector<std::int32_t>> blocks_;  // each reserved once, never regrown
  std::deque<Pair> pairs_;
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
