#include "gloss/tensor/compute.h"

#include "gloss/tensor/tensor.h"
#include "gloss/util/error.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace gloss::compute {
namespace {
std::atomic<double> g_flops{0.0};
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

namespace {
std::atomic<bool> g_profiling{false};
std::array<std::atomic<std::int64_t>, kStages> g_stage_ns{};
thread_local int t_timing = 0;  // timers alive on this thread

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace

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
  // Inside another stage's timer (the optimizer's step runs here too) the wait is that stage's.
  const bool timing = g_profiling.load(std::memory_order_relaxed) && t_timing == 0;
  std::vector<std::int64_t> finished_ns(timing ? static_cast<std::size_t>(workers) : 0, 0);
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
    if (timing) finished_ns[static_cast<std::size_t>(w)] = now_ns();
  }
  if (timing) {  // each worker's wait from its last task's end to the last worker's
    const std::int64_t end = now_ns();
    for (const std::int64_t f : finished_ns) g_stage_ns[static_cast<std::size_t>(Stage::kWorkerWait)] += end - f;
  }
  for (const auto& e : errors)
    if (e) std::rethrow_exception(e);
}

dnnl::primitive_attr user_scratchpad() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

dnnl::memory scratchpad_for(const dnnl::primitive_desc_base& pd) {
  static thread_local Tensor buffer;  // primitives run one at a time on a thread
  const auto desc = pd.scratchpad_desc();
  const auto floats = static_cast<std::int64_t>((desc.get_size() + sizeof(float) - 1) / sizeof(float));
  if (buffer.size() < std::max<std::int64_t>(1, floats)) buffer.resize({std::max<std::int64_t>(1, floats)});
  return dnnl::memory(desc, engine(), buffer.data());
}

namespace {

thread_local int t_bf16_gemms = 0;

// The dense rows x cols block at p (row stride ld) as bf16, row after row, at the start of out
// (grown to fit, never shrunk: a vector's resize would zero what it regrows at every call
// that follows a smaller one).
void pack_bf16(std::int64_t rows, std::int64_t cols, const float* p, std::int64_t ld, std::vector<std::uint16_t>& out) {
  if (out.size() < static_cast<std::size_t>(rows * cols)) out.resize(static_cast<std::size_t>(rows * cols));
  if (ld == cols) return to_bf16(rows * cols, p, out.data());
  for (std::int64_t r = 0; r < rows; ++r) to_bf16(cols, p + r * ld, out.data() + r * cols);
}

struct GemmShape {  // M is given at run time: one primitive per call site, whatever the batch
  bool trans_a, trans_b;
  std::int64_t n, k, ldc;
  float alpha, beta;
  auto operator<=>(const GemmShape&) const = default;
};

// A matmul for one shape: A [M x K] and B [K x N] dense bf16 (transposed through their
// strides), C f32 with row stride ldc; alpha as output scale, beta as a sum post-op.
struct Bf16Gemm {
  dnnl::matmul::primitive_desc pd;
  dnnl::matmul prim;
};

Bf16Gemm bf16_matmul(const GemmShape& g) {
  using dt = dnnl::memory::data_type;
  const auto rt = DNNL_RUNTIME_DIM_VAL;
  const dnnl::memory::desc a({rt, g.k}, dt::bf16, g.trans_a ? dnnl::memory::dims{1, rt} : dnnl::memory::dims{g.k, 1});
  const dnnl::memory::desc b({g.k, g.n}, dt::bf16, g.trans_b ? dnnl::memory::dims{1, g.k} : dnnl::memory::dims{g.n, 1});
  const dnnl::memory::desc c({rt, g.n}, dt::f32, dnnl::memory::dims{g.ldc, 1});
  dnnl::primitive_attr attr = user_scratchpad();
  if (g.alpha != 1.0f) attr.set_output_scales(0, {g.alpha});
  if (g.beta != 0.0f) {
    dnnl::post_ops ops;
    ops.append_sum(g.beta);
    attr.set_post_ops(ops);
  }
  dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a, b, c), attr, engine());
  return {pd, dnnl::matmul(pd)};
}

// C = alpha op(A) op(B) + beta C with A f32 (rounded to bf16 here) and B dense bf16 as stored.
void gemm_bf16_packed_b(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
                        const float* a, std::int64_t lda, const std::uint16_t* b16, float beta, float* c,
                        std::int64_t ldc) {
  if (!has_bf16()) throw std::logic_error("bf16 GEMMs need a CPU with AVX512-BF16");
  static thread_local std::vector<std::uint16_t> a16;
  static thread_local std::map<GemmShape, Bf16Gemm> primitives;  // one per call site, bounded
  pack_bf16(trans_a ? k : m, trans_a ? m : k, a, lda, a16);      // as stored: transposed through the strides
  const GemmShape shape{trans_a, trans_b, n, k, ldc, alpha, beta};
  auto it = primitives.find(shape);
  if (it == primitives.end()) {
    if (primitives.size() >= 512) primitives.clear();
    it = primitives.emplace(shape, bf16_matmul(shape)).first;
  }
  using dt = dnnl::memory::data_type;
  const dnnl::memory::desc a_md({m, k}, dt::bf16, trans_a ? dnnl::memory::dims{1, m} : dnnl::memory::dims{k, 1});
  const dnnl::memory::desc c_md({m, n}, dt::f32, dnnl::memory::dims{ldc, 1});
  const auto& pd = it->second.pd;
  it->second.prim.execute(
      stream(), {{DNNL_ARG_SRC, dnnl::memory(a_md, engine(), a16.data())},
                 {DNNL_ARG_WEIGHTS, dnnl::memory(pd.weights_desc(), engine(), const_cast<std::uint16_t*>(b16))},
                 {DNNL_ARG_DST, dnnl::memory(c_md, engine(), c)},
                 {DNNL_ARG_SCRATCHPAD, scratchpad_for(pd)}});
  stream().wait();
}

