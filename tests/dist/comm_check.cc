// gloss_comm_check: run under `mpirun -np N` (any N), checks dist::job()'s collectives over
// Open MPI against what they promise, on every rank:
//   - sum_in_rank_order gives ((x_0 + x_1) + x_2) + ... bit for bit, for floats and doubles of
//     sizes around the pieces the sum is cut into (none, one value, uneven chunks, 1 MB and
//     more), with values whose sum changes with the order of the additions;
//   - any() ORs every rank's flags.
// Prints "comm_check: N ranks, K buffers summed in rank order" on rank 0 and exits 0; else one
// line per wrong buffer and exit 1.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <iostream>
#include <sstream>
#include <vector>

#include "gloss/dist/comm.h"

namespace {

// Rank r's value i: a large value and its negative on neighbouring ranks beside small values,
// so that another order of the additions loses the small ones ((B + -B) + s = s, but
// B + (-B + s) = 0) and so gives other bits.
template <typename T>
T value(int r, std::size_t i) {
  const T big = sizeof(T) == 4 ? T(1e8) : T(1e17);
  switch ((static_cast<std::size_t>(r) + i) % 4) {
    case 0:
      return big;
    case 1:
      return -big;
    case 2:
      return T(1) + static_cast<T>(i % 7) / T(8);
    default:
      return static_cast<T>(i % 5) - T(2.5);
  }
}

// Whether the job's sum of n values per rank is the rank-order sum, bit for bit.
template <typename T>
bool sum_is_in_rank_order(gloss::dist::Comm& comm, std::size_t n) {
  std::vector<T> data(n), expected(n);
  for (std::size_t i = 0; i < n; ++i) {
    data[i] = value<T>(comm.rank(), i);
    T sum = value<T>(0, i);
    for (int r = 1; r < comm.size(); ++r) sum += value<T>(r, i);
    expected[i] = sum;
  }
  comm.sum_in_rank_order(data.data(), n);
  if (n == 0 || std::memcmp(data.data(), expected.data(), n * sizeof(T)) == 0) return true;
  std::size_t i = 0;
  while (std::memcmp(&data[i], &expected[i], sizeof(T)) == 0) ++i;
  std::ostringstream line;  // one write: the ranks' lines do not interleave
  line << "comm_check: rank " << comm.rank() << ": sum of " << n << (sizeof(T) == 4 ? " floats" : " doubles")
       << " differs at " << i << ": " << data[i] << " instead of " << expected[i] << "\n";
  std::cerr << line.str();
  return false;
}

// Whether any() sets exactly the flags some rank set (rank r sets every (r + 2)-th).
bool any_is_or(gloss::dist::Comm& comm, std::size_t n) {
  std::vector<std::uint8_t> flags(n);
  for (std::size_t i = 0; i < n; ++i) flags[i] = i % static_cast<std::size_t>(comm.rank() + 2) == 0 ? 1 : 0;
  comm.any(flags.data(), n);
  for (std::size_t i = 0; i < n; ++i) {
    bool set = false;
    for (int r = 0; r < comm.size(); ++r) set = set || i % static_cast<std::size_t>(r + 2) == 0;
    if (flags[i] != (set ? 1 : 0)) {
      std::ostringstream line;
      line << "comm_check: rank " << comm.rank() << ": any() flag " << i << " is " << int(flags[i]) << "\n";
      std::cerr << line.str();
      return false;
    }
  }
  return true;
}

}  // namespace

int main() {
  auto& comm = gloss::dist::job();
  const std::size_t sizes[] = {0, 1, 2, 5, 65535, 65536, 65537, 131071, 131072, 131073, 400003};
  bool ok = true;
  int buffers = 0;
  for (const std::size_t n : sizes) {
    ok = sum_is_in_rank_order<float>(comm, n) && ok;
    ok = sum_is_in_rank_order<double>(comm, n) && ok;
    buffers += 2;
  }
  ok = any_is_or(comm, 100003) && ok;
  ok = comm.all_ok(ok);
  if (ok && comm.rank() == 0)
    std::cout << "comm_check: " << comm.size() << " ranks, " << buffers << " buffers summed in rank order\n";
  gloss::dist::finish();
  return ok ? 0 : 1;
}
