#include "gloss/cli/options.h"

#include "gloss/tensor/compute.h"
#include "gloss/util/atomic_file.h"
#include "gloss/util/error.h"

namespace po = boost::program_options;

namespace gloss::cli {

void parse_options(const std::vector<std::string>& args, const po::options_description& desc,
                   const std::string& command, const po::positional_options_description& positional) {
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(desc).positional(positional).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    throw ConfigError(std::string(e.what()) + " (see " + command + " --help)");
  }
}

bool wants_help(const std::vector<std::string>& args) {
  for (const auto& a : args)
    if (a == "--help" || a == "-h") return true;
  return false;
}

std::unique_ptr<decode::Translator> open_translator(const std::vector<std::string>& models,
                                                    const decode::TranslateOptions& o, int threads) {
  compute::check_threads(threads, "--threads");
  decode::validate(o);
  compute::set_threads(threads);
  for (const auto& m : models) require_file(m);
  auto translator = std::make_unique<decode::Translator>(models);
  translator->use_shortlist(o.shortlist);
  return translator;
}

}  // namespace gloss::cli
