#pragma once
// The page `gloss serve` answers GET / with: one HTML file with its style and script inline
// (no external scripts, fonts or images). Type or paste sentences (one per line), choose beam
// size and n-best, and see each translation, its n-best list and its attention heat map
// (a table: a row per output subword, a column per source subword). `/?text=...` translates
// that text at once (links, and the browser test).
#include <string>

namespace gloss::serve {

const std::string& page_html();

}  // namespace gloss::serve
