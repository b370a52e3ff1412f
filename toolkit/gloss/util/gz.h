#pragma once
// zlib's gzread, checked: a damaged .gz file, or one cut short (whose data just stops, which
// gzread alone reports as a normal end), is an InputError naming the file and the line where
// its data ends, never a silently shorter file.
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

struct gzFile_s;

namespace gloss {

// Up to `size` bytes into buf; 0 at the real end of the data. `line`: the line being read,
// for the error.
int read_gz(gzFile_s* file, char* buf, unsigned size, const std::string& path, std::size_t line);

// A pipe or terminal (standard input) read as its data arrives: plain text, or gzip (told by
// its first two bytes) decompressed as it comes. gzread instead waits until its buffer is full
// or the input ends, so a program that writes one line and waits for its translation would
// wait forever. The errors are read_gz's; a read error is an InputError too.
class ArrivingInput {
 public:
  ArrivingInput(int fd, std::string name);  // fd: read, not owned; name: for errors
  ~ArrivingInput();
  ArrivingInput(const ArrivingInput&) = delete;
  ArrivingInput& operator=(const ArrivingInput&) = delete;
  // Up to `size` bytes into buf, waiting only while none has arrived; 0 at the end of the
  // data. `line`: the line being read, for errors.
  int read(char* buf, unsigned size, std::size_t line);
  // Whether read() would return at once (bytes, or the end, have arrived).
  bool ready() const;

 private:
  int fill(std::size_t line);  // the next raw bytes into raw_; 0 at the end
  int inflate_into(char* buf, unsigned size, std::size_t line);
  int fd_;
  std::string name_;
  std::vector<unsigned char> raw_;  // bytes read and not yet returned (plain) or inflated (gzip)
  std::size_t raw_at_ = 0;
  bool started_ = false, ended_ = false;
  struct Inflater;
  std::unique_ptr<Inflater> gzip_;  // null: plain text
};

// The bytes of a text input, plain or gzip: a file through zlib (read_gz), or standard input
// ("-"): through zlib too when a file is redirected to it, else (a pipe, a terminal) as its
// data arrives (ArrivingInput). InputError naming `path` when it cannot be opened.
class InputBytes {
 public:
  explicit InputBytes(const std::string& path);
  ~InputBytes();
  InputBytes(const InputBytes&) = delete;
  InputBytes& operator=(const InputBytes&) = delete;
  // Up to `size` bytes into buf; 0 at the end of the data. `line`: the line being read, for errors.
  int read(char* buf, unsigned size, std::size_t line);
  // Whether read() returns at once (files: always); a reader whose writer may be waiting for
  // the output of the lines so far should hand it over first.
  bool ready() const;

 private:
  std::string path_;
  gzFile_s* gz_ = nullptr;
  std::unique_ptr<ArrivingInput> arriving_;
};

}  // namespace gloss
