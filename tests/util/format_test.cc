// The small number formats of progress lines and summaries (util/format.h).
#include <catch2/catch.hpp>

#include "gloss/util/format.h"

using gloss::counted;
using gloss::duration_text;
using gloss::fixed;

TEST_CASE("format: fixed decimals, durations and counted nouns", "[util]") {
  CHECK(fixed(4.06, 1) == "4.1");
  CHECK(duration_text(385) == "6m25s");
  CHECK(duration_text(3725) == "1h02m05s");
  CHECK(duration_text(-3) == "0m00s");
  CHECK(counted(1, "file") == "1 file");
  CHECK(counted(0, "file") == "0 files");
  CHECK(counted(2, "batch", "batches") == "2 batches");
  CHECK(counted(1, "batch", "batches") == "1 batch");
}
