#include "gloss/util/gz.h"

#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "gloss/util/error.h"

namespace gloss {

int read_gz(gzFile_s* file, char* buf, unsigned size, const std::string& path, std::size_t line) {
  const int n = gzread(file, buf, size);
  if (n > 0) return n;  // the data there is; a cut stream reports itself on the next call
  int code = Z_OK;
  const char* message = gzerror(file, &code);
  if (n < 0 || code == Z_BUF_ERROR)
    throw InputError(path, line,
                     code == Z_BUF_ERROR
                         ? "the compressed data ends here, cut short (a truncated .gz file?); "
                           "download or copy it again"
                         : std::string("not valid gzip data (") + message + "); decompress it or fetch it again");
  return n;
}

struct ArrivingInput::Inflater {
  z_stream z{};
  bool member_done = false;  // at the end of a gzip member: the input may end here
  Inflater() {
    if (inflateInit2(&z, 15 + 16) != Z_OK) throw std::bad_alloc();  // 16: gzip only
  }
  ~Inflater() { inflateEnd(&z); }
};

ArrivingInput::ArrivingInput(int fd, std::string name) : fd_(fd), name_(std::move(name)) {}
ArrivingInput::~ArrivingInput() = default;

bool ArrivingInput::ready() const {
  if (ended_ || raw_at_ < raw_.size()) return true;
  pollfd p{fd_, POLLIN, 0};
  return ::poll(&p, 1, 0) != 0;  // readable, hung up, or an error read() will report
}

int ArrivingInput::fill(std::size_t line) {
  if (ended_) return 0;
  raw_.resize(1 << 16);
  raw_at_ = 0;
  ssize_t n;
  do n = ::read(fd_, raw_.data(), raw_.size());
  while (n < 0 && errno == EINTR);
  if (n < 0) throw InputError(name_, line, std::string("cannot read: ") + std::strerror(errno));
  raw_.resize(static_cast<std::size_t>(n));
  ended_ = n == 0;
  return static_cast<int>(n);
}

int ArrivingInput::read(char* buf, unsigned size, std::size_t line) {
  if (!started_) {  // the first two bytes tell gzip from text (a second is awaited only after 0x1f)
    started_ = true;
    std::vector<unsigned char> head;
    while ((head.empty() || (head.size() < 2 && head[0] == 0x1f)) && fill(line) > 0)
      head.insert(head.end(), raw_.begin(), raw_.end());
    raw_ = std::move(head);
    raw_at_ = 0;
    if (raw_.size() >= 2 && raw_[0] == 0x1f && raw_[1] == 0x8b) gzip_ = std::make_unique<Inflater>();
  }
  if (gzip_) return inflate_into(buf, size, line);
  if (raw_at_ == raw_.size() && fill(line) == 0) return 0;
  const std::size_t n = std::min<std::size_t>(size, raw_.size() - raw_at_);
  std::memcpy(buf, raw_.data() + raw_at_, n);
  raw_at_ += n;
  return static_cast<int>(n);
}

int ArrivingInput::inflate_into(char* buf, unsigned size, std::size_t line) {
  z_stream& z = gzip_->z;
  for (;;) {
    if (raw_at_ == raw_.size() && fill(line) == 0) {
      if (gzip_->member_done) return 0;
      throw InputError(name_, line,
                       "the compressed data ends here, cut short (a truncated .gz file?); "
                       "download or copy it again");
    }
    if (gzip_->member_done) {  // another member follows (concatenated .gz files)
      inflateReset(&z);
      gzip_->member_done = false;
    }
    z.next_in = raw_.data() + raw_at_;
    z.avail_in = static_cast<uInt>(raw_.size() - raw_at_);
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = size;
    const int code = inflate(&z, Z_NO_FLUSH);
    raw_at_ = raw_.size() - z.avail_in;
    if (code == Z_STREAM_END) gzip_->member_done = true;
    if (code != Z_OK && code != Z_STREAM_END && code != Z_BUF_ERROR)
      throw InputError(name_, line,
                       std::string("not valid gzip data (") + (z.msg ? z.msg : "inflate failed") +
                           "); decompress it or fetch it again");
    if (z.avail_out < size) return static_cast<int>(size - z.avail_out);
  }
}

namespace {

// Whether `path` is "-" (standard input) and that is a pipe, terminal or socket rather than a
// file redirected to it.
bool is_arriving_input(const std::string& path) {
  struct stat st;
  return path == "-" && (::fstat(0, &st) != 0 || !S_ISREG(st.st_mode));
}

}  // namespace

InputBytes::InputBytes(const std::string& path) : path_(path) {
  if (is_arriving_input(path)) {
    arriving_ = std::make_unique<ArrivingInput>(0, path);
    return;
  }
  // zlib reads uncompressed files transparently, so one code path serves both.
  gz_ = path == "-" ? gzdopen(::dup(0), "rb") : gzopen(path.c_str(), "rb");
  if (!gz_) throw InputError(path, 0, std::string("cannot open: ") + std::strerror(errno));
  gzbuffer(gz_, 1 << 17);
}

InputBytes::~InputBytes() {
  if (gz_) gzclose(gz_);
}

int InputBytes::read(char* buf, unsigned size, std::size_t line) {
  return arriving_ ? arriving_->read(buf, size, line) : read_gz(gz_, buf, size, path_, line);
}

bool InputBytes::ready() const { return !arriving_ || arriving_->ready(); }

}  // namespace gloss
