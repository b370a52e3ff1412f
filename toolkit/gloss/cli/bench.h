#pragma once
#include <iosfwd>
#include <string>
#include <vector>

namespace gloss::cli {

// `gloss bench train [RECIPE] [--threads N] [--section.key value ...]`: training throughput
// of the recipe's model on its data, and GFLOP/s against the machine's dnnl_sgemm.
int bench_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& log);

}  // namespace gloss::cli
