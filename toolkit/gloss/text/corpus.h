#pragma once
// Parallel corpora: streamed from plain or .gz files in lock step, encoded into subword ids,
// and length-filtered with a report of every dropped pair.
#include <cstddef>
#include <cstdint>
#include <deque>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "gloss/text/options.h"
#include "gloss/text/subword.h"

namespace gloss::text {

// Sentence pairs as subword ids (no BOS/EOS). The ids live in blocks that never move (a pair's
// source and target ids contiguous in one block; blocks double from 4,096 ids up to kBlockIds),
// the per-pair records in a deque: a corpus grows without copying what it holds, so its peak
// memory is its size, not two or three times that as a doubling vector's would be while it
// moves. An id takes 2 bytes while every id is below 65,536 (vocabularies up to 64 Ki, the
// usual), 3 once one is not (up to 2^24 - 1); a pair's record 24 bytes.
//
// A training corpus can live on disk instead (on_disk()): ids and records are appended to
// unnamed files in a folder (created with mkstemp, unlinked at once: nothing is left behind,
// whatever ends the process) and read back with pread, a batch at a time (gather, slice). In
// memory it keeps only each pair's two lengths (8 bytes a pair), which batching sorts by; the
// files' pages are the kernel's page cache, not the process's memory. (Not mmap: on today's
// kernels a mapped page fault maps the whole large folio around it, up to megabytes, so the
// random reads of batching would pull most of the files into the process.) A copy of an
// on-disk corpus shares its files.
class EncodedCorpus {
 public:
  // One side's ids of one pair: a view into the corpus, valid while the corpus lives.
  class Ids {
   public:
    struct iterator {
      using iterator_category = std::forward_iterator_tag;
      using value_type = std::int32_t;
      using difference_type = std::ptrdiff_t;
      using pointer = void;
      using reference = std::int32_t;
      const Ids* ids = nullptr;
      std::size_t k = 0;
      std::int32_t operator*() const { return (*ids)[k]; }
      iterator& operator++() {
        ++k;
        return *this;
      }
      iterator operator++(int) {
        iterator old = *this;
        ++k;
        return old;
      }
      bool operator==(const iterator& o) const { return k == o.k; }
    };
    Ids(const std::uint16_t* low, const std::uint8_t* high, std::size_t n) : low_(low), high_(high), n_(n) {}
    std::size_t size() const { return n_; }
    std::int32_t operator[](std::size_t k) const {
      return static_cast<std::int32_t>(low_[k]) | (high_ ? static_cast<std::int32_t>(high_[k]) << 16 : 0);
    }
    iterator begin() const { return {this, 0}; }
    iterator end() const { return {this, n_}; }

   private:
    const std::uint16_t* low_;
    const std::uint8_t* high_;  // bits 16-23, or nullptr while every id fits 16 bits
    std::size_t n_;
  };

  // An empty corpus kept in memory.
  EncodedCorpus() = default;
  // An empty corpus whose ids go to unnamed files in `dir`. Throws UserError naming `dir` when
  // no file can be created there.
  static EncodedCorpus on_disk(const std::string& dir);

  std::size_t size() const;
  std::size_t src_len(std::size_t i) const { return disk_ ? disk_length(i, 0) : pairs_[i].src_len; }
  std::size_t tgt_len(std::size_t i) const { return disk_ ? disk_length(i, 1) : pairs_[i].tgt_len; }
  // In memory only (an on-disk corpus throws std::logic_error: read it through gather or slice).
  Ids src(std::size_t i) const { return ids(memory_record(i), 0, pairs_[i].src_len); }
  Ids tgt(std::size_t i) const { return ids(memory_record(i), pairs_[i].src_len, pairs_[i].tgt_len); }
  // Line number (1-based) of pair i in the original files (in memory only, as src).
  std::size_t line(std::size_t i) const { return memory_record(i).line; }

  // The pairs `indices`, in that order, as a corpus in memory: what a batch reads. On disk, one
  // read of each pair's record and ids (seal() first); UserError naming the folder if one fails.
  EncodedCorpus gather(const std::vector<std::uint32_t>& indices) const;
  // Pairs first .. first + count - 1 (clipped to size()) in memory: a sequential reader's chunk,
  // on disk two or three reads in all.
  EncodedCorpus slice(std::size_t first, std::size_t count) const;

  // Appends a pair; one of more than 2^32 - 1 ids in all throws std::length_error, an id
  // outside 0 .. 2^24 - 1 std::out_of_range (both add nothing). On disk: a failed write
  // throws UserError naming the folder; add() after seal() throws std::logic_error.
  void add(const std::vector<int>& src, const std::vector<int>& tgt, std::size_t line);

  // On disk: writes what add() buffered, so that gather and slice can read it (UserError if
  // that fails). In memory, or once sealed: nothing.
  void seal();
  bool is_on_disk() const { return disk_ != nullptr; }
  // Bytes of the files on disk (0 in memory).
  std::uint64_t disk_bytes() const;

  static constexpr std::size_t kFirstBlockIds = 4096, kBlockIds = std::size_t{1} << 20;  // 8 KB .. 2 MB (2-byte ids)

 private:
  struct Pair {
    std::uint32_t block, offset;     // where its ids start: blocks_[block] at offset
    std::uint32_t src_len, tgt_len;  // source ids, then target ids
    std::uint64_t line;
  };
  struct Block {
    std::vector<std::uint16_t> low;  // bits 0-15 of each id; reserved once, never regrown
    std::vector<std::uint8_t> high;  // bits 16-23, once some id needs them (same capacity)
  };
  class Disk;  // the files of an on-disk corpus, their write buffers and the pairs' lengths (corpus.cc)
  const Pair& memory_record(std::size_t i) const;  // pairs_[i]; std::logic_error on disk
  std::size_t disk_length(std::size_t i, int side) const;
  Ids ids(const Pair& p, std::uint32_t from, std::uint32_t n) const {
    const Block& b = blocks_[p.block];
    return {b.low.data() + p.offset + from, wide_ ? b.high.data() + p.offset + from : nullptr, n};
  }
  void add_to_disk(const std::vector<int>& src, const std::vector<int>& tgt, std::size_t line);
  void widen();  // gives every block its high bytes (zeros so far)
  std::vector<Block> blocks_;
  std::deque<Pair> pairs_;
  bool wide_ = false;
  // On disk: pairs' records in the record file, (block, offset) read as the 64-bit position
  // block * 2^32 + offset of their first id in the id files.
  std::shared_ptr<Disk> disk_;
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

// Where the encoded training corpus goes: data.tempdir, else $TMPDIR, else /tmp.
std::string corpus_folder(const DataOptions& data);

// Whether a pair of these subword lengths passes the filter (the rule encode_parallel applies).
bool keeps(std::size_t src_len, std::size_t tgt_len, const FilterOptions& filter);

// Reads both files in lock step and returns their common line count; throws InputError naming
// both files and the line where one ends (and for invalid UTF-8). Cheap: run it before training.
std::size_t check_parallel(const std::string& src_path, const std::string& tgt_path);

// Reads src_path and tgt_path line by line in lock step and encodes them on `threads`
// threads into `corpus` (empty: in memory, or EncodedCorpus::on_disk(dir)), which comes back
// sealed. Throws InputError if the files differ in length (naming both and the line).
EncodedCorpus encode_parallel(const std::string& src_path, const std::string& tgt_path, const SubwordModel& src_model,
                              const SubwordModel& tgt_model, const FilterOptions& filter, int threads,
                              FilterReport* report = nullptr, EncodedCorpus corpus = EncodedCorpus());

}  // namespace gloss::text
