#include "gloss/eval/ter.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <unordered_map>

#include "gloss/util/unicode.h"

namespace gloss::eval {
namespace {

// Tercom's limits, and sacreBLEU's own.
constexpr int kMaxShiftSize = 10;
constexpr int kMaxShiftDist = 50;
constexpr int kBeamWidth = 25;
constexpr int kMaxShiftCandidates = 1000;
constexpr std::int64_t kInfinity = 10000000000000000LL;  // int(1e16)

enum Op : char { kIns = 'i', kDel = 'd', kNop = ' ', kSub = 's', kUndef = 'x' };

struct Cell {
  std::int64_t cost;
  char op;
};

// Beam-restricted Levenshtein distance against a fixed reference, reusing the rows of the
// last computed hypothesis for a shared prefix (rows depend only on the prefix: every
// candidate in one search has the same length, hence the same beam).
class BeamEditDistance {
 public:
  explicit BeamEditDistance(const std::vector<int>& ref) : ref_(ref) {
    const std::size_t m = ref_.size() + 1;
    initial_.resize(m);
    for (std::size_t j = 0; j < m; ++j) initial_[j] = {static_cast<std::int64_t>(j), kIns};
  }

  // Edit distance of `hyp`; when `trace` is given, also the edit operations (hyp -> ref).
  std::int64_t operator()(const std::vector<int>& hyp, std::string* trace) {
    const std::size_t n = hyp.size(), m = ref_.size() + 1;
    const std::size_t start = reuse_rows(hyp);
    const double length_ratio = n ? static_cast<double>(ref_.size()) / static_cast<double>(n) : 1.0;
    std::int64_t beam_width = kBeamWidth;
    if (kBeamWidth < length_ratio / 2) beam_width = static_cast<std::int64_t>(std::ceil(length_ratio / 2 + kBeamWidth));
    for (std::size_t i = start + 1; i <= n; ++i) fill_row(hyp, i, length_ratio, beam_width);
    if (trace) backtrace(n, *trace);
    return rows_[n * m + m - 1].cost;
  }

 private:
  // Keeps the rows of the hypothesis' prefix shared with the last one; returns that prefix's
  // length (rows 1 .. start stay valid, row 0 is the initial row).
  std::size_t reuse_rows(const std::vector<int>& hyp) {
    const std::size_t n = hyp.size(), m = ref_.size() + 1;
    std::size_t start = 0;
    while (start < n && start < rows_hyp_.size() && hyp[start] == rows_hyp_[start]) ++start;
    rows_.resize((n + 1) * m);
    std::copy(initial_.begin(), initial_.end(), rows_.begin());
    rows_hyp_.resize(n);
    std::copy(hyp.begin() + static_cast<std::ptrdiff_t>(start), hyp.end(),
              rows_hyp_.begin() + static_cast<std::ptrdiff_t>(start));
    return start;
  }

  // Row i (hypothesis word i - 1) from row i - 1, within the beam around the pseudo-diagonal
  // (the last row in full).
  void fill_row(const std::vector<int>& hyp, std::size_t i, double length_ratio, std::int64_t beam_width) {
    const std::size_t n = hyp.size(), m = ref_.size() + 1;
    Cell* row = &rows_[i * m];
    const Cell* prev = &rows_[(i - 1) * m];
    std::fill(row, row + m, Cell{kInfinity, kUndef});
    const auto pseudo_diag = static_cast<std::int64_t>(std::floor(static_cast<double>(i) * length_ratio));
    const std::int64_t min_j = std::max<std::int64_t>(0, pseudo_diag - beam_width);
    std::int64_t max_j = std::min<std::int64_t>(static_cast<std::int64_t>(m), pseudo_diag + beam_width);
    if (i == n) max_j = static_cast<std::int64_t>(m);
    for (std::int64_t jj = min_j; jj < max_j; ++jj) {
      const auto j = static_cast<std::size_t>(jj);
      if (j == 0) {
        row[0] = {prev[0].cost + 1, kDel};
        continue;
      }
      const bool same = hyp[i - 1] == ref_[j - 1];
      // Tercom prefers no-op/substitution, then (in the flipped trace) insertion, then deletion.
      const std::int64_t costs[3] = {prev[j - 1].cost + (same ? 0 : 1), prev[j].cost + 1, row[j - 1].cost + 1};
      const char ops[3] = {same ? kNop : kSub, kDel, kIns};
      for (int k = 0; k < 3; ++k) {
        if (row[j].cost > costs[k]) row[j] = {costs[k], ops[k]};
      }
    }
  }

  // The edit operations of the computed rows of an n-word hypothesis, first to last.
  void backtrace(std::size_t n, std::string& trace) const {
    const std::size_t m = ref_.size() + 1;
    trace.clear();
    std::size_t i = n, j = ref_.size();
    while (i > 0 || j > 0) {
      const char op = rows_[i * m + j].op;
      trace.push_back(op);
      if (op == kSub || op == kNop) {
        --i;
        --j;
      } else if (op == kIns) {
        --j;
      } else if (op == kDel) {
        --i;
      } else {
        break;  // unreachable: every cell on an optimal path is set
      }
    }
    std::reverse(trace.begin(), trace.end());
  }

