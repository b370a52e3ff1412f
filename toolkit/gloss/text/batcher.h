#pragma once
// Mini-batches of sentence pairs: by sentence count or by (padded) target tokens, with
// length bucketing (pools of batches sorted by length, to minimise padding) and a seeded
// shuffle per epoch. The batches of an epoch are a pure function of (corpus, options,
// epoch), so a saved position reproduces exactly the batches an uninterrupted run sees.
#include <cstdint>
#include <functional>
#include <vector>

#include "gloss/text/corpus.h"

namespace gloss::text {

struct BatchOptions {
  bool by_tokens = false;  // false: batch_size sentences; true: at most batch_tokens padded target tokens
  int batch_size = 64;
  int batch_tokens = 2000;
  int pool_batches = 50;  // batches sorted by length together; 1 disables bucketing
  bool shuffle = true;
  std::uint64_t seed = 1;
};
void validate(const BatchOptions& options);

// A batch ready for the network: time-major matrices, padded with kPadId.
struct Batch {
  std::vector<std::uint32_t> examples;    // corpus indices
  int size = 0;                           // sentences (N)
  int src_len = 0;                        // S: longest source (without EOS)
  int tgt_len = 0;                        // T: longest target + 1 (EOS / BOS)
  std::vector<std::int32_t> src;          // [S x N], src[t * N + n]
  std::vector<std::int32_t> src_lengths;  // [N]
  std::vector<std::int32_t> tgt_in;       // [T x N]: BOS y1 .. yk, then padding
  std::vector<std::int32_t> tgt_out;      // [T x N]: y1 .. yk EOS, then padding
  std::int64_t target_tokens = 0;         // real target tokens incl. EOS
};

Batch make_batch(const EncodedCorpus& corpus, const std::vector<std::uint32_t>& examples);

// A batch whose padded target positions (tgt_len x size) exceed `max_positions` as
// ceil(positions / max_positions) groups of equal sentence count (sentences grouped by length,
// each part padded on its own, so groups hold about max_positions or fewer); otherwise the
// batch itself. Training runs the groups one after the other into the same gradient: the same
// update with the memory of a smaller batch. max_positions 0: never split.
// With workers > 1, every group is dealt round-robin into `workers` parts (group-major order:
// part i belongs to worker i % workers), run side by side; a part may be empty (size 0).
std::vector<Batch> split_batch(const EncodedCorpus& corpus, const Batch& batch, std::int64_t max_positions,
                               int workers = 1);

class Batcher {
 public:
  // Where the next batch comes from; save it with a checkpoint, restore() it to resume.
  struct Position {
    int epoch = 1;            // 1-based
    std::uint64_t batch = 0;  // batches of this epoch already taken
    bool operator==(const Position&) const = default;
  };

  Batcher(const EncodedCorpus& corpus, BatchOptions options);

  // The batches of `epoch`, each a list of corpus indices.
  std::vector<std::vector<std::uint32_t>> epoch_batches(int epoch) const;

  // Called with an epoch's number before its batches are made: a hook may change the corpus
  // this batcher reads (e.g. re-segment it in place, keeping its pairs and their order).
  void on_epoch_start(std::function<void(int epoch)> hook) { on_epoch_start_ = std::move(hook); }

  // Takes the next batch; an epoch that ends moves on to the next one.
  Batch next();
  Position position() const { return position_; }
  void restore(const Position& position);

  // 1 - real tokens / padded tokens (source and target) over an epoch's batches.
  double padding_fraction(int epoch) const;

 private:
  const EncodedCorpus& corpus_;
  BatchOptions options_;
  Position position_;
  std::vector<std::vector<std::uint32_t>> current_;  // batches of position_.epoch
  int current_epoch_ = 0;
  std::function<void(int)> on_epoch_start_;
};

}  // namespace gloss::text
