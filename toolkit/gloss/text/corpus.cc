#include "gloss/text/corpus.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "gloss/util/error.h"
#include "gloss/util/format.h"
#include "gloss/util/line_reader.h"
#include "gloss/util/threads.h"

namespace gloss::text {

namespace {

// One unnamed file: appended to through a buffer, read back with pread once flushed.
class UnnamedFile {
 public:
  explicit UnnamedFile(const std::string& dir) : dir_(dir) {
    std::string name = (dir.empty() ? std::string(".") : dir) + "/gloss-corpus-XXXXXX";
    fd_ = ::mkstemp(name.data());
    if (fd_ < 0)
      throw UserError(dir + ": cannot create the encoded training corpus there (" + std::strerror(errno) +
                      "); set data.tempdir to a writable folder");
    ::unlink(name.c_str());  // gone with the last descriptor, however the process ends
  }
  UnnamedFile(const UnnamedFile&) = delete;
  UnnamedFile& operator=(const UnnamedFile&) = delete;
  ~UnnamedFile() { ::close(fd_); }

  void append(const void* data, std::size_t n) {
    const auto* p = static_cast<const char*>(data);
    buffer_.insert(buffer_.end(), p, p + n);
    if (buffer_.size() >= kBuffer) flush();
  }
  // Zeros up to `bytes` in all (sparse: nothing is written).
  void extend_to(std::uint64_t bytes) {
    flush();
    if (::ftruncate(fd_, static_cast<off_t>(bytes)) != 0 || ::lseek(fd_, 0, SEEK_END) < 0) fail("writing");
    bytes_ = bytes;
  }
  void flush() {
    std::size_t done = 0;
    while (done < buffer_.size()) {
      const ssize_t n = ::write(fd_, buffer_.data() + done, buffer_.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) fail("writing");
      done += static_cast<std::size_t>(n);
    }
    bytes_ += buffer_.size();
    buffer_.clear();
  }
  void close_buffer() {
    flush();
    std::vector<char>().swap(buffer_);
  }
  // Bytes at..at+n-1 (flushed ones) into `out`; safe from several threads at once.
  void read_at(std::uint64_t at, void* out, std::size_t n) const {
    auto* p = static_cast<char*>(out);
    while (n > 0) {
      const ssize_t got = ::pread(fd_, p, n, static_cast<off_t>(at));
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) fail("reading");
      p += got;
      at += static_cast<std::uint64_t>(got);
      n -= static_cast<std::size_t>(got);
    }
  }
  std::uint64_t bytes() const { return bytes_ + buffer_.size(); }

 private:
  static constexpr std::size_t kBuffer = std::size_t{1} << 20;
  [[noreturn]] void fail(const char* what) const {
    const int err = errno;
    throw UserError(dir_ + ": " + what + " the encoded training corpus failed (" +
                    (err ? std::strerror(err) : "disk full or file cut short") +
                    "); free space or set data.tempdir to another folder");
  }
  std::string dir_;
  int fd_ = -1;
  std::vector<char> buffer_;
  std::uint64_t bytes_ = 0;  // written (or extended) so far
};

}  // namespace

class EncodedCorpus::Disk {
 public:
  explicit Disk(const std::string& dir) : dir(dir), low(dir), records(dir) {}
  std::string dir;
  UnnamedFile low, records;
  std::unique_ptr<UnnamedFile> high;   // once an id needs bits 16-23
  std::vector<std::uint32_t> lengths;  // source, target length of each pair
  std::uint64_t ids = 0;
  bool sealed = false;

  Pair record(std::size_t i) const {
    Pair p;
    records.read_at(i * sizeof(Pair), &p, sizeof p);
    return p;
  }
  // The ids of n pairs whose ids start at position `at`, appended to `low_out`, `high_out`.
  void read_ids(std::uint64_t at, std::size_t n, std::vector<std::uint16_t>& low_out,
                std::vector<std::uint8_t>& high_out) const {
    low_out.resize(n);
    low.read_at(at * 2, low_out.data(), n * 2);
    high_out.assign(n, 0);
    if (high) high->read_at(at, high_out.data(), n);
  }
  // Appends pair p to `out`, its ids at `low`, `high` (as read_ids read them).
  static void append(EncodedCorpus& out, const Pair& p, const std::uint16_t* low, const std::uint8_t* high);
};

EncodedCorpus EncodedCorpus::on_disk(const std::string& dir) {
  EncodedCorpus c;
  c.disk_ = std::make_shared<Disk>(dir);
  return c;
}

