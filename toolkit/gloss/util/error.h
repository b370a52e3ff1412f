#pragma once
// Errors a user can fix. Apps print what() on one line and exit with status 2;
// anything else escaping to main is an internal error (status 1).
#include <cstddef>
#include <stdexcept>
#include <string>

namespace gloss {

class UserError : public std::runtime_error {
 public:
  explicit UserError(const std::string& message) : std::runtime_error(message) {}
};

// A problem in an input file; what() reads "path:line: message" (line 0 = whole file).
class InputError : public UserError {
 public:
  InputError(const std::string& path, std::size_t line, const std::string& message)
      : UserError(format(path, line, message)), path_(path), line_(line) {}
  const std::string& path() const { return path_; }
  std::size_t line() const { return line_; }

 private:
  static std::string format(const std::string& path, std::size_t line, const std::string& message) {
    return line == 0 ? path + ": " + message : path + ":" + std::to_string(line) + ": " + message;
  }
  std::string path_;
  std::size_t line_;
};

// A bad option value or combination; the message names the option.
class ConfigError : public UserError {
 public:
  explicit ConfigError(const std::string& message) : UserError(message) {}
};

// The user stopped the command (SIGINT, SIGTERM) and it stopped cleanly, having said so on
// stderr: the process exits with 128 + the signal's number, printing nothing more.
class Interrupted : public std::runtime_error {
 public:
  explicit Interrupted(int signal) : std::runtime_error("interrupted"), signal_(signal) {}
  int signal() const { return signal_; }

 private:
  int signal_;
};

}  // namespace gloss
