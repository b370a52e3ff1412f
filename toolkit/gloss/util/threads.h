#pragma once
// Plain std::threads for work that runs outside OpenMP and oneDNN (text encoding, metric
// statistics): one owner of starting them and of handing an error back to the caller.
#include <cstddef>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace gloss {

// work(w) for w = 0 .. workers - 1, each on its own thread (workers <= 1: work(0) on this
// one); returns when all have ended, then rethrows the first exception any of them threw.
inline void run_threads(std::size_t workers, const std::function<void(std::size_t worker)>& work) {
  if (workers <= 1) {
    work(0);
    return;
  }
  std::vector<std::thread> pool;
  std::exception_ptr error;
  std::mutex m;
  for (std::size_t w = 0; w < workers; ++w)
    pool.emplace_back([&, w] {
      try {
        work(w);
      } catch (...) {
        const std::lock_guard<std::mutex> lock(m);
        if (!error) error = std::current_exception();
      }
    });
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace gloss