std::size_t EncodedCorpus::size() const { return disk_ ? disk_->lengths.size() / 2 : pairs_.size(); }

std::size_t EncodedCorpus::disk_length(std::size_t i, int side) const { return disk_->lengths[2 * i + side]; }

const EncodedCorpus::Pair& EncodedCorpus::memory_record(std::size_t i) const {
  if (disk_) throw std::logic_error("EncodedCorpus: src, tgt and line of an on-disk corpus: use gather or slice");
  return pairs_[i];
}

namespace {

std::vector<int> to_ints(const std::uint16_t* low, const std::uint8_t* high, std::size_t n) {
  std::vector<int> out(n);
  for (std::size_t k = 0; k < n; ++k) out[k] = static_cast<int>(low[k]) | static_cast<int>(high[k]) << 16;
  return out;
}

}  // namespace

void EncodedCorpus::Disk::append(EncodedCorpus& out, const Pair& p, const std::uint16_t* low,
                                 const std::uint8_t* high) {
  out.add(to_ints(low, high, p.src_len), to_ints(low + p.src_len, high + p.src_len, p.tgt_len), p.line);
}

EncodedCorpus EncodedCorpus::gather(const std::vector<std::uint32_t>& indices) const {
  EncodedCorpus out;
  if (!disk_) {
    for (auto i : indices) {
      const auto s = src(i), t = tgt(i);
      out.add({s.begin(), s.end()}, {t.begin(), t.end()}, line(i));
    }
    return out;
  }
  if (!disk_->sealed) throw std::logic_error("EncodedCorpus: gather before seal()");
  std::vector<std::uint16_t> low;
  std::vector<std::uint8_t> high;
  for (auto i : indices) {
    const Pair p = disk_->record(i);
    disk_->read_ids(static_cast<std::uint64_t>(p.block) << 32 | p.offset, p.src_len + p.tgt_len, low, high);
    Disk::append(out, p, low.data(), high.data());
  }
  return out;
}

EncodedCorpus EncodedCorpus::slice(std::size_t first, std::size_t count) const {
  first = std::min(first, size());
  count = std::min(count, size() - first);
  if (!disk_) {
    std::vector<std::uint32_t> indices(count);
    for (std::size_t k = 0; k < count; ++k) indices[k] = static_cast<std::uint32_t>(first + k);
    return gather(indices);
  }
  if (!disk_->sealed) throw std::logic_error("EncodedCorpus: slice before seal()");
  EncodedCorpus out;
  if (count == 0) return out;
  std::vector<Pair> records(count);
  disk_->records.read_at(first * sizeof(Pair), records.data(), count * sizeof(Pair));
  const auto start = [](const Pair& p) { return static_cast<std::uint64_t>(p.block) << 32 | p.offset; };
  const std::uint64_t at = start(records.front());
  const std::uint64_t n = start(records.back()) + records.back().src_len + records.back().tgt_len - at;
  std::vector<std::uint16_t> low;
  std::vector<std::uint8_t> high;
  disk_->read_ids(at, static_cast<std::size_t>(n), low, high);
  for (const Pair& p : records) {
    const std::size_t o = static_cast<std::size_t>(start(p) - at);
    Disk::append(out, p, low.data() + o, high.data() + o);
  }
  return out;
}

void EncodedCorpus::seal() {
  if (!disk_ || disk_->sealed) return;
  Disk& d = *disk_;
  d.records.close_buffer();
  d.low.close_buffer();
  if (d.high) {
    d.high->close_buffer();
    d.high->extend_to(d.ids);  // the file as long as the ids
  }
  d.lengths.shrink_to_fit();
  d.sealed = true;
}

std::uint64_t EncodedCorpus::disk_bytes() const {
  if (!disk_) return 0;
  return disk_->low.bytes() + disk_->records.bytes() + (disk_->high ? disk_->high->bytes() : 0);
}

void EncodedCorpus::add_to_disk(const std::vector<int>& src, const std::vector<int>& tgt, std::size_t line) {
  Disk& d = *disk_;
  if (wide_ && !d.high) {
    d.high = std::make_unique<UnnamedFile>(d.dir);
    d.high->extend_to(d.ids);  // the ids so far: high bytes 0
  }
  const Pair p{static_cast<std::uint32_t>(d.ids >> 32), static_cast<std::uint32_t>(d.ids & 0xFFFFFFFFu),
               static_cast<std::uint32_t>(src.size()), static_cast<std::uint32_t>(tgt.size()), line};
  for (const auto* side : {&src, &tgt})
    for (int id : *side) {
      const auto lo = static_cast<std::uint16_t>(id & 0xFFFF);
      d.low.append(&lo, sizeof lo);
      if (d.high) {
        const auto hi = static_cast<std::uint8_t>(id >> 16);
        d.high->append(&hi, 1);
      }
    }
  d.records.append(&p, sizeof p);
  d.lengths.push_back(p.src_len);
  d.lengths.push_back(p.tgt_len);
  d.ids += src.size() + tgt.size();
}

