#include "gloss/decode/shortlist.h"

#include <algorithm>
#include <fstream>
#include <numeric>
#include <sstream>
#include <unordered_map>

#include "gloss/text/subword.h"
#include "gloss/util/atomic_file.h"
#include "gloss/util/error.h"

namespace gloss::decode {

namespace {

// Sentence frequencies of each source and target id, and co-occurrence counts of (source,
// target) pairs: in how many sentence pairs both occur.
struct Cooccurrences {
  std::vector<std::uint32_t> src_count, tgt_count;
  std::vector<std::unordered_map<std::int32_t, std::uint32_t>> pair;  // [source id]: target id -> count
};

// ids, sorted and without repeats, into `out`.
template <typename Ids>
void distinct(const Ids& ids, std::vector<std::int32_t>& out) {
  out.assign(ids.begin(), ids.end());
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
}

Cooccurrences count_cooccurrences(const text::EncodedCorpus& corpus, int src_vocab, int tgt_vocab) {
  Cooccurrences co;
  co.src_count.resize(static_cast<std::size_t>(src_vocab));
  co.tgt_count.resize(static_cast<std::size_t>(tgt_vocab));
  co.pair.resize(static_cast<std::size_t>(src_vocab));
  std::vector<std::int32_t> su, tu;
  constexpr std::size_t kChunk = 8192;  // pairs read at a time (an on-disk corpus: from its files)
  for (std::size_t first = 0; first < corpus.size(); first += kChunk) {
    const text::EncodedCorpus chunk = corpus.slice(first, kChunk);
    for (std::size_t i = 0; i < chunk.size(); ++i) {
      distinct(chunk.src(i), su);
      distinct(chunk.tgt(i), tu);
      for (auto t : tu) ++co.tgt_count[static_cast<std::size_t>(t)];
      for (auto a : su) {
        ++co.src_count[static_cast<std::size_t>(a)];
        auto& row = co.pair[static_cast<std::size_t>(a)];
        for (auto t : tu) ++row[t];
      }
    }
  }
  return co;
}

// The `frequent` target words (not special ids) in the most sentences, ties by id; sorted.
std::vector<std::int32_t> most_frequent(const std::vector<std::uint32_t>& tgt_count, int frequent) {
  std::vector<std::int32_t> order(tgt_count.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](std::int32_t a, std::int32_t b) {
    return tgt_count[static_cast<std::size_t>(a)] > tgt_count[static_cast<std::size_t>(b)];
  });
  std::vector<std::int32_t> kept;
  for (auto t : order) {
    if (static_cast<int>(kept.size()) >= frequent) break;
    if (t > text::kEosId && tgt_count[static_cast<std::size_t>(t)] > 0) kept.push_back(t);
  }
  std::sort(kept.begin(), kept.end());
  return kept;
}

// Source id a's `per_source` target words of highest Dice coefficient 2 c(a, t) / (c(a) + c(t)),
// ties by id; sorted. `scored` is scratch.
std::vector<std::int32_t> best_by_dice(const Cooccurrences& co, int a, int per_source,
                                       std::vector<std::pair<double, std::int32_t>>& scored) {
  scored.clear();
  for (const auto& [t, c] : co.pair[static_cast<std::size_t>(a)]) {
    if (t <= text::kEosId) continue;
    const double dice =
        2.0 * c / (co.src_count[static_cast<std::size_t>(a)] + co.tgt_count[static_cast<std::size_t>(t)]);
    scored.emplace_back(dice, t);
  }
  const auto keep = std::min(scored.size(), static_cast<std::size_t>(per_source));
  std::partial_sort(
      scored.begin(), scored.begin() + static_cast<std::ptrdiff_t>(keep), scored.end(),
      [](const auto& x, const auto& y) { return x.first != y.first ? x.first > y.first : x.second < y.second; });
  std::vector<std::int32_t> list;
  for (std::size_t k = 0; k < keep; ++k) list.push_back(scored[k].second);
  std::sort(list.begin(), list.end());
  return list;
}

}  // namespace

void validate(const ShortlistSizes& sizes) {
  if (sizes.frequent < 0 || sizes.per_source < 0 || (sizes.frequent == 0 && sizes.per_source == 0))
    throw ConfigError("--frequent and --per-source must be >= 0 and not both 0 (got " + std::to_string(sizes.frequent) +
                      " and " + std::to_string(sizes.per_source) +
                      "); a list of no words would leave every translation empty");
}

Shortlist Shortlist::build(const text::EncodedCorpus& corpus, int src_vocab, int tgt_vocab, ShortlistSizes sizes) {
  validate(sizes);
  Shortlist s;
  s.src_vocab_ = src_vocab;
  s.tgt_vocab_ = tgt_vocab;
  const Cooccurrences co = count_cooccurrences(corpus, src_vocab, tgt_vocab);
  s.frequent_ = most_frequent(co.tgt_count, sizes.frequent);
  s.by_source_.resize(static_cast<std::size_t>(src_vocab));
  std::vector<std::pair<double, std::int32_t>> scored;
  for (int a = 0; a < src_vocab; ++a)
    s.by_source_[static_cast<std::size_t>(a)] = best_by_dice(co, a, sizes.per_source, scored);
  return s;
}

