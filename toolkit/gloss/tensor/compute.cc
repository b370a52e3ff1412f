#include "gloss/tensor/compute.h"

#include <omp.h>

#include <atomic>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace gloss::compute {
namespace {
std::atomic<double> g_flops{0.0};
thread_local int t_uncounted = 0;
}

dnnl::engine& engine() {
  static dnnl::engine e = [] {
    dnnl::set_primitive_cache_capacity(128);  // default 1024 primitives, each with its JIT code
    return dnnl::engine(dnnl::engine::kind::cpu, 0);
  }();
  return e;
}

dnnl::stream& stream() {
  static thread_local dnnl::stream s(engine());  // one per thread: replicas run side by side
  return s;
}

void set_threads(int threads) {
  setenv("OMP_WAIT_POLICY", "PASSIVE", /*overwrite=*/0);
  omp_set_num_threads(threads < 1 ? 1 : threads);
}

int threads() { return omp_get_max_threads(); }

void gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, float alpha, const float* a,
          std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c, std::int64_t ldc) {
  if (m == 0 || n == 0) return;
  const dnnl_status_t status =
      dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  if (status != dnnl_success) throw std::runtime_error("dnnl_sgemm failed with status " + std::to_string(status));
  add_flops(2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k));
}

void add_flops(double f) {
  if (t_uncounted > 0) return;
  double cur = g_flops.load(std::memory_order_relaxed);
  while (!g_flops.compare_exchange_weak(cur, cur + f, std::memory_order_relaxed)) {
  }
}
double flops() { return g_flops.load(); }
void reset_flops() { g_flops = 0.0; }
UncountedFlops::UncountedFlops() { ++t_uncounted; }
UncountedFlops::~UncountedFlops() { --t_uncounted; }

}  // namespace gloss::compute
