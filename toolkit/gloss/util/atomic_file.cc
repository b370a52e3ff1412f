#include "gloss/util/atomic_file.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

#include "gloss/util/error.h"

namespace gloss {

// A device such as /dev/null, a FIFO, or a link to one: written in place, since renaming over
// it would replace it.
bool is_special_file(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return false;
  return !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode);
}

std::string temporary_name(const std::string& path) { return path + ".tmp." + std::to_string(::getpid()); }

void sweep_stale_temporaries(const std::string& path) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  const std::string prefix = target.filename().string() + ".tmp.";
  std::error_code ec;
  std::vector<fs::path> stale;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (!name.starts_with(prefix)) continue;
    const std::string pid = name.substr(prefix.size());
    if (pid.empty() || pid.size() > 9 || pid.find_first_not_of("0123456789") != std::string::npos) continue;
    const auto p = static_cast<pid_t>(std::stol(pid));
    if (p == ::getpid() || ::kill(p, 0) == 0 || errno == EPERM) continue;  // a running writer's
    stale.push_back(it->path());
  }
  for (const auto& f : stale) fs::remove(f, ec);
}

namespace {

// Temporary files being written, for a SIGINT or SIGTERM to remove before the process ends:
// Ctrl-C during `gloss translate -o out` used to leave out.tmp.<pid> until the next write of
// out swept it. A signal handler may only read plain memory, so the paths are copied into
// fixed slots (0 free, 1 being filled, 2 ready); a file that finds no slot is left to
// sweep_stale_temporaries, as before.
struct TemporarySlot {
  std::atomic<int> state{0};
  char path[4096];
};
TemporarySlot g_temporaries[8];

extern "C" void remove_temporaries_and_resend(int signal) {
  for (auto& slot : g_temporaries)
    if (slot.state.load() == 2) ::unlink(slot.path);
  ::raise(signal);  // blocked until this returns; then, with SA_RESETHAND, the default action
}

// Only where the signal's action is the default: a shell's SIG_IGN (a background job) and a
// handler of the program's own (the trainer's, which ends by unwinding, so the AtomicFile
// destructors remove their files) stay as they are.
void remove_temporaries_on(int signal) {
  struct sigaction old {};
  if (::sigaction(signal, nullptr, &old) != 0 || old.sa_handler != SIG_DFL) return;
  struct sigaction sa {};
  sa.sa_handler = remove_temporaries_and_resend;
  sa.sa_flags = SA_RESETHAND | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  ::sigaction(signal, &sa, nullptr);
}

// The slot that holds `tmp` until forget_temporary(slot), or -1.
int remember_temporary(const std::string& tmp) {
  if (tmp.empty()) return -1;
  remove_temporaries_on(SIGINT);
  remove_temporaries_on(SIGTERM);
  if (tmp.size() >= sizeof(TemporarySlot::path)) return -1;
  for (int i = 0; i < static_cast<int>(std::size(g_temporaries)); ++i) {
    int free = 0;
    if (!g_temporaries[i].state.compare_exchange_strong(free, 1)) continue;
    std::memcpy(g_temporaries[i].path, tmp.c_str(), tmp.size() + 1);
    g_temporaries[i].state.store(2);
    return i;
  }
  return -1;
}

void forget_temporary(int slot) {
  if (slot >= 0) g_temporaries[slot].state.store(0);
}

std::string temporary_beside(const std::string& path) {
  const std::filesystem::path target(path);
  std::error_code ec;
  if (std::filesystem::is_directory(target, ec))  // before any work is done for it
    throw UserError(path + ": is a directory; give a file name");
  if (target.has_parent_path()) std::filesystem::create_directories(target.parent_path());
  sweep_stale_temporaries(path);
  return temporary_name(path);
}

void write_all(int fd, std::string_view bytes, const std::string& path, const std::string& tmp) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      if (!tmp.empty()) ::unlink(tmp.c_str());
      throw UserError(path + ": write failed: " + std::strerror(err));
    }
    done += static_cast<std::size_t>(n);
  }
}

void sync_and_rename(const std::string& tmp, const std::string& path) {
  const int fd = ::open(tmp.c_str(), O_RDONLY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw UserError(path + ": cannot rename into place: " + std::strerror(err));
  }
}

}  // namespace

RememberedTemporary::RememberedTemporary(const std::string& tmp) : slot_(remember_temporary(tmp)) {}
RememberedTemporary::~RememberedTemporary() { forget_temporary(slot_); }

