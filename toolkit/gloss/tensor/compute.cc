#include "gloss/tensor/compute.h"

#include "gloss/util/error.h"

#include <omp.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>
#include <vector>

namespace gloss::compute {
namespace {
std::atomic<double> g_flops{0.0};
thread_local int t_uncounted = 0;
}  // namespace

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

void check_threads(int threads, const std::string& option) {
  if (threads < 1 || threads > kMaxThreads)
    throw ConfigError(option + " must be between 1 and " + std::to_string(kMaxThreads) + " (got " +
                      std::to_string(threads) + ")");
}

void set_threads(int threads) {
  setenv("OMP_WAIT_POLICY", "PASSIVE", /*overwrite=*/0);
  omp_set_num_threads(threads < 1 ? 1 : threads);
}

int threads() { return omp_get_max_threads(); }

void run_workers(int workers, std::size_t tasks, const std::function<void(int, std::size_t)>& task) {
  if (workers <= 1 || tasks <= 1) {
    for (std::size_t i = 0; i < tasks; ++i) task(0, i);
    return;
  }
  std::atomic<std::size_t> next{0};
  std::vector<std::exception_ptr> errors(static_cast<std::size_t>(workers));
#pragma omp parallel num_threads(workers)
  {
    omp_set_num_threads(1);  // this worker alone inside its tasks
    const int w = omp_get_thread_num();
    try {
      for (std::size_t i; (i = next++) < tasks;) task(w, i);
    } catch (...) {
      errors[static_cast<std::size_t>(w)] = std::current_exception();
      next = tasks;  // the others stop after their current task
    }
  }
  for (const auto& e : errors)
    if (e) std::rethrow_exception(e);
}

void gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, float alpha, const float* a,
          std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c, std::int64_t ldc) {
  if (m == 0 || n == 0) return;
  const dnnl_status_t status =
      dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  if (status != dnnl_success) throw std::runtime_error("dnnl_sgemm failed with status " + std::to_string(status));
  add_flops(2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k));
}

bool has_bf16() {
  static const bool yes = [] {
    const auto isa = dnnl::get_effective_cpu_isa();
    return isa == dnnl::cpu_isa::avx512_core_bf16 || isa == dnnl::cpu_isa::avx512_core_amx;
  }();
  return yes;
}

namespace {
std::uint16_t to_bf16(float f) {  // round to nearest even
  std::uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  if ((bits & 0x7F800000u) == 0x7F800000u)
    return static_cast<std::uint16_t>(bits >> 16 | ((bits & 0xFFFFu) ? 0x40u : 0u));
  bits += 0x7FFFu + ((bits >> 16) & 1u);
  return static_cast<std::uint16_t>(bits >> 16);
}
}  // namespace

void to_bf16(std::int64_t n, const float* from, std::uint16_t* to) {
  for (std::int64_t i = 0; i < n; ++i) to[i] = to_bf16(from[i]);
}

void from_bf16(std::int64_t n, const std::uint16_t* from, float* to) {
  for (std::int64_t i = 0; i < n; ++i) {
    const std::uint32_t bits = static_cast<std::uint32_t>(from[i]) << 16;
    std::memcpy(to + i, &bits, sizeof bits);
  }
}

struct Bf16Matmul::Impl {
  std::int64_t k = 0, n = 0;
  std::vector<std::uint16_t> w;  // [K x N] bf16
  std::vector<float> bias;       // [N]
  std::vector<std::uint16_t> x;  // [M x K] bf16, grown as needed
  dnnl::matmul prim;
  dnnl::memory::desc src_md, w_md, b_md, dst_md;
};

Bf16Matmul::Bf16Matmul() = default;
Bf16Matmul::~Bf16Matmul() = default;
Bf16Matmul::Bf16Matmul(Bf16Matmul&&) noexcept = default;
Bf16Matmul& Bf16Matmul::operator=(Bf16Matmul&&) noexcept = default;

void Bf16Matmul::set_weights(std::int64_t k, std::int64_t n, const float* w, bool transposed, const float* bias) {
  using dt = dnnl::memory::data_type;
  using tag = dnnl::memory::format_tag;
  auto impl = std::make_unique<Impl>();
  impl->k = k;
  impl->n = n;
  impl->w.resize(static_cast<std::size_t>(k * n));
  for (std::int64_t i = 0; i < k; ++i)
    for (std::int64_t j = 0; j < n; ++j)
      impl->w[static_cast<std::size_t>(i * n + j)] = to_bf16(transposed ? w[j * k + i] : w[i * n + j]);
  impl->bias.assign(static_cast<std::size_t>(n), 0.0f);
  if (bias) std::copy(bias, bias + n, impl->bias.begin());
  // M (rows) is given at run time: one primitive serves every batch and beam size.
  const auto rt = DNNL_RUNTIME_DIM_VAL;
  impl->src_md = dnnl::memory::desc({rt, k}, dt::bf16, tag::ab);
  impl->w_md = dnnl::memory::desc({k, n}, dt::bf16, tag::ab);
  impl->b_md = dnnl::memory::desc({1, n}, dt::f32, tag::ab);
  impl->dst_md = dnnl::memory::desc({rt, n}, dt::f32, tag::ab);
  dnnl::matmul::desc d(impl->src_md, impl->w_md, impl->b_md, impl->dst_md);
  impl->prim = dnnl::matmul(dnnl::matmul::primitive_desc(d, engine()));
  impl_ = std::move(impl);
}

void Bf16Matmul::run(std::int64_t m, const float* x, float* y) {
  using dt = dnnl::memory::data_type;
  using tag = dnnl::memory::format_tag;
  Impl& p = *impl_;
  if (static_cast<std::int64_t>(p.x.size()) < m * p.k) p.x.resize(static_cast<std::size_t>(m * p.k));
  to_bf16(m * p.k, x, p.x.data());
  dnnl::memory src({{m, p.k}, dt::bf16, tag::ab}, engine(), p.x.data());
  dnnl::memory wts(p.w_md, engine(), p.w.data());
  dnnl::memory b(p.b_md, engine(), p.bias.data());
  dnnl::memory dst({{m, p.n}, dt::f32, tag::ab}, engine(), y);
  p.prim.execute(stream(), {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wts}, {DNNL_ARG_BIAS, b}, {DNNL_ARG_DST, dst}});
  stream().wait();
  add_flops(2.0 * static_cast<double>(m) * static_cast<double>(p.n) * static_cast<double>(p.k));
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
