// AtomicFile's text outputs: a ".gz" name with gzip_by_name is gzip (what every Gloss input
// reads back); without it, or with any other name, the bytes are written as they are.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <string>

#include "gloss/util/atomic_file.h"
#include "gloss/util/line_reader.h"

namespace fs = std::filesystem;
using namespace gloss;

namespace {

fs::path scratch_dir() {
  const fs::path dir = fs::temp_directory_path() / ("gloss_atomic_file_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

void write_lines(const std::string& path, bool gzip_by_name, int lines) {
  AtomicFile f(path, gzip_by_name);
  for (int i = 0; i < lines; ++i) f.stream() << "line " << i << " ü\n";
  f.commit();
}

}  // namespace

TEST_CASE("AtomicFile: a .gz text output is gzip and reads back line for line", "[util][atomic_file]") {
  const fs::path dir = scratch_dir();
  const std::string gz = (dir / "out.gz").string(), plain = (dir / "model.gz").string();
  write_lines(gz, true, 100000);
  write_lines(plain, false, 3);
  const std::string gz_bytes = read_file(gz), plain_bytes = read_file(plain);
  REQUIRE(gz_bytes.size() > 2);
  CHECK(static_cast<unsigned char>(gz_bytes[0]) == 0x1f);  // gzip's magic number
  CHECK(static_cast<unsigned char>(gz_bytes[1]) == 0x8b);
  CHECK(gz_bytes.size() < 100000 * 10);                    // compressed
  CHECK(plain_bytes == "line 0 ü\nline 1 ü\nline 2 ü\n");  // gzip_by_name off: as written
  LineReader reader(gz);
  std::string line;
  int n = 0;
  bool all_equal = true;
  while (reader.next(line)) all_equal = all_equal && line == "line " + std::to_string(n++) + " ü";
  CHECK(n == 100000);
  CHECK(all_equal);
  fs::remove_all(dir);
}

TEST_CASE("AtomicFile: a .gz output destroyed before commit leaves nothing behind", "[util][atomic_file]") {
  const fs::path dir = scratch_dir();
  const std::string gz = (dir / "out.gz").string();
  {
    AtomicFile f(gz, true);
    f.stream() << "half a translation\n";
  }
  CHECK(!fs::exists(gz));
  CHECK(fs::is_empty(dir));  // no temporary either
  fs::remove_all(dir);
}
