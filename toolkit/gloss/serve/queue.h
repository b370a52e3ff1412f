#pragma once
// The server's translation queue: requests from concurrent clients wait at most `window_ms`
// for company, then one thread translates them together (one Translator call per group of
// requests with the same search options; the translator sorts their sentences by length
// into batches). The search is batch-invariant (decode/search.h), so a sentence's answer is
// the same alone or in company. The queue holds at most max_queued_sentences: beyond that,
// submit() refuses (the server answers 503) instead of growing without bound.
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "gloss/decode/translator.h"

namespace gloss::serve {

struct QueueOptions {
  int window_ms = 5;                        // how long the first request of a batch waits for company
  std::size_t max_batch_sentences = 256;    // a batch is taken at once when it has this many
  std::size_t max_queued_sentences = 4096;  // beyond this, submit() refuses
};

class TranslationQueue {
 public:
  // `translator` is used by the queue's thread only, from now until stop(); `defaults` are the
  // translation options every request starts from (its search options are the request's).
  TranslationQueue(decode::Translator& translator, decode::TranslateOptions defaults, QueueOptions options);
  ~TranslationQueue();  // stop()

  using Result = std::vector<decode::Translation>;
  // Queues `lines` to translate with this search; the future gets their translations in order
  // (or the exception the translator threw). std::nullopt when the queue is full.
  std::optional<std::future<Result>> submit(std::vector<std::string> lines, const decode::SearchOptions& search);
  // Translates what is queued, then ends the thread. Later submits are refused.
  void stop();

  std::size_t queued_sentences() const;
  std::size_t batches() const;  // translator calls so far

 private:
  struct Job {
    std::vector<std::string> lines;
    decode::SearchOptions search;
    std::promise<Result> done;
  };
  void run();
  // Waits for jobs and takes a batch of them (empty only when stopping with nothing queued).
  std::vector<std::unique_ptr<Job>> take();
  void translate_group(std::vector<std::unique_ptr<Job>>& group);

  decode::Translator& translator_;
  const decode::TranslateOptions defaults_;
  const QueueOptions options_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::unique_ptr<Job>> jobs_;
  std::size_t queued_ = 0;  // sentences in jobs_
  std::size_t batches_ = 0;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace gloss::serve