std::string Shortlist::to_text() const {
  std::ostringstream out;
  out << "gloss-shortlist 1 " << tgt_vocab_ << " " << src_vocab_ << "\n";
  for (std::size_t k = 0; k < frequent_.size(); ++k) out << (k ? " " : "") << frequent_[k];
  out << "\n";
  for (std::size_t a = 0; a < by_source_.size(); ++a) {
    out << a << "\t";
    for (std::size_t k = 0; k < by_source_[a].size(); ++k) out << (k ? " " : "") << by_source_[a][k];
    out << "\n";
  }
  return out.str();
}

void Shortlist::save(const std::string& path) const { atomic_write_file(path, to_text()); }

Shortlist Shortlist::load(const std::string& path, int src_vocab, int tgt_vocab) {
  require_file(path);
  std::ifstream file(path);
  return read(file, path, src_vocab, tgt_vocab);  // line by line: the header is checked first
}

Shortlist Shortlist::parse(const std::string& text, const std::string& name, int src_vocab, int tgt_vocab) {
  std::istringstream in(text);
  return read(in, name, src_vocab, tgt_vocab);
}

namespace {

// The target ids of one line (`words`, line `line` of `path`) into `to`, sorted: each must be
// a real subword (above EOS, below tgt_vocab).
void read_target_ids(std::istringstream& words, int tgt_vocab, const std::string& path, std::size_t line,
                     std::vector<std::int32_t>& to) {
  long long v;
  while (words >> v) {
    if (v <= text::kEosId || v >= tgt_vocab)
      throw InputError(path, line,
                       "target id " + std::to_string(v) + " is outside 4.." + std::to_string(tgt_vocab - 1) +
                           "; rebuild the file with gloss shortlist");
    to.push_back(static_cast<std::int32_t>(v));
  }
  if (!words.eof()) throw InputError(path, line, "is not a list of numbers; rebuild the file with gloss shortlist");
  std::sort(to.begin(), to.end());
}

// The lines "<source id>\t<target ids>" after the frequent line (line n of `path`; n advances),
// one for every source id of by_source, in order, each ending in a line break: a file cut short
// is an InputError at its last line, never a list missing the ids after the cut.
void read_source_lines(std::istream& in, const std::string& path, std::size_t& n, int tgt_vocab,
                       std::vector<std::vector<std::int32_t>>& by_source) {
  const auto src_vocab = static_cast<long long>(by_source.size());
  std::string line;
  long long next = 0;
  bool cut = in.eof();  // the line before had no line break
  while (!cut && std::getline(in, line)) {
    ++n;
    const auto tab = line.find('\t');
    long long a = -1;
    try {
      a = std::stoll(line.substr(0, tab));
    } catch (const std::exception&) {
    }
    if (tab == std::string::npos || a != next || a >= src_vocab)
      throw InputError(path, n,
                       "expected '<source id><TAB><target ids>' for source id " + std::to_string(next) + " of 0.." +
                           std::to_string(src_vocab - 1) + "; rebuild the file with gloss shortlist");
    std::istringstream words(line.substr(tab + 1));
    read_target_ids(words, tgt_vocab, path, n, by_source[static_cast<std::size_t>(a)]);
    ++next;
    cut = in.eof();
  }
  if (cut || next < src_vocab)
    throw InputError(
        path, n,
        (cut ? std::string("is cut short here (no line break)")
             : "ends after " + std::to_string(next) + " of " + std::to_string(src_vocab) + " source lines, cut short") +
            "; rebuild the file with gloss shortlist");
}

}  // namespace

Shortlist Shortlist::read(std::istream& in, const std::string& path, int src_vocab, int tgt_vocab) {
  std::string line;
  Shortlist s;
  std::string magic;
  int version = 0;
  if (!std::getline(in, line) || !(std::istringstream(line) >> magic >> version >> s.tgt_vocab_ >> s.src_vocab_) ||
      magic != "gloss-shortlist" || version != 1 || s.tgt_vocab_ < 5 || s.src_vocab_ < 1)
    throw InputError(
        path, 1,
        "is not a Gloss shortlist (expected 'gloss-shortlist 1 <vocab> <vocab>'); build one with gloss shortlist");
  if (s.tgt_vocab_ != tgt_vocab || s.src_vocab_ != src_vocab)
    throw InputError(path, 1,
                     "was built for vocabularies of " + std::to_string(s.src_vocab_) + " and " +
                         std::to_string(s.tgt_vocab_) + " subwords, the model has " + std::to_string(src_vocab) +
                         " and " + std::to_string(tgt_vocab) + "; build it with gloss shortlist -m MODEL");
  if (!std::getline(in, line)) throw InputError(path, 2, "ends before the frequent-word line");
  std::istringstream freq(line);
  read_target_ids(freq, s.tgt_vocab_, path, 2, s.frequent_);
  s.by_source_.resize(static_cast<std::size_t>(s.src_vocab_));
  std::size_t n = 2;
  read_source_lines(in, path, n, s.tgt_vocab_, s.by_source_);
  return s;
}

std::vector<std::int32_t> Shortlist::for_sentence(const std::vector<int>& src) const {
  std::vector<std::int32_t> out = frequent_;
  out.push_back(text::kEosId);
  for (int a : src)
    if (a >= 0 && a < src_vocab_)
      out.insert(out.end(), by_source_[static_cast<std::size_t>(a)].begin(),
                 by_source_[static_cast<std::size_t>(a)].end());
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace gloss::decode
