// The `gloss` command: thin subcommands over the toolkit.
#include <malloc.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include "gloss/cli/bench.h"
#include "gloss/cli/commands.h"
#include "gloss/cli/eval_cli.h"
#include "gloss/dist/comm.h"
#include "gloss/util/error.h"

namespace {

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

// The command table: every subcommand, its one-line summary (for --help) and how it runs.
struct Command {
  const char* name;
  const char* summary;
  std::function<int(const std::vector<std::string>&)> run;
};

const std::vector<Command>& commands() {
  using namespace gloss::cli;
  static const std::vector<Command> table = {
      {"run", "every stage of a recipe: subwords, training, translation, BLEU report",
       [](const auto& a) { return run_command(a, std::cout, std::cerr); }},
      {"train", "train a model from a recipe (resumes when interrupted)",
       [](const auto& a) { return train_command(a, std::cout, std::cerr); }},
      {"average", "average model files or checkpoints of one training",
       [](const auto& a) { return average_command(a, std::cout, std::cerr); }},
      {"translate", "translate text with a trained model (beam search, n-best)",
       [](const auto& a) { return translate_command(a, std::cout, std::cerr); }},
      {"serve", "translate over HTTP, with a page that shows translations and attention",
       [](const auto& a) { return serve_command(a, std::cout, std::cerr); }},
      {"shortlist", "build a lexical shortlist for faster translation (translate --shortlist)",
       [](const auto& a) { return shortlist_command(a, std::cout, std::cerr); }},
      {"eval", "score translations against references (BLEU, chrF, TER; sacreBLEU-exact)", cmd_eval},
      {"recipe", "show or check a recipe (every key, its value and where it came from)",
       [](const auto& a) { return recipe_command(a, std::cout, std::cerr); }},
      {"spm", "train SentencePiece models from a recipe; encode or decode text",
       [](const auto& a) { return spm_command(a, std::cin, std::cout, std::cerr); }},
      {"data", "prepare a recipe's training data and report filtering, batches, padding",
       [](const auto& a) { return data_command(a, std::cout, std::cerr); }},
      {"summary", "a model's layers, output shapes, parameters, FLOPs and training memory (Keras style)",
       [](const auto& a) { return summary_command(a, std::cout, std::cerr); }},
      {"plot", "draw a run's training curves (metrics.jsonl) as SVG",
       [](const auto& a) { return plot_command(a, std::cout, std::cerr); }},
      {"bench", "measure training or translation speed on this machine (gloss bench train|translate)",
       [](const auto& a) { return bench_command(a, std::cout, std::cerr); }},
  };
  return table;
}

std::string usage() {
  std::string u =
      "Usage: gloss <command> [options]\n"
      "Gloss: RNN-attention neural machine translation on the CPU.\n\n"
      "Commands:\n";
  for (const auto& c : commands()) {
    std::string name = c.name;
    u += "  " + name + std::string(11 - name.size(), ' ') + c.summary + "\n";
  }
  return u + "\nRun `gloss <command> --help` for the options of a command.\n";
}

int run(int argc, char** argv) {
  ensure_passive_openmp(argv);
  // Blocks of 8 MB and more (weights, gradients, optimiser state, the largest batch buffers)
  // get their own mappings, returned whole when freed; smaller ones are kept for reuse. With
  // everything on the heap (a 1 GB threshold) training's freed large blocks fragmented it:
  // peak RSS of 400 quick-en-de updates 574-578 MB, against ~535 MB here. A lower threshold
  // saves more (1 MB: 499-505 MB) but maps oneDNN's per-call GEMM packing buffers afresh on
  // every call (page faults of 30 training batches 124k -> 210k; 3-9 % slower). Fixed rather
  // than glibc's sliding threshold, which would move large blocks back onto the heap.
  mallopt(M_MMAP_THRESHOLD, 8 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  std::ios::sync_with_stdio(false);
  if (argc < 2) {
    std::cerr << usage();
    return 2;
  }
  const std::string command = argv[1];
  const std::vector<std::string> args(argv + 2, argv + argc);
  if (command == "--help" || command == "-h" || command == "help") {
    std::cout << usage();
    return 0;
  }
  if (command == "--version") {
    std::cout << "gloss 0.1.0\n";
    return 0;
  }
  std::string names;
  for (const auto& c : commands()) {
    if (command == c.name) return c.run(args);
    names += (names.empty() ? "" : ", ") + std::string(c.name);
  }
  std::cerr << "gloss: unknown command '" << command << "'; choose one of: " << names << " (see gloss --help)\n";
  return 2;
}

// Exit status after an error, printed as "gloss: <message>" in one write: under mpirun every
// rank prints its error to the same stream, and lines written in pieces interleave. The whole
// job ends with that status now (no rank waits for this one in a collective).
int failed(int status, const std::string& message) {
  std::cout.flush();
  const std::string line = "gloss: " + message + "\n";
  std::cerr.write(line.data(), static_cast<std::streamsize>(line.size()));
  std::cerr.flush();
  gloss::dist::abort_job(status);
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const int rc = run(argc, argv);
    std::cout.flush();
    if (!std::cout) return failed(1, "cannot write to standard output");
    gloss::dist::finish();
    return rc;
  } catch (const gloss::Interrupted& e) {  // every rank stopped at the same update
    std::cout.flush();
    gloss::dist::finish();
    return 128 + e.signal();
  } catch (const gloss::UserError& e) {
    return failed(2, e.what());
  } catch (const std::filesystem::filesystem_error& e) {
    // A path the user gave cannot be made or reached (a folder under a regular file, a full or
    // read-only disk, a symbolic link loop): their problem to fix, named in one line.
    return failed(2, (e.path1().empty() ? std::string("a file") : e.path1().string()) + ": " + e.code().message());
  } catch (const std::exception& e) {
    return failed(1, std::string("internal error: ") + e.what());
  }
}
