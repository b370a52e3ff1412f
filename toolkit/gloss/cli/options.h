#pragma once
// Command-line parsing shared by the subcommands (Boost.Program_options).
#include <boost/program_options.hpp>
#include <memory>
#include <string>
#include <vector>

#include "gloss/decode/translator.h"

namespace gloss::cli {

// Parses `args` into the variables bound in `desc`; errors (ConfigError) name the command's --help.
void parse_options(const std::vector<std::string>& args, const boost::program_options::options_description& desc,
                   const std::string& command,
                   const boost::program_options::positional_options_description& positional = {});

// Whether -h or --help is among the arguments.
bool wants_help(const std::vector<std::string>& args);

// What gloss translate, serve and bench translate share once their options are parsed: checks
// `threads` and the search options `o` (ConfigError), sets the thread count, loads the models
// (each must exist; several translate as an ensemble) and chooses o.shortlist.
std::unique_ptr<decode::Translator> open_translator(const std::vector<std::string>& models,
                                                    const decode::TranslateOptions& o, int threads);

}  // namespace gloss::cli
