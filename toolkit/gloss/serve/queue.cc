#include "gloss/serve/queue.h"

#include <chrono>
#include <ostream>
#include <sstream>

namespace gloss::serve {

namespace {

bool same_search(const decode::SearchOptions& a, const decode::SearchOptions& b) {
  return a.beam_size == b.beam_size && a.n_best == b.n_best && a.attention == b.attention &&
         a.word_scores == b.word_scores && a.length_penalty == b.length_penalty && a.stop_after == b.stop_after &&
         a.coverage_penalty == b.coverage_penalty && a.min_length == b.min_length;
}

}  // namespace

TranslationQueue::TranslationQueue(decode::Translator& translator, decode::TranslateOptions defaults,
                                   QueueOptions options)
    : translator_(translator), defaults_(std::move(defaults)), options_(options), thread_([this] { run(); }) {}

TranslationQueue::~TranslationQueue() { stop(); }

std::optional<std::future<TranslationQueue::Result>> TranslationQueue::submit(std::vector<std::string> lines,
                                                                              const decode::SearchOptions& search) {
  auto job = std::make_unique<Job>();
  job->lines = std::move(lines);
  job->search = search;
  auto future = job->done.get_future();
  {
    std::lock_guard lock(mutex_);
    if (stopping_ || queued_ + job->lines.size() > options_.max_queued_sentences) return std::nullopt;
    queued_ += job->lines.size();
    jobs_.push_back(std::move(job));
  }
  wake_.notify_one();
  return future;
}

void TranslationQueue::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

std::size_t TranslationQueue::queued_sentences() const {
  std::lock_guard lock(mutex_);
  return queued_;
}

std::size_t TranslationQueue::batches() const {
  std::lock_guard lock(mutex_);
  return batches_;
}

std::vector<std::unique_ptr<TranslationQueue::Job>> TranslationQueue::take() {
  std::unique_lock lock(mutex_);
  wake_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
  if (jobs_.empty()) return {};
  // The first job waits up to the window for others, unless the batch is full already.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.window_ms);
  wake_.wait_until(lock, deadline, [&] { return stopping_ || queued_ >= options_.max_batch_sentences; });
  std::vector<std::unique_ptr<Job>> taken;
  std::size_t sentences = 0;
  while (!jobs_.empty() && (taken.empty() || sentences + jobs_.front()->lines.size() <= options_.max_batch_sentences)) {
    sentences += jobs_.front()->lines.size();
    taken.push_back(std::move(jobs_.front()));
    jobs_.pop_front();
  }
  queued_ -= sentences;
  return taken;
}

void TranslationQueue::run() {
  for (;;) {
    auto taken = take();
    if (taken.empty()) return;
    // Groups of the same search, in arrival order of their first job.
    while (!taken.empty()) {
      std::vector<std::unique_ptr<Job>> group, rest;
      for (auto& job : taken)
        (group.empty() || same_search(group.front()->search, job->search) ? group : rest).push_back(std::move(job));
      translate_group(group);
      taken = std::move(rest);
    }
  }
}

void TranslationQueue::translate_group(std::vector<std::unique_ptr<Job>>& group) {
  std::vector<std::string> lines;
  for (const auto& job : group) lines.insert(lines.end(), job->lines.begin(), job->lines.end());
  decode::TranslateOptions options = defaults_;
  options.search = group.front()->search;
  Result all;
  try {
    std::ostringstream warnings;  // truncation notes are the server's business, not the log's
    all = translator_.translate(lines, options, "request", 1, warnings);
  } catch (...) {
    for (auto& job : group) job->done.set_exception(std::current_exception());
    return;
  }
  std::size_t at = 0;
  for (auto& job : group) {
    const auto from = all.begin() + static_cast<std::ptrdiff_t>(at);
    job->done.set_value(Result(std::make_move_iterator(from),
                               std::make_move_iterator(from + static_cast<std::ptrdiff_t>(job->lines.size()))));
    at += job->lines.size();
  }
  std::lock_guard lock(mutex_);
  ++batches_;
}

}  // namespace gloss::serve