void EncodedCorpus::widen() {
  wide_ = true;
  for (auto& b : blocks_) {
    b.high.reserve(b.low.capacity());
    b.high.assign(b.low.size(), 0);
  }
}

void EncodedCorpus::add(const std::vector<int>& src, const std::vector<int>& tgt, std::size_t line) {
  if (disk_ && disk_->sealed) throw std::logic_error("EncodedCorpus: add() after seal()");
  const std::size_t n = src.size() + tgt.size();
  if (n > UINT32_MAX) throw std::length_error("EncodedCorpus: a sentence pair of more than 2^32 - 1 subwords");
  for (const auto* side : {&src, &tgt})
    for (int id : *side) {
      if (id < 0 || id > 0xFFFFFF) throw std::out_of_range("EncodedCorpus: subword id outside 0 .. 2^24 - 1");
      if (id > 0xFFFF && !wide_) widen();
    }
  if (disk_) return add_to_disk(src, tgt, line);
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

std::string corpus_folder(const DataOptions& data) {
  if (!data.tempdir.empty()) return data.tempdir;
  const char* env = std::getenv("TMPDIR");
  return env && *env ? env : "/tmp";
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

namespace {

// Up to lines.size() pairs from the two readers into src/tgt; returns how many (0 at the
// end). Files of different length are an InputError (mismatch).
std::size_t read_pairs(LineReader& src_reader, LineReader& tgt_reader, std::vector<std::string>& src,
                       std::vector<std::string>& tgt) {
  std::size_t n = 0;
  for (; n < src.size(); ++n) {
    const bool has_src = src_reader.next(src[n]);
    const bool has_tgt = tgt_reader.next(tgt[n]);
    if (has_src != has_tgt) mismatch(has_src ? src_reader : tgt_reader, has_src ? tgt_reader : src_reader);
    if (!has_src) break;
  }
  return n;
}

// One encoded pair judged by the filter: appended to the corpus (from `line`) or counted as dropped.
void keep_or_drop(const std::vector<int>& src, const std::vector<int>& tgt, std::size_t line,
                  const FilterOptions& filter, EncodedCorpus& corpus, FilterReport& counts) {
  ++counts.read;
  switch (judge(src.size(), tgt.size(), filter)) {
    case Verdict::kKeep:
      ++counts.kept;
      corpus.add(src, tgt, line);
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

}  // namespace

EncodedCorpus encode_parallel(const std::string& src_path, const std::string& tgt_path, const SubwordModel& src_model,
                              const SubwordModel& tgt_model, const FilterOptions& filter, int threads,
                              FilterReport* report, EncodedCorpus corpus) {
  LineReader src_reader(src_path), tgt_reader(tgt_path);
  FilterReport counts;
  constexpr std::size_t kChunk = 8192;  // lines read, then encoded in parallel, then appended in order
  std::vector<std::string> src_lines(kChunk), tgt_lines(kChunk);
  std::vector<std::vector<int>> src_ids(kChunk), tgt_ids(kChunk);
  const std::size_t workers = static_cast<std::size_t>(std::max(1, threads));
  for (;;) {
    const std::size_t n = read_pairs(src_reader, tgt_reader, src_lines, tgt_lines);
    if (n == 0) break;
    const std::size_t used = n < 256 ? 1 : workers;  // a short last chunk: not worth the threads
    run_threads(used, [&](std::size_t w) {
      for (std::size_t i = w; i < n; i += used) {
        src_ids[i] = src_model.encode(src_lines[i]);
        tgt_ids[i] = tgt_model.encode(tgt_lines[i]);
      }
    });
    const std::size_t first_line = src_reader.line_number() - n + 1;
    for (std::size_t i = 0; i < n; ++i) keep_or_drop(src_ids[i], tgt_ids[i], first_line + i, filter, corpus, counts);
    if (n < kChunk) break;
  }
  if (report) *report = counts;
  corpus.seal();
  return corpus;
}

}  // namespace gloss::text