  const std::vector<int>& ref_;
  std::vector<Cell> initial_;
  std::vector<Cell> rows_;     // (n + 1) x (ref + 1)
  std::vector<int> rows_hyp_;  // the hypothesis the rows were computed for
};

std::vector<int> perform_shift(const std::vector<int>& w, int start, int length, int target) {
  std::vector<int> out;
  out.reserve(w.size());
  auto put = [&](int from, int to) {
    from = std::clamp(from, 0, static_cast<int>(w.size()));
    to = std::clamp(to, 0, static_cast<int>(w.size()));
    if (to > from) out.insert(out.end(), w.begin() + from, w.begin() + to);
  };
  const int n = static_cast<int>(w.size());
  if (target < start) {
    put(0, target);
    put(start, start + length);
    put(target, start);
    put(start + length, n);
  } else if (target > start + length) {
    put(0, start);
    put(start + length, target);
    put(start, start + length);
    put(target, n);
  } else {
    put(0, start);
    put(start + length, length + target);
    put(start, start + length);
    put(length + target, n);
  }
  return out;
}

struct ShiftResult {
  std::int64_t delta = 0;
  std::vector<int> words;
};

// What one edit-distance trace says about the words: which hypothesis position each
// reference word is aligned to, and which words are errors (inserted, deleted, substituted).
struct TraceAlignment {
  std::vector<int> align;    // per reference word: its hypothesis position (-1: before the first)
  std::vector<int> hyp_err;  // per hypothesis word: 1 if it is an error
  std::vector<int> ref_err;  // per reference word: 1 if it is an error
};

// `inv_trace` rewrites the hypothesis into the reference; the alignment is read from it
// flipped (rewriting the reference into the hypothesis), as tercom does.
TraceAlignment align_trace(const std::string& inv_trace, std::size_t ref_size) {
  TraceAlignment t;
  t.align.assign(ref_size, -1);
  int pos_hyp = -1, pos_ref = -1;
  for (char op : inv_trace) {
    if (op == kIns)
      op = kDel;
    else if (op == kDel)
      op = kIns;
    if (op == kNop || op == kSub) {
      ++pos_hyp;
      ++pos_ref;
      t.align[static_cast<std::size_t>(pos_ref)] = pos_hyp;
      t.hyp_err.push_back(op == kSub);
      t.ref_err.push_back(op == kSub);
    } else if (op == kIns) {
      ++pos_hyp;
      t.hyp_err.push_back(1);
    } else {
      ++pos_ref;
      t.align[static_cast<std::size_t>(pos_ref)] = pos_hyp;
      t.ref_err.push_back(1);
    }
  }
  return t;
}

bool any_error(const std::vector<int>& err, int from, int len) {
  for (int k = from; k < from + len && k < static_cast<int>(err.size()); ++k)
    if (err[static_cast<std::size_t>(k)]) return true;
  return false;
}

// The best shift offered so far, ranked as tercom ranks them: largest gain, then longest,
// then earliest start, then earliest target.
struct BestShift {
  bool found = false;
  std::int64_t delta = 0;
  int length = 0, start = 0, target = 0;
  std::vector<int> words;  // the hypothesis with this shift made

  void offer(std::int64_t d, int len, int st, int tgt, std::vector<int>&& shifted) {
    const bool better =
        !found || d > delta ||
        (d == delta && (len > length || (len == length && (st < start || (st == start && tgt < target)))));
    if (!better) return;
    found = true;
    delta = d;
    length = len;
    start = st;
    target = tgt;
    words = std::move(shifted);
  }
};

// One search for the best shift of `hyp`: its edit distance before any shift, the words'
// alignment, and the candidates checked so far (shared by all searches of one sentence).
struct ShiftSearch {
  const std::vector<int>& hyp;
  const std::vector<int>& ref;
  BeamEditDistance& ed;
  int& checked_candidates;
  std::int64_t pre_score = 0;
  TraceAlignment trace;
  BestShift best;

  ShiftSearch(const std::vector<int>& h, const std::vector<int>& r, BeamEditDistance& e, int& checked)
      : hyp(h), ref(r), ed(e), checked_candidates(checked) {
    std::string inv_trace;
    pre_score = ed(hyp, &inv_trace);
    trace = align_trace(inv_trace, ref.size());
  }

  // Offers every target position of the block hyp[start_h, start_h + length), which equals
  // ref[start_r, ...]: the positions right after the hypothesis words aligned to the
  // reference words just before and inside the block.
  void try_targets(int start_h, int start_r, int length) {
    const int nr = static_cast<int>(ref.size());
    int prev_idx = -1;
    for (int offset = -1; offset < length; ++offset) {
      if (start_r + offset >= nr) break;
      const int idx = start_r + offset == -1 ? 0 : trace.align[static_cast<std::size_t>(start_r + offset)] + 1;
      if (idx == prev_idx) continue;
      prev_idx = idx;
      std::vector<int> shifted = perform_shift(hyp, start_h, length, idx);
      const std::int64_t delta = pre_score - ed(shifted, nullptr);
      ++checked_candidates;
      best.offer(delta, length, start_h, idx, std::move(shifted));
    }
  }

