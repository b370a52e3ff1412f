#include "gloss/text/batcher.h"

#include <algorithm>
#include <numeric>
#include <random>

#include "gloss/util/error.h"

namespace gloss::text {
namespace {

// splitmix64: a small generator whose output is fixed by this code (std::shuffle's is not
// specified by the standard), so batches repeat on any platform.
struct Rng {
  std::uint64_t state;
  std::uint64_t next() {
    std::uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  std::uint64_t below(std::uint64_t n) {  // unbiased, n > 0
    const std::uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    std::uint64_t x;
    do x = next();
    while (x >= limit);
    return x % n;
  }
};

template <class T>
void shuffle(std::vector<T>& v, Rng& rng) {
  for (std::size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng.below(i)]);
}

}  // namespace

void validate(const BatchOptions& o) {
  if (o.batch_size < 1) throw ConfigError("train.batch_size must be at least 1");
  if (o.batch_tokens < 1) throw ConfigError("train.batch_tokens must be at least 1");
  if (o.pool_batches < 1) throw ConfigError("train.pool_batches must be at least 1");
}

Batch make_batch(const EncodedCorpus& corpus, const std::vector<std::uint32_t>& examples) {
  if (corpus.is_on_disk()) {  // read this batch's pairs into memory, then build it from them
    const EncodedCorpus pairs = corpus.gather(examples);
    std::vector<std::uint32_t> in_order(examples.size());
    std::iota(in_order.begin(), in_order.end(), 0u);
    Batch b = make_batch(pairs, in_order);
    b.examples = examples;
    return b;
  }
  Batch b;
  b.examples = examples;
  b.size = static_cast<int>(examples.size());
  for (auto i : examples) {
    b.src_len = std::max(b.src_len, static_cast<int>(corpus.src_len(i)));
    b.tgt_len = std::max(b.tgt_len, static_cast<int>(corpus.tgt_len(i)) + 1);
  }
  const auto n = static_cast<std::size_t>(b.size);
  b.src.assign(static_cast<std::size_t>(b.src_len) * n, kPadId);
  b.tgt_in.assign(static_cast<std::size_t>(b.tgt_len) * n, kPadId);
  b.tgt_out.assign(static_cast<std::size_t>(b.tgt_len) * n, kPadId);
  b.src_lengths.resize(n);
  for (std::size_t k = 0; k < n; ++k) {
    const auto src = corpus.src(examples[k]);
    const auto tgt = corpus.tgt(examples[k]);
    b.src_lengths[k] = static_cast<std::int32_t>(src.size());
    for (std::size_t t = 0; t < src.size(); ++t) b.src[t * n + k] = src[t];
    b.tgt_in[k] = kBosId;
    for (std::size_t t = 0; t < tgt.size(); ++t) {
      b.tgt_in[(t + 1) * n + k] = tgt[t];
      b.tgt_out[t * n + k] = tgt[t];
    }
    b.tgt_out[tgt.size() * n + k] = kEosId;
    b.target_tokens += static_cast<std::int64_t>(tgt.size()) + 1;
  }
  return b;
}

namespace {

// The sentences in `columns` of `b` as a batch of their own, padded as make_batch pads them:
// make_batch of their examples, without reading the corpus again (on disk: no second read).
Batch select_columns(const Batch& b, const std::vector<std::size_t>& columns) {
  const auto N = static_cast<std::size_t>(b.size), n = columns.size();
  Batch p;
  p.size = static_cast<int>(n);
  std::vector<int> tgt_lengths(n);  // target + EOS: tgt_out's positions before the padding
  for (std::size_t k = 0; k < n; ++k) {
    const std::size_t c = columns[k];
    p.examples.push_back(b.examples[c]);
    p.src_len = std::max(p.src_len, b.src_lengths[c]);
    int t = 0;
    while (t < b.tgt_len && b.tgt_out[static_cast<std::size_t>(t) * N + c] != kPadId) ++t;
    tgt_lengths[k] = t;
    p.tgt_len = std::max(p.tgt_len, t);
  }
  p.src.assign(static_cast<std::size_t>(p.src_len) * n, kPadId);
  p.tgt_in.assign(static_cast<std::size_t>(p.tgt_len) * n, kPadId);
  p.tgt_out.assign(static_cast<std::size_t>(p.tgt_len) * n, kPadId);
  p.src_lengths.resize(n);
  for (std::size_t k = 0; k < n; ++k) {
    const std::size_t c = columns[k];
    p.src_lengths[k] = b.src_lengths[c];
    for (std::size_t t = 0; t < static_cast<std::size_t>(b.src_lengths[c]); ++t) p.src[t * n + k] = b.src[t * N + c];
    for (std::size_t t = 0; t < static_cast<std::size_t>(tgt_lengths[k]); ++t) {
      p.tgt_in[t * n + k] = b.tgt_in[t * N + c];
      p.tgt_out[t * n + k] = b.tgt_out[t * N + c];
    }
    p.target_tokens += tgt_lengths[k];
  }
  return p;
}

}  // namespace

std::vector<Batch> split_batch(const EncodedCorpus& corpus, const Batch& batch, std::int64_t max_positions,
                               int workers) {
  workers = std::max(1, workers);
  const std::int64_t positions = static_cast<std::int64_t>(batch.tgt_len) * batch.size;
  const bool too_long = max_positions > 0 && positions > max_positions;
  if (!too_long && workers == 1) return {batch};
  // k groups of equal sentence count (few distinct shapes for the primitive caches), sentences
  // grouped by length so that each group pads little; each group dealt round-robin to the
  // workers, so that their parts are alike in length and work.
  const std::int64_t k =
      !too_long ? 1 : std::min<std::int64_t>(batch.size, (positions + max_positions - 1) / max_positions);
  // Columns of the batch sorted by their sentences' lengths (kept in memory, on disk too).
  std::vector<std::size_t> order(batch.examples.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](std::size_t x, std::size_t y) {
    const std::uint32_t a = batch.examples[x], b = batch.examples[y];
    return corpus.tgt_len(a) != corpus.tgt_len(b) ? corpus.tgt_len(a) > corpus.tgt_len(b)
                                                  : corpus.src_len(a) > corpus.src_len(b);
  });
  const std::size_t per = static_cast<std::size_t>((batch.size + k - 1) / k);
  std::vector<Batch> parts;
  for (std::size_t at = 0; at < order.size(); at += per) {
    const std::size_t end = std::min(order.size(), at + per);
    for (int w = 0; w < workers; ++w) {
      std::vector<std::size_t> columns;
      for (std::size_t i = at + static_cast<std::size_t>(w); i < end; i += static_cast<std::size_t>(workers))
        columns.push_back(order[i]);
      parts.push_back(columns.empty() ? Batch{} : select_columns(batch, columns));
    }
  }
  return parts;
}

