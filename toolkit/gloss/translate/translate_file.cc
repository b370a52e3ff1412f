#include "gloss/translate/translate_file.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <ostream>

#include <unistd.h>
#include <zlib.h>

#include "gloss/util/atomic_file.h"
#include "gloss/util/error.h"
#include "gloss/util/format.h"
#include "gloss/util/gz.h"
#include "gloss/util/line_reader.h"
#include "gloss/util/unicode.h"

namespace gloss::translate {
namespace {

// Invalid UTF-8 bytes become U+FFFD, so the line is still translated.
std::string repair_utf8(const std::string& line) {
  std::string out;
  std::string_view rest(line);
  for (;;) {
    const auto bad = unicode::find_invalid_utf8(rest);
    if (bad == std::string_view::npos) {
      out.append(rest);
      return out;
    }
    out.append(rest.substr(0, bad));
    out += "\xEF\xBF\xBD";
    rest.remove_prefix(bad + 1);
  }
}

// A file's lines (a last line without a line break counts), in one quick pass; 0 if unreadable.
std::size_t count_lines(const std::string& path) {
  std::size_t total = 0;
  gzFile count = gzopen(path.c_str(), "rb");
  if (!count) return 0;
  std::unique_ptr<gzFile_s, int (*)(gzFile)> closer(count, gzclose);
  char buf[1 << 16];
  int got;
  char last = '\n';
  while ((got = read_gz(count, buf, sizeof buf, path, total + 1)) > 0) {
    total += static_cast<std::size_t>(std::count(buf, buf + got, '\n'));
    last = buf[got - 1];
  }
  return total + (last != '\n' ? 1 : 0);
}

// The lines [first, last] (from 1) of a shard of a file of `lines` lines; first > last: none.
std::pair<std::size_t, std::size_t> shard_lines(const Shard& s, std::size_t lines) {
  return {(s.index - 1) * lines / s.count + 1, s.index * lines / s.count};
}

// Lines done of the total, sentences/s and ETA on `log`.
class Progress {
 public:
  Progress(bool on, std::size_t total) : on_(on), total_(total), start_(std::chrono::steady_clock::now()) {}
  void update(std::size_t done, std::ostream& log) const {
    if (!on_) return;
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const double rate = static_cast<double>(done) / s;
    log << "translate: " << done;
    if (total_ >= done) {
      const auto eta = static_cast<long>(static_cast<double>(total_ - done) / std::max(rate, 1e-9));
      log << "/" << total_ << " lines, " << fixed(rate, 1) << " sentences/s, ETA " << eta / 60 << "m"
          << (eta % 60 < 10 ? "0" : "") << eta % 60 << "s" << std::endl;
    } else {
      log << " lines, " << fixed(rate, 4) << " sentences/s" << std::endl;
    }
  }

