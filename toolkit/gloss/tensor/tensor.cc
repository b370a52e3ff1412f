#include "gloss/tensor/tensor.h"

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <new>
#include <stdexcept>

namespace gloss {

namespace {
std::atomic<bool> g_huge_pages{false};
}  // namespace

void set_huge_pages(bool on) { g_huge_pages = on; }

Tensor& Tensor::operator=(const Tensor& other) {
  if (this == &other) return *this;
  resize(other.shape_);
  if (size_) std::memcpy(data(), other.data(), static_cast<std::size_t>(size_) * sizeof(float));
  return *this;
}

Tensor Tensor::view(float* data, std::vector<std::int64_t> shape) {
  Tensor t;
  std::int64_t n = 1;
  for (auto d : shape) n *= d;
  t.data_ = std::unique_ptr<float, Free>(data, Free{false});
  t.shape_ = std::move(shape);
  t.size_ = t.capacity_ = n;
  return t;
}

void Tensor::resize(std::vector<std::int64_t> shape) {
  std::int64_t n = 1;
  for (auto d : shape) n *= d;
  if (n > capacity_ && data_ && !data_.get_deleter().owned)
    throw std::logic_error("a tensor view cannot grow beyond the memory it views");
  shape_ = std::move(shape);
  size_ = n;
  if (n > capacity_) {
    const std::size_t bytes = (static_cast<std::size_t>(n) * sizeof(float) + 63) / 64 * 64;
    constexpr std::size_t kHuge = std::size_t{2} << 20;
    void* p = nullptr;
    if (bytes >= kHuge && g_huge_pages) {
      const std::size_t rounded = (bytes + kHuge - 1) / kHuge * kHuge;
      p = std::aligned_alloc(kHuge, rounded);
      if (p) madvise(p, rounded, MADV_HUGEPAGE);
    } else {
      p = std::aligned_alloc(64, bytes);
    }
    if (!p) throw std::bad_alloc();
    data_.reset(static_cast<float*>(p));
    capacity_ = n;
  }
}

void Tensor::zero() {
  if (size_) std::memset(data(), 0, static_cast<std::size_t>(size_) * sizeof(float));
}

void Tensor::fill(float value) { std::fill(data(), data() + size_, value); }

std::string Tensor::shape_string() const {
  std::string s = "[";
  for (std::size_t i = 0; i < shape_.size(); ++i) s += (i ? ", " : "") + std::to_string(shape_[i]);
  return s + "]";
}

}  // namespace gloss