void gemm_bf16(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, float alpha, const float* a,
               std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c, std::int64_t ldc) {
  static thread_local std::vector<std::uint16_t> b16;
  pack_bf16(trans_b ? n : k, trans_b ? k : n, b, ldb, b16);
  gemm_bf16_packed_b(trans_a, trans_b, m, n, k, alpha, a, lda, b16.data(), beta, c, ldc);
}

}  // namespace

Bf16Gemms::Bf16Gemms() { ++t_bf16_gemms; }
Bf16Gemms::~Bf16Gemms() { --t_bf16_gemms; }
bool bf16_gemms() { return t_bf16_gemms > 0; }

void gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, float alpha, const float* a,
          std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c, std::int64_t ldc) {
  if (m == 0 || n == 0) return;
  const StageTimer timer(Stage::kGemm);
  if (t_bf16_gemms > 0 && k > 0) {
    gemm_bf16(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    add_flops(2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k));
    return;
  }
  const dnnl_status_t status =
      dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  if (status != dnnl_success) throw std::runtime_error("dnnl_sgemm failed with status " + std::to_string(status));
  add_flops(2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k));
}

void gemm_bf16_b(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
                 const float* a, std::int64_t lda, const std::uint16_t* b, float beta, float* c, std::int64_t ldc) {
  if (m == 0 || n == 0) return;
  const StageTimer timer(Stage::kGemm);
  gemm_bf16_packed_b(trans_a, trans_b, m, n, k, alpha, a, lda, b, beta, c, ldc);
  add_flops(2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k));
}

struct PackedBf16Weight::Impl {
  struct Key {
    std::int64_t m, ldc;
    float beta;
    auto operator<=>(const Key&) const = default;
  };
  bool trans = false;
  std::int64_t k = 0, n = 0;
  const float* b = nullptr;            // the f32 weight, as given to pack()
  dnnl::memory::desc packed_md;        // the layout of `packed` (zero: not packed yet)
  std::vector<std::uint16_t> packed;   // op(B) in bf16, blocked as packed_md says
  std::map<Key, Bf16Gemm> primitives;  // one per row count and output (few)

  const Bf16Gemm& primitive(const Key& key);
  void pack_for(const dnnl::memory::desc& md);
};

const Bf16Gemm& PackedBf16Weight::Impl::primitive(const Key& key) {
  auto it = primitives.find(key);
  if (it != primitives.end()) return it->second;
  if (primitives.size() >= 16) primitives.clear();
  using dt = dnnl::memory::data_type;
  const dnnl::memory::desc a({key.m, k}, dt::bf16, dnnl::memory::dims{k, 1});
  const dnnl::memory::desc w({k, n}, dt::bf16, dnnl::memory::format_tag::any);
  const dnnl::memory::desc c({key.m, n}, dt::f32, dnnl::memory::dims{key.ldc, 1});
  dnnl::primitive_attr attr = user_scratchpad();
  if (key.beta != 0.0f) {
    dnnl::post_ops ops;
    ops.append_sum(key.beta);
    attr.set_post_ops(ops);
  }
  dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a, w, c), attr, engine());
  return primitives.emplace(key, Bf16Gemm{pd, dnnl::matmul(pd)}).first->second;
}

// op(B) rounded to bf16 as stored, then reordered into md's layout.
void PackedBf16Weight::Impl::pack_for(const dnnl::memory::desc& md) {
  static thread_local std::vector<std::uint16_t> dense;
  pack_bf16(trans ? n : k, trans ? k : n, b, trans ? k : n, dense);
  using dt = dnnl::memory::data_type;
  const dnnl::memory::desc from({k, n}, dt::bf16, trans ? dnnl::memory::dims{1, k} : dnnl::memory::dims{n, 1});
  packed.resize((md.get_size() + sizeof(std::uint16_t) - 1) / sizeof(std::uint16_t));
  dnnl::memory src(from, engine(), dense.data()), dst(md, engine(), packed.data());
  dnnl::reorder(src, dst).execute(stream(), src, dst);
  stream().wait();
  packed_md = md;
}

PackedBf16Weight::PackedBf16Weight() : impl_(std::make_unique<Impl>()) {}
PackedBf16Weight::~PackedBf16Weight() = default;
PackedBf16Weight::PackedBf16Weight(PackedBf16Weight&&) noexcept = default;
PackedBf16Weight& PackedBf16Weight::operator=(PackedBf16Weight&&) noexcept = default;

