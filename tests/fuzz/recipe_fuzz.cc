// libFuzzer harness: recipe files (sections, keys, values, includes, comments).
#include "fuzz_input.h"
#include "gloss/recipe/recipe.h"
#include "gloss/util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto path = gloss::fuzz::input_file("recipe.ini", gloss::fuzz::as_text(data, size));
  try {
    gloss::recipe::load_recipe(path, {}, /*check_files=*/false);
  } catch (const gloss::UserError&) {
  }
  return 0;
}
