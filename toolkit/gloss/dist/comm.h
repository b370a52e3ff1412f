#pragma once
// The processes of one job: a single process (the default), or the ranks of a job started by
// `mpirun -np N gloss ...` (Open MPI, through its C API; nothing here is MPI-specific for the
// caller). Every collective is called by every rank in the same order, from the thread that
// called job() first.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

namespace gloss::dist {

class Comm {
 public:
  virtual ~Comm() = default;
  virtual int rank() const = 0;  // 0 .. size() - 1
  virtual int size() const = 0;
  bool single() const { return size() == 1; }

  // Element-wise sums of every rank's `n` values, left to right in rank order
  // (((x_0 + x_1) + x_2) + ...: the result does not depend on how MPI routes the data), on
  // every rank. Single process: unchanged.
  virtual void sum_in_rank_order(float* data, std::size_t n) = 0;
  virtual void sum_in_rank_order(double* data, std::size_t n) = 0;
  // Element-wise bitwise OR of every rank's `n` flags (for 0/1 flags: 1 where any rank has
  // one), on every rank. Single process: unchanged.
  virtual void any(std::uint8_t* flags, std::size_t n) = 0;
  // Rank 0's `n` values on every rank.
  virtual void broadcast(double* data, std::size_t n) = 0;
  // Whether every rank passed ok = true (a rank's failure, known to all before they go on).
  virtual bool all_ok(bool ok) = 0;
  virtual void barrier() = 0;
};

// The job this process belongs to: an MPI job when started by mpirun (Open MPI's
// OMPI_COMM_WORLD_SIZE is set; MPI is initialised on this first call), else a single process.
Comm& job();

// Runs `step` on rank 0 while the other ranks wait (files they will read, made once); if it
// throws, every rank throws: rank 0 its error, the others UserError("rank 0 failed ...").
// Single process: just step().
void rank0_first(Comm& comm, const std::function<void()>& step);

// At the end of main(): MPI_Finalize if MPI was initialised.
void finish();
// After an error on this rank (printed already): ends every rank of an MPI job at once with
// `status` (MPI_Abort), so none waits for this one in a collective. Returns if single.
void abort_job(int status);

}  // namespace gloss::dist
