#pragma once
// Command-line parsing shared by the subcommands (Boost.Program_options).
#include <boost/program_options.hpp>
#include <string>
#include <vector>

namespace gloss::cli {

// Parses `args` into the variables bound in `desc`; errors (ConfigError) name the command's --help.
void parse_options(const std::vector<std::string>& args, const boost::program_options::options_description& desc,
                   const std::string& command,
                   const boost::program_options::positional_options_description& positional = {});

// Whether -h or --help is among the arguments.
bool wants_help(const std::vector<std::string>& args);

}  // namespace gloss::cli