// A write-only stream buffer over zlib's gzip writer: what AtomicFile writes to a ".gz" text
// output. Unbuffered here (gzwrite buffers); close() reports whether every write succeeded.
class GzWriteBuf : public std::streambuf {
 public:
  explicit GzWriteBuf(const std::string& path) : file_(gzopen(path.c_str(), "wb")) {}
  ~GzWriteBuf() override { close(); }
  bool is_open() const { return file_ != nullptr; }
  bool close() {
    if (file_ && gzclose(file_) != Z_OK) ok_ = false;
    file_ = nullptr;
    return ok_;
  }

 protected:
  int_type overflow(int_type c) override {
    if (traits_type::eq_int_type(c, traits_type::eof())) return traits_type::not_eof(c);
    const char ch = traits_type::to_char_type(c);
    return xsputn(&ch, 1) == 1 ? c : traits_type::eof();
  }
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    std::streamsize done = 0;
    while (ok_ && file_ && done < n) {
      const auto part = static_cast<unsigned>(std::min<std::streamsize>(n - done, 1 << 20));
      const int wrote = gzwrite(file_, s + done, part);
      if (wrote <= 0) ok_ = false;
      done += std::max(wrote, 0);
    }
    return done;
  }

 private:
  gzFile file_;
  bool ok_ = true;
};

void atomic_write_file(const std::string& path, std::string_view bytes) {
  if (is_special_file(path)) {
    const int fd = ::open(path.c_str(), O_WRONLY);
    if (fd < 0) throw UserError(path + ": cannot write: " + std::strerror(errno));
    write_all(fd, bytes, path, "");
    if (::close(fd) != 0) throw UserError(path + ": write failed: " + std::strerror(errno));
    return;
  }
  const std::string tmp = temporary_beside(path);
  const RememberedTemporary remembered(tmp);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) throw UserError(path + ": cannot write: " + std::strerror(errno));
  write_all(fd, bytes, path, tmp);
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    ::unlink(tmp.c_str());
    throw UserError(path + ": write failed: " + std::strerror(errno));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw UserError(path + ": cannot rename into place: " + std::strerror(err));
  }
}

AtomicFile::AtomicFile(const std::string& path, bool gzip_by_name)
    : path_(path), tmp_(is_special_file(path) ? std::string() : temporary_beside(path)) {
  const std::string& target = tmp_.empty() ? path_ : tmp_;
  bool open = false;
  if (gzip_by_name && path.ends_with(".gz")) {
    gz_ = std::make_unique<GzWriteBuf>(target);
    open = gz_->is_open();
  } else {
    open = file_.open(target, std::ios::out | std::ios::binary | std::ios::trunc) != nullptr;
  }
  if (!open) throw UserError(path + ": cannot write: " + std::strerror(errno));
  out_.rdbuf(gz_ ? static_cast<std::streambuf*>(gz_.get()) : &file_);
}

AtomicFile::~AtomicFile() {  // the file goes before remembered_ forgets it
  if (committed_) return;
  close_buffer();
  if (!tmp_.empty()) ::unlink(tmp_.c_str());
}

bool AtomicFile::close_buffer() {
  out_.flush();
  const bool written = static_cast<bool>(out_);
  return (gz_ ? gz_->close() : file_.close() != nullptr) && written;
}

void AtomicFile::commit() {
  committed_ = true;
  if (!close_buffer()) {
    if (!tmp_.empty()) ::unlink(tmp_.c_str());
    throw UserError(path_ + ": write failed (disk full?)");
  }
  if (!tmp_.empty()) sync_and_rename(tmp_, path_);
}

void require_file(const std::string& path) {
  if (path == "-") return;
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    const int err = errno;
    if (err == ENOENT && ::lstat(path.c_str(), &st) == 0)
      throw InputError(path, 0, "cannot open: a symbolic link to a missing file");
    throw InputError(path, 0, std::string("cannot open: ") + std::strerror(err));  // ELOOP, ENOTDIR, EACCES
  }
  if (S_ISDIR(st.st_mode)) throw InputError(path, 0, "is a directory; give a file");
}

void require_rereadable(const std::string& path, const std::string& why) {
  require_file(path);
  struct stat st;
  if (path == "-" || (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)))
    throw InputError(path, 0, "is a pipe or device, which can be read only once, and " + why + "; save it to a file");
}

std::string read_file(const std::string& path) {
  require_rereadable(path, "this file is read whole, its size known first");  // a pipe's size reads as 0
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path, 0, std::string("cannot open: ") + std::strerror(errno));
  // One read of the whole size (a character-wise copy took 170 ms for a 41 MB model file).
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  in.seekg(0, std::ios::beg);
  std::string data(static_cast<std::size_t>(std::max<std::streamoff>(0, size)), '\0');
  if (size > 0 && !in.read(data.data(), size)) throw InputError(path, 0, "read error");
  return data;
}

}  // namespace gloss
