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
// Whether `path` is "-" (standard input) and that is a pipe, terminal or socket, to be read
// through ArrivingInput, rather than a file redirected to it (which zlib reads as a file).
bool is_arriving_input(const std::string& path);

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

}  // namespace gloss
