#include "gloss/dist/comm.h"

// The C API only: Open MPI's deprecated C++ bindings would need another library.
#define OMPI_SKIP_MPICXX 1
#include <mpi.h>

#include "gloss/util/error.h"

#include <cstdlib>
#include <exception>
#include <memory>
#include <vector>

namespace gloss::dist {

namespace {

class SingleProcess final : public Comm {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void sum_in_rank_order(float*, std::size_t) override {}
  void sum_in_rank_order(double*, std::size_t) override {}
  void broadcast(double*, std::size_t) override {}
  bool all_ok(bool ok) override { return ok; }
  void barrier() override {}
};

// The ordered sum as a reduce-scatter and an allgather of R chunks: rank c receives every
// rank's chunk c (MPI_Alltoallv), adds them in rank order and sends the sum to all
// (MPI_Allgatherv). Each rank moves about 2n values, whatever R is.
template <typename T>
void ordered_sum(T* data, std::size_t n, int R, int me, MPI_Datatype type) {
  std::vector<int> counts(static_cast<std::size_t>(R)), offsets(static_cast<std::size_t>(R));
  for (int c = 0; c < R; ++c) {
    const std::size_t begin = n * static_cast<std::size_t>(c) / static_cast<std::size_t>(R);
    const std::size_t end = n * static_cast<std::size_t>(c + 1) / static_cast<std::size_t>(R);
    offsets[static_cast<std::size_t>(c)] = static_cast<int>(begin);
    counts[static_cast<std::size_t>(c)] = static_cast<int>(end - begin);
  }
  const int mine = counts[static_cast<std::size_t>(me)];
  std::vector<T> received(static_cast<std::size_t>(mine) * static_cast<std::size_t>(R));
  std::vector<int> recv_counts(static_cast<std::size_t>(R), mine), recv_offsets(static_cast<std::size_t>(R));
  for (int q = 0; q < R; ++q) recv_offsets[static_cast<std::size_t>(q)] = q * mine;
  MPI_Alltoallv(data, counts.data(), offsets.data(), type, received.data(), recv_counts.data(), recv_offsets.data(),
                type, MPI_COMM_WORLD);
  std::vector<T> sum(received.begin(), received.begin() + mine);
  for (int q = 1; q < R; ++q)
    for (int i = 0; i < mine; ++i) sum[static_cast<std::size_t>(i)] += received[static_cast<std::size_t>(q * mine + i)];
  MPI_Allgatherv(sum.data(), mine, type, data, counts.data(), offsets.data(), type, MPI_COMM_WORLD);
}

class MpiJob final : public Comm {
 public:
  MpiJob() {
    int provided = 0;
    MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  void sum_in_rank_order(float* data, std::size_t n) override { chunked(data, n, MPI_FLOAT); }
  void sum_in_rank_order(double* data, std::size_t n) override { chunked(data, n, MPI_DOUBLE); }
  void broadcast(double* data, std::size_t n) override {
    MPI_Bcast(data, static_cast<int>(n), MPI_DOUBLE, 0, MPI_COMM_WORLD);
  }
  bool all_ok(bool ok) override {
    int mine = ok ? 1 : 0, all = 0;
    MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    return all == 1;
  }
  void barrier() override { MPI_Barrier(MPI_COMM_WORLD); }

 private:
  // MPI counts are ints: buffers beyond 2^30 values go in pieces.
  template <typename T>
  void chunked(T* data, std::size_t n, MPI_Datatype type) {
    if (size_ == 1) return;
    const std::size_t piece = std::size_t{1} << 30;
    for (std::size_t at = 0; at < n; at += piece) ordered_sum(data + at, std::min(piece, n - at), size_, rank_, type);
  }
  int rank_ = 0, size_ = 1;
};

std::unique_ptr<Comm>& instance() {
  static std::unique_ptr<Comm> comm;
  return comm;
}

bool mpi_started() {
  int on = 0;
  MPI_Initialized(&on);
  int off = 0;
  MPI_Finalized(&off);
  return on && !off;
}

}  // namespace

Comm& job() {
  auto& comm = instance();
  if (!comm) {
    if (std::getenv("OMPI_COMM_WORLD_SIZE"))
      comm = std::make_unique<MpiJob>();
    else
      comm = std::make_unique<SingleProcess>();
  }
  return *comm;
}

void rank0_first(Comm& comm, const std::function<void()>& step) {
  std::exception_ptr failed;
  if (comm.rank() == 0) {
    try {
      step();
    } catch (...) {
      failed = std::current_exception();
    }
  }
  if (comm.all_ok(!failed)) return;
  if (failed) std::rethrow_exception(failed);
  throw UserError("rank 0 of the job failed (its error is above); every rank stops");
}

void finish() {
  if (mpi_started()) MPI_Finalize();
}

void abort_job(int status) {
  if (mpi_started() && instance() && instance()->size() > 1) MPI_Abort(MPI_COMM_WORLD, status);
}

}  // namespace gloss::dist
