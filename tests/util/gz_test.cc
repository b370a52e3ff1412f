// ArrivingInput: a pipe's bytes come back as soon as they arrive (not when a buffer fills or the
// writer closes), plain or gzip; damaged or cut gzip data is an InputError, never a shorter text.
#include <unistd.h>
#include <zlib.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <future>
#include <string>
#include <thread>

#include "gloss/util/error.h"
#include "gloss/util/gz.h"

using namespace gloss;

namespace {

struct Pipe {
  int fds[2] = {-1, -1};
  Pipe() { REQUIRE(::pipe(fds) == 0); }
  ~Pipe() {
    close_writer();
    ::close(fds[0]);
  }
  void write(const std::string& bytes) const {
    REQUIRE(::write(fds[1], bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()));
  }
  void close_writer() {
    if (fds[1] >= 0) ::close(fds[1]);
    fds[1] = -1;
  }
};

// text as one gzip member
std::string gzip(const std::string& text) {
  z_stream z{};
  REQUIRE(deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  std::string out(deflateBound(&z, text.size()) + 64, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
  z.avail_in = static_cast<uInt>(text.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  REQUIRE(deflate(&z, Z_FINISH) == Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

// Everything `in` returns until its end.
std::string read_all(ArrivingInput& in) {
  std::string text;
  char buf[7];  // small: reads that end inside lines and inside gzip blocks
  for (int n; (n = in.read(buf, sizeof buf, 1)) > 0;) text.append(buf, static_cast<std::size_t>(n));
  return text;
}

}  // namespace

TEST_CASE("ArrivingInput: a line written to a pipe is read while the writer keeps it open", "[util][gz]") {
  Pipe p;
  ArrivingInput in(p.fds[0], "stdin");
  CHECK_FALSE(in.ready());
  p.write("a dog\n");
  CHECK(in.ready());
  char buf[1 << 16];
  auto got = std::async(std::launch::async, [&] { return in.read(buf, sizeof buf, 1); });
  const bool returned = got.wait_for(std::chrono::seconds(10)) == std::future_status::ready;
  if (!returned) p.close_writer();  // unblocks the read, so the test fails instead of hanging
  REQUIRE(returned);
  CHECK(std::string(buf, static_cast<std::size_t>(got.get())) == "a dog\n");
  CHECK_FALSE(in.ready());
  p.close_writer();
  CHECK(in.ready());
  CHECK(in.read(buf, sizeof buf, 2) == 0);
}

TEST_CASE("ArrivingInput: a first line of one byte (an empty line) is read without waiting for a second",
          "[util][gz]") {
  Pipe p;
  ArrivingInput in(p.fds[0], "stdin");
  p.write("\n");
  char buf[16];
  auto got = std::async(std::launch::async, [&] { return in.read(buf, sizeof buf, 1); });
  const bool returned = got.wait_for(std::chrono::seconds(10)) == std::future_status::ready;
  if (!returned) p.close_writer();  // unblocks the read, so the test fails instead of hanging
  REQUIRE(returned);
  CHECK(std::string(buf, static_cast<std::size_t>(got.get())) == "\n");
}

TEST_CASE("ArrivingInput: gzip data is told by its first bytes and inflated, concatenated members too", "[util][gz]") {
  Pipe p;
  ArrivingInput in(p.fds[0], "stdin");
  p.write(gzip("one\ntwo\n") + gzip("three\n"));
  p.close_writer();
  CHECK(read_all(in) == "one\ntwo\nthree\n");
}

TEST_CASE("ArrivingInput: gzip data that trickles in a byte at a time inflates the same", "[util][gz]") {
  const std::string text = "one\ntwo\nthree\n";
  const std::string bytes = gzip(text) + gzip("four\n");
  Pipe p;
  ArrivingInput in(p.fds[0], "stdin");
  std::thread writer([&] {
    for (const char c : bytes) {
      (void)!::write(p.fds[1], &c, 1);  // the reader's read(2) sees 1-byte pieces, the magic bytes too
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    p.close_writer();
  });
  const std::string got = read_all(in);
  writer.join();
  CHECK(got == text + "four\n");
}

TEST_CASE("ArrivingInput: plain text passes as it is, a lone byte too", "[util][gz]") {
  for (const std::string& text : {std::string("x"), std::string("\x1f"), std::string("plain\ntext without end")}) {
    Pipe p;
    ArrivingInput in(p.fds[0], "stdin");
    p.write(text);
    p.close_writer();
    CHECK(read_all(in) == text);
  }
}

TEST_CASE("ArrivingInput: cut or damaged gzip data is an InputError naming the input", "[util][gz]") {
  const std::string whole = gzip(std::string(5000, 'a') + "\n");
  for (const std::string& bad : {whole.substr(0, whole.size() - 5), whole + "garbage"}) {
    Pipe p;
    ArrivingInput in(p.fds[0], "stdin");
    p.write(bad);
    p.close_writer();
    CHECK_THROWS_AS(read_all(in), InputError);
    Pipe q;
    ArrivingInput again(q.fds[0], "stdin");
    q.write(bad);
    q.close_writer();
    CHECK_THROWS_WITH(read_all(again), Catch::StartsWith("stdin:1: "));
  }
}