 private:
  bool on_;
  std::size_t total_;
  std::chrono::steady_clock::time_point start_;
};

// Where the lines go: the output (a file through a temporary, or `out`) and the n-best file.
struct Sinks {
  std::unique_ptr<AtomicFile> file, nbest;
  std::ostream* main = nullptr;
  Sinks(const std::string& output, const OutputOptions& o, std::ostream& out) {
    if (output != "-") file = std::make_unique<AtomicFile>(output, /*gzip_by_name=*/true);
    main = file ? &file->stream() : &out;
    if (!o.nbest_output.empty()) nbest = std::make_unique<AtomicFile>(o.nbest_output, /*gzip_by_name=*/true);
  }
  void commit() {
    if (file) file->commit();
    if (nbest) nbest->commit();
  }
};

// A line as translation takes it: without a trailing '\r' (CRLF files), without the UTF-8
// byte-order mark of line 1, invalid UTF-8 replaced by U+FFFD (with a warning on `log`).
std::string clean_line(std::string line, std::size_t line_no, const std::string& input, std::ostream& log) {
  if (!line.empty() && line.back() == '\r') line.pop_back();
  if (line_no == 1 && line.compare(0, 3, "\xEF\xBB\xBF") == 0) line.erase(0, 3);
  if (unicode::find_invalid_utf8(line) != std::string_view::npos) {
    log << "translate: warning: " << input << ":" << line_no << ": invalid UTF-8, replaced by U+FFFD" << std::endl;
    line = repair_utf8(line);
  }
  return line;
}

// Calls take(line, number) for the lines of `in` (named `input` in errors), numbered from 1,
// without their '\n' (a last line without one counts), reading until line `last` has been
// taken or the input ends; returns the number of lines taken. Calls idle() whenever the next
// read would wait for input (a pipe's writer waiting for the translations so far). A line over
// LineReader::kMaxLineBytes (/dev/zero, a binary file) is an InputError, not an unbounded buffer.
template <class Take, class Idle>
std::size_t for_each_line(InputBytes& in, const std::string& input, std::size_t last, Take&& take, Idle&& idle) {
  std::size_t line_no = 0;
  std::string pending;
  char chunk[1 << 16];
  while (line_no < last) {
    if (!in.ready()) idle();
    const int got = in.read(chunk, sizeof chunk, line_no + 1);
    if (got == 0) break;
    const std::size_t searched = pending.size();  // holds no line break: search only the new bytes
    pending.append(chunk, static_cast<std::size_t>(got));
    std::size_t startpos = 0, nl, from = searched;
    while ((nl = pending.find('\n', from)) != std::string::npos) {
      take(pending.substr(startpos, nl - startpos), ++line_no);
      startpos = from = nl + 1;
    }
    pending.erase(0, startpos);
    if (pending.size() > LineReader::kMaxLineBytes)
      throw InputError(
          input, line_no + 1,
          "a line longer than " + std::to_string(LineReader::kMaxLineBytes >> 20) + " MiB; is this a text file?");
  }
  if (!pending.empty()) take(pending, ++line_no);
  return line_no;
}

}  // namespace

Shard parse_shard(const std::string& text) {
  Shard s;
  const auto slash = text.find('/');
  try {
    if (slash == std::string::npos) throw std::invalid_argument("no slash");
    std::size_t used = 0;
    s.index = std::stoul(text.substr(0, slash), &used);
    if (used != slash) throw std::invalid_argument("trailing");
    const std::string n = text.substr(slash + 1);
    s.count = std::stoul(n, &used);
    if (used != n.size() || n.empty() || n[0] == '-' || text[0] == '-') throw std::invalid_argument("trailing");
  } catch (const std::logic_error&) {
    throw ConfigError("--shard " + text + ": give K/N, e.g. 2/4 for the second of 4 line ranges");
  }
  if (s.index < 1 || s.index > s.count || s.count > 100000)
    throw ConfigError("--shard " + text + ": K/N needs 1 <= K <= N <= 100000");
  return s;
}

std::string shard_path(const std::string& output, const Shard& s) {
  return output + ".shard-" + std::to_string(s.index) + "-of-" + std::to_string(s.count);
}

void merge_shards(const std::string& output, std::size_t count) {
  AtomicFile merged(output, /*gzip_by_name=*/true);
  std::vector<char> buf(1 << 16);
  for (std::size_t k = 1; k <= count; ++k) {
    const std::string part = shard_path(output, {k, count});
    std::ifstream in(part, std::ios::binary);
    if (!in) throw InputError(part, 0, "the translation of this shard is missing; translate again");
    while (in.read(buf.data(), static_cast<std::streamsize>(buf.size())) || in.gcount() > 0)
      merged.stream().write(buf.data(), in.gcount());
  }
  merged.commit();
  for (std::size_t k = 1; k <= count; ++k) std::filesystem::remove(shard_path(output, {k, count}));
}

namespace {

// "--attention-line N: the input has only M lines", the error of a heat map's line past the end.
ConfigError attention_line_past_end(std::size_t attention_line, std::size_t lines) {
  return ConfigError("--attention-line " + std::to_string(attention_line) + ": the input has only " +
                     std::to_string(lines) + " lines");
}

// The first and last line numbers to translate (1-based; the whole input: 1 .. SIZE_MAX). A
// shard counts the input's lines first; --attention-line must fall inside it. A whole file is
// counted only for --attention-line, so that a line past its end is an error before any work
// (a stream is checked at its end).
std::pair<std::size_t, std::size_t> lines_to_translate(const std::string& input, const OutputOptions& outputs,
                                                       const Shard& shard) {
  if (shard.whole()) {
    if (!outputs.attention_path.empty() && input != "-" && std::filesystem::is_regular_file(input)) {
      const std::size_t lines = count_lines(input);
      if (outputs.attention_line > lines) throw attention_line_past_end(outputs.attention_line, lines);
    }
    return {1, SIZE_MAX};
  }
  require_rereadable(input, "--shard counts its lines before translating");
  const auto [first, last] = shard_lines(shard, count_lines(input));
  if (!outputs.attention_path.empty() && (outputs.attention_line < first || outputs.attention_line > last))
    throw ConfigError("--attention-line " + std::to_string(outputs.attention_line) + " is not in --shard " +
                      std::to_string(shard.index) + "/" + std::to_string(shard.count) + " (lines " +
                      std::to_string(first) + ".." + std::to_string(last) + ")");
  return {first, last};
}

// The translations of lines first, first + 1, ...: best lines to the main output, n-best lists
// to theirs (or the main output), the attention map of --attention-line; then flushed.
void write_translations(const std::vector<decode::Translation>& translations, std::size_t first,
                        decode::Translator& translator, const OutputOptions& outputs, int n_best, Sinks& sinks) {
  for (std::size_t i = 0; i < translations.size(); ++i) {
    const auto& t = translations[i];
    if (!outputs.attention_path.empty() && first + i == outputs.attention_line)
      write_attention_map(t, translator, outputs);
    const bool nbest_here = n_best > 1 && !sinks.nbest;
    if (!nbest_here) *sinks.main << best_line(t, translator, outputs) << '\n';
    if (n_best > 1)
      for (const auto& l : nbest_lines(t, first + i - 1, translator, outputs))
        *(sinks.nbest ? &sinks.nbest->stream() : sinks.main) << l << '\n';
  }
  sinks.main->flush();
}

}  // namespace

void translate_file(decode::Translator& translator, const std::string& input, const std::string& output,
                    const decode::TranslateOptions& options, const OutputOptions& outputs, std::ostream& out,
                    std::ostream& log, const Shard& shard) {
  decode::validate(options);
  validate(outputs);
  require_file(input);
  // Plain variables, not a structured binding: clang 14 (Debian 12) cannot capture bindings in lambdas.
  const std::pair<std::size_t, std::size_t> lines = lines_to_translate(input, outputs, shard);
  const std::size_t first_line = lines.first, last_line = lines.second;
  const decode::TranslateOptions o = with_outputs(options, outputs);
  InputBytes in(input);
  Sinks sinks(output, outputs, out);
  // Automatic on a terminal, unless a person types the input there (a progress line after each).
  const bool progress_on = outputs.progress || (::isatty(2) && !(input == "-" && ::isatty(0)));
  // The line count for the ETA is a second pass: regular files only (a pipe would be consumed).
  const bool countable = progress_on && input != "-" && std::filesystem::is_regular_file(input);
  const Progress progress(progress_on, !countable      ? 0
                                       : shard.whole() ? count_lines(input)
                                                       : last_line + 1 - std::min(first_line, last_line + 1));
  std::vector<std::string> window;
  std::size_t done = 0, window_first = 0;
  auto flush = [&]() {
    if (window.empty()) return;
    const auto translations = translator.translate(window, o, input == "-" ? "stdin" : input, window_first, log);
    write_translations(translations, window_first, translator, outputs, o.search.n_best, sinks);
    done += window.size();
    window.clear();
    progress.update(done, log);
  };
  auto take_line = [&](std::string line, std::size_t line_no) {
    if (line_no < first_line || line_no > last_line) return;
    if (window.empty()) window_first = line_no;
    window.push_back(clean_line(std::move(line), line_no, input, log));
    if (static_cast<int>(window.size()) >= o.window) flush();
  };
  const std::size_t lines_read = for_each_line(in, input, last_line, take_line, flush);
  flush();
  if (!outputs.attention_path.empty() && outputs.attention_line > lines_read)
    throw attention_line_past_end(outputs.attention_line, lines_read);
  sinks.commit();
}

}  // namespace gloss::translate
