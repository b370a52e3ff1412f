#pragma once
// Subcommands of `gloss` other than eval. Each takes the arguments after its name, writes
// results to `out` and progress to `log`, and returns the exit status. Errors are thrown
// (UserError and subclasses) for main() to print on one line.
#include <iosfwd>
#include <string>
#include <vector>

namespace gloss::cli {

int recipe_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& log);
int spm_command(const std::vector<std::string>& args, std::istream& in, std::ostream& out, std::ostream& log);
int train_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& log);
int shortlist_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& log);
int translate_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& log);
int average_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& log);
int run_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& log);
int plot_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& log);
int data_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& log);
int summary_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& log);
int serve_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& log);

}  // namespace gloss::cli
