#pragma once
// Exact multiset of n-grams over a sequence of elements (code points or tokens), for the
// per-sentence counting of BLEU and chrF. Open addressing; keys compare by content, so hash
// collisions cost time, never correctness. The table keeps pointers into the caller's
// sequences, which must outlive it until reset().
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

namespace gloss::eval {

inline std::uint64_t mix_hash(std::uint64_t h, std::uint64_t x) {
  h ^= x + 0x9E3779B97F4A7C15ULL + (h << 6) + (h >> 2);
  h ^= h >> 31;
  h *= 0xBF58476D1CE4E5B9ULL;
  h ^= h >> 29;
  return h;
}

template <class T>
class NgramCounter {
 public:
  struct Entry {
    std::uint64_t hash = 0;
    const T* seq = nullptr;  // first element of the n-gram
    std::int32_t order = 0;  // 0 marks an empty slot
    std::int32_t count = 0;
  };

  // Empties the table and sizes it for about `expected` distinct n-grams.
  void reset(std::size_t expected) {
    for (std::size_t i : used_) slots_[i] = Entry{};
    used_.clear();
    std::size_t capacity = 16;
    while (capacity < 2 * expected + 2) capacity <<= 1;
    // One allocation, kept; only the first `capacity` slots are probed, so a short sentence
    // touches a small, cache-resident part of it.
    if (slots_.size() < capacity) slots_.assign(capacity, Entry{});
    mask_ = capacity - 1;
  }

  // Adds every n-gram of order 1..max_order of seq[0..n), where hashes[i] hashes seq[i].
  void add_all(const T* seq, const std::uint64_t* hashes, std::size_t n, int max_order) {
    for_each_ngram(seq, hashes, n, max_order,
                   [&](const T* p, int order, std::uint64_t h) { slot(p, order, h, true)->count += 1; });
  }

  // Takes one occurrence of the n-gram if any is left: summed over a hypothesis's n-grams,
  // the successes are the clipped matches sum(min(hyp count, reference count)).
  bool consume(const T* seq, int order, std::uint64_t hash) {
    Entry* e = slot(seq, order, hash, false);
    if (!e || e->count == 0) return false;
    --e->count;
    return true;
  }

  // Calls f(first element, order, hash) for every n-gram of order 1..max_order.
  template <class F>
  static void for_each_ngram(const T* seq, const std::uint64_t* hashes, std::size_t n, int max_order, F&& f) {
    for (std::size_t i = 0; i < n; ++i) {
      std::uint64_t h = 0x243F6A8885A308D3ULL;
      for (int k = 1; k <= max_order && i + static_cast<std::size_t>(k) <= n; ++k) {
        h = mix_hash(h, hashes[i + k - 1]);
        f(seq + i, k, h);
      }
    }
  }

  // The count stored for an n-gram, creating it (with count 0) when `create` is set.
  std::int32_t count(const T* seq, int order, std::uint64_t hash) const {
    const Entry* e = const_cast<NgramCounter*>(this)->slot(seq, order, hash, false);
    return e ? e->count : 0;
  }
  std::int32_t& at(const T* seq, int order, std::uint64_t hash) { return slot(seq, order, hash, true)->count; }

  template <class F>
  void for_each(F&& f) const {
    for (std::size_t i : used_) f(slots_[i]);
  }
  std::size_t size() const { return used_.size(); }

 private:
  Entry* slot(const T* seq, int order, std::uint64_t hash, bool create) {
    if (create && 2 * (used_.size() + 1) > mask_ + 1) grow();
    std::size_t i = hash & mask_;
    for (;;) {
      Entry& e = slots_[i];
      if (e.order == 0) {
        if (!create) return nullptr;
        e.hash = hash;
        e.seq = seq;
        e.order = order;
        e.count = 0;
        used_.push_back(i);
        return &e;
      }
      if (e.hash == hash && e.order == order && equal(e.seq, seq, order)) return &e;
      i = (i + 1) & mask_;
    }
  }

  static bool equal(const T* a, const T* b, int n) {
    for (int k = 0; k < n; ++k)
      if (!(a[k] == b[k])) return false;
    return true;
  }

  void grow() {
    std::vector<Entry> old;
    old.swap(slots_);
    std::vector<std::size_t> old_used;
    old_used.swap(used_);
    const std::size_t capacity = old.empty() ? 16 : (mask_ + 1) * 2;
    slots_.assign(std::max(capacity, old.size()), Entry{});
    mask_ = capacity - 1;
    for (std::size_t i : old_used) {
      const Entry& e = old[i];
      *slot(e.seq, e.order, e.hash, true) = e;
    }
  }

  std::vector<Entry> slots_;
  std::vector<std::size_t> used_;
  std::size_t mask_ = 0;
};

// Hash of an element, for NgramCounter::add_all.
inline std::uint64_t element_hash(char32_t c) { return mix_hash(0x51ED270B27E0F8F1ULL, c); }
inline std::uint64_t element_hash(std::string_view s) {
  std::uint64_t h = 0xCBF29CE484222325ULL;  // FNV-1a, then mixed
  for (unsigned char c : s) h = (h ^ c) * 0x100000001B3ULL;
  return mix_hash(h, s.size());
}

}  // namespace gloss::eval
