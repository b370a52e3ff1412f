// The `gloss` command: thin subcommands over the toolkit.
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "gloss/cli/commands.h"
#include "gloss/cli/eval_cli.h"
#include "gloss/util/error.h"

namespace {

const char* kUsage =
    "Usage: gloss <command> [options]\n"
    "Gloss: RNN-attention neural machine translation on the CPU.\n\n"
    "Commands:\n"
    "  eval    score translations against references (BLEU, chrF, TER; sacreBLEU-exact)\n"
    "  recipe  show or check a recipe (every key, its value and where it came from)\n"
    "  spm     train SentencePiece models from a recipe; encode or decode text\n"
    "  data    prepare a recipe's training data and report filtering, batches, padding\n\n"
    "Run `gloss <command> --help` for the options of a command.\n";

int cmd_eval(const std::vector<std::string>& args) {
  const auto cmd = gloss::cli::parse_eval_args(args);
  if (cmd.help) {
    std::cout << gloss::cli::eval_usage();
    return 0;
  }
  gloss::eval::run_eval(cmd.options, std::cin, std::cout);
  return 0;
}

int run(int argc, char** argv) {
  // OpenMP's default spin-waiting collapses on shared machines; respect an explicit choice.
  setenv("OMP_WAIT_POLICY", "PASSIVE", /*overwrite=*/0);
  std::ios::sync_with_stdio(false);
  if (argc < 2) {
    std::cerr << kUsage;
    return 2;
  }
  const std::string command = argv[1];
  const std::vector<std::string> args(argv + 2, argv + argc);
  if (command == "--help" || command == "-h" || command == "help") {
    std::cout << kUsage;
    return 0;
  }
  if (command == "--version") {
    std::cout << "gloss 0.1.0\n";
    return 0;
  }
  if (command == "eval") return cmd_eval(args);
  if (command == "recipe") return gloss::cli::recipe_command(args, std::cout, std::cerr);
  if (command == "spm") return gloss::cli::spm_command(args, std::cin, std::cout, std::cerr);
  if (command == "data") return gloss::cli::data_command(args, std::cout, std::cerr);
  std::cerr << "gloss: unknown command '" << command << "'; choose one of: eval, recipe, spm, data (see gloss --help)\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const int rc = run(argc, argv);
    std::cout.flush();
    if (!std::cout) {
      std::cerr << "gloss: cannot write to standard output\n";
      return 1;
    }
    return rc;
  } catch (const gloss::UserError& e) {
    std::cout.flush();
    std::cerr << "gloss: " << e.what() << '\n';
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "gloss: internal error: " << e.what() << '\n';
    return 1;
  }
}
