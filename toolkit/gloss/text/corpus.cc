#include "gloss/text/corpus.h"

#include <algorithm>
#include <cstdint>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "gloss/util/error.h"
#include "gloss/util/format.h"
#include "gloss/util/line_reader.h"

namespace gloss::text {

void EncodedCorpus::widen() {
  wide_ = true;
  for (auto& b : blocks_) {
    b.high.reserve(b.low.capacity());
    b.high.assign(b.low.size(), 0);
  }
}

void EncodedCorpus::add(const std::vector<int>& src, const std::vector<int>& tgt, std::size_t line) {
  const std::size_t n = src.size() + tgt.size();
  if (n > UINT32_MAX) throw std::length_error("EncodedCorpus: a sentence pair of more than 2^32 - 1 subwords");
  for (const auto* side : {&src, &tgt})
    for (int id : *side) {
      if (id < 0 || id > 0xFFFFFF) throw std::out_of_range("EncodedCorpus: subword id outside 0 .. 2^24 - 1");
      if (id > 0xFFFF && !wide_) widen();
    }
  if (blocks_.empty() || blocks_.back().low.size() + n > blocks_.back().low.capacity()) {
    const std::size_t grown = blocks_.empty() ? kFirstBlockIds : std::min(kBlockIds, 2 * blocks_.back().low.capacity());
    blocks_.emplace_back();
    blocks_.back().low.reserve(std::max(grown, n));
    if (wide_) blocks_.back().high.reserve(blocks_.back().low.capacity());
  }
  Block& block = blocks_.back();
  pairs_.push_back({static_cast<std::uint32_t>(blocks_.size() - 1), static_cast<std::uint32_t>(block.low.size()),
                    static_cast<std::uint32_t>(src.size()), static_cast<std::uint32_t>(tgt.size()), line});
  for (const auto* side : {&src, &tgt})
    for (int id : *side) {
      block.low.push_back(static_cast<std::uint16_t>(id & 0xFFFF));
      if (wide_) block.high.push_back(static_cast<std::uint8_t>(id >> 16));
    }
}

std::string FilterReport::dropped(const FilterOptions& o) const {
  std::vector<std::string> parts;
  if (empty) parts.push_back(std::to_string(empty) + " with an empty side");
  if (src_too_long)
    parts.push_back(std::to_string(src_too_long) + " source > " + std::to_string(o.max_src_len) + " subwords");
  if (tgt_too_long)
    parts.push_back(std::to_string(tgt_too_long) + " target > " + std::to_string(o.max_tgt_len) + " subwords");
  if (bad_ratio) {
    parts.push_back(std::to_string(bad_ratio) + " length ratio > " + fixed_g(o.max_len_ratio));
  }
  if (parts.empty()) return "";
  std::string s = "dropped: ";
  for (std::size_t i = 0; i < parts.size(); ++i) s += (i ? ", " : "") + parts[i];
  return s;
}

std::string FilterReport::summary(const FilterOptions& o) const {
  const std::string s = std::to_string(read) + " pairs read, " + std::to_string(kept) + " kept";
  const std::string d = dropped(o);
  return d.empty() ? s : s + "; " + d;
}

FilterOptions training_filter(const DataOptions& data) {
  return {data.max_src_len, data.max_tgt_len, data.max_len_ratio, true};
}

namespace {

void mismatch(const LineReader& longer, const LineReader& shorter) {
  throw InputError(longer.path(), longer.line_number(),
                   "no matching line in " + shorter.path() + " (it ends at line " +
                       std::to_string(shorter.line_number()) + "); both files need one sentence per line");
}

}  // namespace

std::size_t check_parallel(const std::string& src_path, const std::string& tgt_path) {
  LineReader src(src_path), tgt(tgt_path);
  std::string a, b;
  for (;;) {
    const bool has_src = src.next(a), has_tgt = tgt.next(b);
    if (has_src != has_tgt) mismatch(has_src ? src : tgt, has_src ? tgt : src);
    if (!has_src) return src.line_number();
  }
}

namespace {

enum class Verdict { kKeep, kEmpty, kSrcLong, kTgtLong, kRatio };

Verdict judge(std::size_t ls, std::size_t lt, const FilterOptions& o) {
  if (o.drop_empty && (ls == 0 || lt == 0)) return Verdict::kEmpty;
  if (o.max_src_len > 0 && ls > static_cast<std::size_t>(o.max_src_len)) return Verdict::kSrcLong;
  if (o.max_tgt_len > 0 && lt > static_cast<std::size_t>(o.max_tgt_len)) return Verdict::kTgtLong;
  if (o.max_len_ratio > 0 && ls > 0 && lt > 0) {
    const double ratio = static_cast<double>(std::max(ls, lt)) / static_cast<double>(std::min(ls, lt));
    if (ratio > o.max_len_ratio) return Verdict::kRatio;
  }
  return Verdict::kKeep;
}

}  // namespace

bool keeps(std::size_t src_len, std::size_t tgt_len, const FilterOptions& filter) {
  return judge(src_len, tgt_len, filter) == Verdict::kKeep;
}

EncodedCorpus encode_parallel(const std::string& src_path, const std::string& tgt_path, const SubwordModel& src_model,
                              const SubwordModel& tgt_model, const FilterOptions& filter, int threads,
                              FilterReport* report) {
  LineReader src_reader(src_path), tgt_reader(tgt_path);
  EncodedCorpus corpus;
  FilterReport counts;
  constexpr std::size_t kChunk = 8192;  // lines read, then encoded in parallel, then appended in order
  std::vector<std::string> src_lines(kChunk), tgt_lines(kChunk);
  std::vector<std::vector<int>> src_ids(kChunk), tgt_ids(kChunk);
  const std::size_t workers = static_cast<std::size_t>(std::max(1, threads));
  for (;;) {
    std::size_t n = 0;
    for (; n < kChunk; ++n) {
      const bool has_src = src_reader.next(src_lines[n]);
      const bool has_tgt = tgt_reader.next(tgt_lines[n]);
      if (has_src != has_tgt) mismatch(has_src ? src_reader : tgt_reader, has_src ? tgt_reader : src_reader);
      if (!has_src) break;
    }
    if (n == 0) break;
    auto work = [&](std::size_t w) {
      for (std::size_t i = w; i < n; i += workers) {
        src_ids[i] = src_model.encode(src_lines[i]);
        tgt_ids[i] = tgt_model.encode(tgt_lines[i]);
      }
    };
    if (workers == 1 || n < 256) {
      work(0);
      if (workers > 1)
        for (std::size_t w = 1; w < workers; ++w) work(w);
    } else {
      std::vector<std::thread> pool;
      std::exception_ptr error;
      std::mutex m;
      for (std::size_t w = 0; w < workers; ++w)
        pool.emplace_back([&, w] {
          try {
            work(w);
          } catch (...) {
            std::lock_guard<std::mutex> lock(m);
            if (!error) error = std::current_exception();
          }
        });
      for (auto& t : pool) t.join();
      if (error) std::rethrow_exception(error);
    }
    const std::size_t first_line = src_reader.line_number() - n + 1;
    for (std::size_t i = 0; i < n; ++i) {
      ++counts.read;
      switch (judge(src_ids[i].size(), tgt_ids[i].size(), filter)) {
        case Verdict::kKeep:
          ++counts.kept;
          corpus.add(src_ids[i], tgt_ids[i], first_line + i);
          break;
        case Verdict::kEmpty:
          ++counts.empty;
          break;
        case Verdict::kSrcLong:
          ++counts.src_too_long;
          break;
        case Verdict::kTgtLong:
          ++counts.tgt_too_long;
          break;
        case Verdict::kRatio:
          ++counts.bad_ratio;
          break;
      }
    }
    if (n < kChunk) break;
  }
  if (report) *report = counts;
  return corpus;
}

}  // namespace gloss::text
