#pragma once
// A float buffer with a row-major shape, 64-byte aligned for vector loads. resize() keeps the
// allocation when it is large enough, so buffers reused across batches never reallocate.
// With set_huge_pages(true), buffers of 2 MB or more allocated afterwards are 2 MB aligned,
// rounded up to whole 2 MB and advised as huge pages (madvise; Linux uses them where
// transparent huge pages are "madvise" or "always"): one page fault per 2 MB instead of 512
// when first touched. Translation turns it on (its first pass over a file is mostly page
// faults otherwise); training leaves it off (no faster with it, 12 % more memory).
#include <cstdint>
#include <cstdlib>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

namespace gloss {

// Process-wide; off by default. Thread-safe.
void set_huge_pages(bool on);

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::vector<std::int64_t> shape) {
    resize(std::move(shape));
    zero();
  }
  Tensor(std::initializer_list<std::int64_t> shape) : Tensor(std::vector<std::int64_t>(shape)) {}
  Tensor(const Tensor& other) { *this = other; }
  Tensor& operator=(const Tensor& other);
  Tensor(Tensor&&) noexcept = default;
  Tensor& operator=(Tensor&&) noexcept = default;

  // A tensor over memory it does not own (a model replica reading another's parameters):
  // it never reallocates, so resizing it beyond that memory is an error.
  static Tensor view(float* data, std::vector<std::int64_t> shape);

  // New shape; contents are unspecified unless zero() follows.
  void resize(std::vector<std::int64_t> shape);
  void zero();
  void fill(float value);

  float* data() { return data_.get(); }
  const float* data() const { return data_.get(); }
  float& operator[](std::int64_t i) { return data_.get()[i]; }
  float operator[](std::int64_t i) const { return data_.get()[i]; }
  std::int64_t size() const { return size_; }
  const std::vector<std::int64_t>& shape() const { return shape_; }
  std::int64_t dim(std::size_t i) const { return shape_.at(i); }
  std::string shape_string() const;

 private:
  struct Free {
    constexpr Free() noexcept : owned(true) {}
    constexpr explicit Free(bool owns) noexcept : owned(owns) {}
    bool owned;
    void operator()(float* p) const {
      if (owned) std::free(p);
    }
  };
  std::unique_ptr<float, Free> data_;
  std::vector<std::int64_t> shape_;
  std::int64_t size_ = 0;
  std::int64_t capacity_ = 0;
};

}  // namespace gloss