void PackedBf16Weight::pack(bool trans, std::int64_t k, std::int64_t n, const float* b) {
  if (!has_bf16()) throw std::logic_error("bf16 GEMMs need a CPU with AVX512-BF16");
  if (impl_->k != k || impl_->n != n) impl_->primitives.clear();
  impl_->trans = trans;
  impl_->k = k;
  impl_->n = n;
  impl_->b = b;
  impl_->packed_md = dnnl::memory::desc();
}

void PackedBf16Weight::run(std::int64_t m, const float* a, std::int64_t lda, float beta, float* c, std::int64_t ldc) {
  Impl& p = *impl_;
  if (!p.b) throw std::logic_error("PackedBf16Weight::run before pack");
  if (m == 0 || p.n == 0) return;
  const StageTimer timer(Stage::kGemm);
  const Bf16Gemm& g = p.primitive({m, ldc, beta});
  if (p.packed_md != g.pd.weights_desc()) p.pack_for(g.pd.weights_desc());
  static thread_local std::vector<std::uint16_t> a16;
  pack_bf16(m, p.k, a, lda, a16);
  using dt = dnnl::memory::data_type;
  g.prim.execute(stream(),
                 {{DNNL_ARG_SRC, dnnl::memory({{m, p.k}, dt::bf16, dnnl::memory::dims{p.k, 1}}, engine(), a16.data())},
                  {DNNL_ARG_WEIGHTS, dnnl::memory(p.packed_md, engine(), p.packed.data())},
                  {DNNL_ARG_DST, dnnl::memory(g.pd.dst_desc(), engine(), c)},
                  {DNNL_ARG_SCRATCHPAD, scratchpad_for(g.pd)}});
  stream().wait();
  add_flops(2.0 * static_cast<double>(m) * static_cast<double>(p.n) * static_cast<double>(p.k));
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

// GCC 12 warns on its own intrinsics' undefined-vector idiom (_mm512_undefined_epi32); clang
// has no such warning (and would warn about the unknown name).
#pragma GCC diagnostic push
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
// to_bf16 sixteen at a time, bit for bit the scalar rule above (where the CPU has AVX-512;
// the bf16 instruction itself would flush subnormals to zero).
__attribute__((target("avx512f"))) void to_bf16_avx512(std::int64_t n, const float* from, std::uint16_t* to) {
  const __m512i exponent = _mm512_set1_epi32(0x7F800000), half = _mm512_set1_epi32(0x7FFF), one = _mm512_set1_epi32(1),
                low = _mm512_set1_epi32(0xFFFF), quiet = _mm512_set1_epi32(0x400000);
  std::int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512i bits = _mm512_castps_si512(_mm512_loadu_ps(from + i));
    const __mmask16 special = _mm512_cmpeq_epi32_mask(_mm512_and_si512(bits, exponent), exponent);  // inf, NaN
    const __m512i rounded =
        _mm512_add_epi32(bits, _mm512_add_epi32(half, _mm512_and_si512(_mm512_srli_epi32(bits, 16), one)));
    const __m512i kept = _mm512_mask_or_epi32(bits, _mm512_test_epi32_mask(bits, low), bits, quiet);
    const __m512i result = _mm512_srli_epi32(_mm512_mask_mov_epi32(rounded, special, kept), 16);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(to + i), _mm512_cvtepi32_epi16(result));
  }
  for (; i < n; ++i) to[i] = to_bf16(from[i]);
}
#pragma GCC diagnostic pop

}  // namespace

void to_bf16(std::int64_t n, const float* from, std::uint16_t* to) {
  static const bool avx512 = __builtin_cpu_supports("avx512f");
  if (avx512) return to_bf16_avx512(n, from, to);
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
  double cur = g_flops.load(std::memory_order_relaxed);
  while (!g_flops.compare_exchange_weak(cur, cur + f, std::memory_order_relaxed)) {
  }
}
double flops() { return g_flops.load(); }
void reset_flops() { g_flops = 0.0; }

const char* stage_name(Stage stage) {
  static const char* const names[kStages] = {"gemm",      "rnn",  "attention", "softmax_loss",
                                             "optimizer", "data", "reduce",    "worker_wait"};
  return names[static_cast<int>(stage)];
}
void set_profiling(bool on) { g_profiling = on; }
double stage_seconds(Stage stage) { return 1e-9 * static_cast<double>(g_stage_ns[static_cast<int>(stage)].load()); }
void reset_stage_seconds() {
  for (auto& ns : g_stage_ns) ns = 0;
}

StageTimer::StageTimer(Stage stage) {
  if (!g_profiling.load(std::memory_order_relaxed)) return;
  entered_ = true;
  if (t_timing++ > 0) return;
  stage_ = static_cast<int>(stage);
  start_ns_ = now_ns();
}

StageTimer::~StageTimer() {
  if (!entered_) return;
  --t_timing;
  if (stage_ >= 0) g_stage_ns[static_cast<std::size_t>(stage_)] += now_ns() - start_ns_;
}

}  // namespace gloss::compute