  // Grows the matching block at (start_h, start_r) word by word, trying each length that
  // covers an error on both sides and is not already in place; false once the
  // candidate limit is reached.
  bool try_blocks_at(int start_h, int start_r) {
    const int nh = static_cast<int>(hyp.size()), nr = static_cast<int>(ref.size());
    int length = 0;
    while (hyp[static_cast<std::size_t>(start_h + length)] == ref[static_cast<std::size_t>(start_r + length)] &&
           length < kMaxShiftSize) {
      ++length;
      if (any_error(trace.hyp_err, start_h, length) && any_error(trace.ref_err, start_r, length)) {
        const int a = trace.align[static_cast<std::size_t>(start_r)];
        if (!(start_h <= a && a < start_h + length)) try_targets(start_h, start_r, length);
      }
      if (checked_candidates >= kMaxShiftCandidates) return false;
      if (nh == start_h + length || nr == start_r + length) break;
    }
    return true;
  }
};

ShiftResult best_shift(const std::vector<int>& hyp, const std::vector<int>& ref, BeamEditDistance& ed,
                       int& checked_candidates) {
  ShiftSearch search(hyp, ref, ed, checked_candidates);
  const int nh = static_cast<int>(hyp.size()), nr = static_cast<int>(ref.size());
  bool more = true;  // until the candidate limit
  for (int start_h = 0; start_h < nh && more; ++start_h)
    for (int start_r = 0; start_r < nr && more; ++start_r)
      if (std::abs(start_r - start_h) <= kMaxShiftDist) more = search.try_blocks_at(start_h, start_r);
  if (!search.best.found) return {0, hyp};
  return {search.best.delta, std::move(search.best.words)};
}

}  // namespace

int translation_edit_count(const std::vector<std::string_view>& hyp_words,
                           const std::vector<std::string_view>& ref_words) {
  if (ref_words.empty()) return static_cast<int>(hyp_words.size());
  // Words become integer ids, so comparisons are cheap.
  std::unordered_map<std::string_view, int> ids;
  auto id_of = [&](std::string_view w) { return ids.emplace(w, static_cast<int>(ids.size())).first->second; };
  std::vector<int> ref, hyp;
  for (auto w : ref_words) ref.push_back(id_of(w));
  for (auto w : hyp_words) hyp.push_back(id_of(w));

  BeamEditDistance ed(ref);
  int shifts = 0, checked = 0;
  std::vector<int> input = hyp;
  for (;;) {
    ShiftResult r = best_shift(input, ref, ed, checked);
    if (checked >= kMaxShiftCandidates) break;
    if (r.delta <= 0) break;
    ++shifts;
    input = std::move(r.words);
  }
  return shifts + static_cast<int>(ed(input, nullptr));
}

Ter::Ter(TercomOptions options) : options_(options) {}

std::string Ter::preprocess(std::string_view segment) const {
  return tokenize_tercom(options_, unicode::rstrip(segment));
}

Stats Ter::preprocessed_stats(std::string_view hypothesis, const std::vector<std::string>& references) const {
  const auto hyp = unicode::split(hypothesis);
  double ref_lengths = 0;
  std::int64_t best = kInfinity;
  for (const std::string& reference : references) {
    const auto ref = unicode::split(reference);
    const int edits = translation_edit_count(hyp, ref);
    ref_lengths += static_cast<double>(ref.size());
    best = std::min<std::int64_t>(best, edits);
  }
  return {static_cast<double>(best), ref_lengths / static_cast<double>(references.size())};
}

Stats Ter::sentence_stats(std::string_view hypothesis, const std::vector<std::string>& references) const {
  std::vector<std::string> refs;
  for (const auto& r : references)
    if (!r.empty()) refs.push_back(preprocess(r));
  return preprocessed_stats(preprocess(hypothesis), refs);
}

std::vector<int> Ter::set_references(const std::vector<std::vector<std::string>>& refs) {
  return collect_references(refs, refs_, [this](const std::string& r) { return preprocess(r); });
}

Stats Ter::segment_stats(std::string_view hypothesis, std::size_t segment) const {
  return preprocessed_stats(preprocess(hypothesis), refs_.at(segment));
}

Score Ter::compute(const Stats& summed) const {
  const double edits = summed[0], length = summed[1];
  double score;
  if (length > 0)
    score = edits / length;
  else if (edits > 0)
    score = 1.0;  // empty references, non-empty hypothesis
  else
    score = 0.0;
  return {"TER", 100 * score, ""};
}

Signature Ter::signature(const std::string& nrefs) const {
  Signature sig;
  sig.set("nrefs", "#", nrefs);
  sig.set("case", "c", options_.case_sensitive ? "mixed" : "lc");
  sig.set("tok", "t", "tercom");
  sig.set("norm", "nr", options_.normalized ? "yes" : "no");
  sig.set("punct", "pn", options_.no_punct ? "no" : "yes");
  sig.set("asian", "as", options_.asian_support ? "yes" : "no");
  return sig;
}

}  // namespace gloss::eval