Batcher::Batcher(const EncodedCorpus& corpus, BatchOptions options) : corpus_(corpus), options_(options) {
  validate(options_);
  if (corpus_.size() == 0) throw UserError("the training corpus has no sentence pairs left to batch");
}

std::vector<std::vector<std::uint32_t>> Batcher::epoch_batches(int epoch) const {
  const std::size_t n = corpus_.size();
  std::vector<std::uint32_t> order(n);
  std::iota(order.begin(), order.end(), 0U);
  Rng rng{options_.seed * 0x2545F4914F6CDD1DULL + static_cast<std::uint64_t>(epoch)};
  if (options_.shuffle) shuffle(order, rng);

  const std::size_t per_batch_guess =
      options_.by_tokens ? std::max<std::size_t>(1, static_cast<std::size_t>(options_.batch_tokens) / 16)
                         : static_cast<std::size_t>(options_.batch_size);
  const std::size_t pool = per_batch_guess * static_cast<std::size_t>(options_.pool_batches);
  std::vector<std::vector<std::uint32_t>> batches;
  for (std::size_t start = 0; start < n; start += pool) {
    const std::size_t end = std::min(n, start + pool);
    if (options_.pool_batches > 1) {
      std::stable_sort(order.begin() + static_cast<std::ptrdiff_t>(start),
                       order.begin() + static_cast<std::ptrdiff_t>(end), [&](std::uint32_t a, std::uint32_t b) {
                         if (corpus_.tgt_len(a) != corpus_.tgt_len(b)) return corpus_.tgt_len(a) < corpus_.tgt_len(b);
                         return corpus_.src_len(a) < corpus_.src_len(b);
                       });
    }
    std::vector<std::uint32_t> batch;
    std::size_t longest = 0;
    for (std::size_t k = start; k < end; ++k) {
      const std::uint32_t i = order[k];
      if (options_.by_tokens) {
        const std::size_t len = std::max(longest, corpus_.tgt_len(i) + 1);
        if (!batch.empty() && len * (batch.size() + 1) > static_cast<std::size_t>(options_.batch_tokens)) {
          batches.push_back(std::move(batch));
          batch.clear();
          longest = 0;
        }
        longest = std::max(longest, corpus_.tgt_len(i) + 1);
      }
      batch.push_back(i);
      if (!options_.by_tokens && batch.size() == static_cast<std::size_t>(options_.batch_size)) {
        batches.push_back(std::move(batch));
        batch.clear();
      }
    }
    if (!batch.empty()) batches.push_back(std::move(batch));
  }
  if (options_.shuffle) shuffle(batches, rng);  // lengths mix across the epoch
  return batches;
}

Batch Batcher::next() {
  for (;;) {
    if (current_epoch_ != position_.epoch) {
      if (on_epoch_start_) on_epoch_start_(position_.epoch);
      current_ = epoch_batches(position_.epoch);
      current_epoch_ = position_.epoch;
    }
    if (position_.batch < current_.size()) return make_batch(corpus_, current_[position_.batch++]);
    ++position_.epoch;
    position_.batch = 0;
  }
}

void Batcher::restore(const Position& position) {
  if (position.epoch < 1) throw UserError("invalid data position: epoch " + std::to_string(position.epoch));
  position_ = position;
}

double Batcher::padding_fraction(int epoch) const {
  double real = 0, padded = 0;
  for (const auto& batch : epoch_batches(epoch)) {
    std::size_t max_src = 0, max_tgt = 0;
    for (auto i : batch) {
      real += static_cast<double>(corpus_.src_len(i) + corpus_.tgt_len(i) + 1);
      max_src = std::max(max_src, corpus_.src_len(i));
      max_tgt = std::max(max_tgt, corpus_.tgt_len(i) + 1);
    }
    padded += static_cast<double>((max_src + max_tgt) * batch.size());
  }
  return padded > 0 ? 1.0 - real / padded : 0.0;
}

}  // namespace gloss::text
