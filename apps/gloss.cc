// The `gloss` command: thin subcommands over the toolkit.
#include <malloc.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "gloss/cli/bench.h"
#include "gloss/cli/commands.h"
#include "gloss/cli/eval_cli.h"
#include "gloss/util/error.h"

namespace {

const char* kUsage =
    "Usage: gloss <command> [options]\n"
    "Gloss: RNN-attention neural machine translation on the CPU.\n\n"
    "Commands:\n"
    "  run        every stage of a recipe: subwords, training, translation, BLEU report\n"
    "  train      train a model from a recipe (resumes when interrupted)\n"
    "  average    average model files or checkpoints of one training\n"
    "  translate  translate text with a trained model (beam search, n-best)\n"
    "  shortlist  build a lexical shortlist for faster translation (translate --shortlist)\n"
    "  eval       score translations against references (BLEU, chrF, TER; sacreBLEU-exact)\n"
    "  recipe     show or check a recipe (every key, its value and where it came from)\n"
    "  spm        train SentencePiece models from a recipe; encode or decode text\n"
    "  data       prepare a recipe's training data and report filtering, batches, padding\n"
    "  plot       draw a run's training curves (metrics.jsonl) as SVG\n"
    "  bench      measure training speed on this machine (gloss bench train)\n\n"
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

// OpenMP's default spin-waiting collapses on shared machines, so Gloss runs with
// OMP_WAIT_POLICY=PASSIVE unless the user chose a policy. libgomp reads the variable when it
// is loaded, before main(), so the process re-executes itself once with it set.
void ensure_passive_openmp(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY")) return;
  setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
  execv("/proc/self/exe", argv);  // returns only on failure: then run on with the default
}

int run(int argc, char** argv) {
  ensure_passive_openmp(argv);
  // Keep freed memory for reuse instead of returning it to the system after every batch
  // (large buffers would otherwise be mapped and page-faulted in again each time).
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
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
  if (command == "run") return gloss::cli::run_command(args, std::cout, std::cerr);
  if (command == "plot") return gloss::cli::plot_command(args, std::cout, std::cerr);
  if (command == "train") return gloss::cli::train_command(args, std::cout, std::cerr);
  if (command == "shortlist") return gloss::cli::shortlist_command(args, std::cout, std::cerr);
  if (command == "translate") return gloss::cli::translate_command(args, std::cout, std::cerr);
  if (command == "average") return gloss::cli::average_command(args, std::cout, std::cerr);
  if (command == "bench") return gloss::cli::bench_command(args, std::cout, std::cerr);
  std::cerr << "gloss: unknown command '" << command << "'; choose one of: run, train, average, translate, shortlist, eval, recipe, spm, data, bench (see gloss --help)\n";
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
