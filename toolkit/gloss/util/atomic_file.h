#pragma once
// Files that are either complete or absent: written to a temporary file beside the target,
// flushed, then renamed over it. A crash never leaves a half-written file. A target that
// exists and is not a regular file (a device such as /dev/null, a FIFO) is written in place,
// never replaced. SIGINT or SIGTERM during a write removes the temporary file before the
// process ends as the signal says, where the signal's action was the default (this installs a
// handler for it); otherwise the next write of the same path sweeps it.
#include <fstream>
#include <memory>
#include <string>
#include <string_view>

namespace gloss {

// True when `path` exists and is neither a regular file nor a folder (a device, a FIFO).
bool is_special_file(const std::string& path);

// The temporary file of `path` for this process: "<path>.tmp.<pid>".
std::string temporary_name(const std::string& path);
// Removes "<path>.tmp.<pid>" files of processes that no longer run: what a write killed or
// failed midway left behind. Called before every write of `path`.
void sweep_stale_temporaries(const std::string& path);

// Creates missing parent folders; UserError naming the path if it cannot be written.
void atomic_write_file(const std::string& path, std::string_view bytes);

class GzWriteBuf;  // atomic_file.cc: a std::streambuf over zlib's gzip writer

// For its lifetime, the temporary file `tmp` is one that SIGINT or SIGTERM removes (see above;
// "" or no free place: none, and the next write's sweep removes it).
class RememberedTemporary {
 public:
  explicit RememberedTemporary(const std::string& tmp);
  ~RememberedTemporary();
  RememberedTemporary(const RememberedTemporary&) = delete;
  RememberedTemporary& operator=(const RememberedTemporary&) = delete;

 private:
  int slot_;  // where the signal handler finds it (atomic_file.cc), or -1
};

// The same for a file written in parts: write to stream(), then commit() renames the
// temporary file into place. Destroyed without commit() (an error on the way), it removes
// the temporary file and leaves `path` as it was. With gzip_by_name (text outputs: a
// translation, encoded subwords), a path ending in ".gz" is written gzip-compressed, as
// Marian writes it and as every Gloss input reads it back.
class AtomicFile {
 public:
  // UserError if the temporary file cannot be created.
  explicit AtomicFile(const std::string& path, bool gzip_by_name = false);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  std::ostream& stream() { return out_; }
  void commit();  // UserError naming the path if writing failed

 private:
  bool close_buffer();  // flushes and closes the file; false if any write failed
  std::string path_, tmp_;
  RememberedTemporary remembered_{tmp_};  // after tmp_, which it reads
  std::filebuf file_;                     // the bytes as written, or
  std::unique_ptr<GzWriteBuf> gz_;        // gzip (gzip_by_name and a ".gz" path)
  std::ostream out_{nullptr};             // writes to one of them
  bool committed_ = false;
};
// The whole regular file; InputError if unreadable, or a pipe or device (require_rereadable).
std::string read_file(const std::string& path);

// InputError unless `path` can be opened as a file ("-" = standard input is accepted):
// a directory or a missing file gets a one-line error naming it.
void require_file(const std::string& path);

// require_file, and InputError unless `path` can be read again from its start (a regular
// file, not a pipe such as bash's <(...) or a device): `why` says what reads it more than once.
void require_rereadable(const std::string& path, const std::string& why);

}  // namespace gloss
