// `gloss serve`: translation over HTTP (serve/server.h).
#include <ostream>

#include "gloss/cli/commands.h"
#include "gloss/cli/options.h"
#include "gloss/decode/translator.h"
#include "gloss/serve/server.h"

namespace po = boost::program_options;

namespace gloss::cli {

namespace {

// What gloss serve's command line sets: the search defaults, the server's options, the
// models, the threads and the queue's bounds (copied into s.queue after parsing).
struct ServeCli {
  decode::TranslateOptions o;  // the translator's defaults; each request sets its search
  serve::ServeOptions s;
  std::vector<std::string> models;
  int threads = 2;
  std::size_t max_queued = s.queue.max_queued_sentences, max_batch = s.queue.max_batch_sentences;
};

po::options_description serve_options(ServeCli& c) {
  po::options_description desc(
      "Usage: gloss serve -m MODEL [MODEL ...] [--host 127.0.0.1] [--port 8080] [--threads N] [options]\n"
      "Translates over HTTP until SIGTERM or Ctrl-C (which finish the requests in flight):\n"
      "  POST /translate  {\"text\": [\"...\", ...], \"beam_size\": 5, \"n_best\": 1, \"alignment\": false}\n"
      "  GET  /health     GET /  a page to type sentences and see translations, n-best lists, attention\n"
      "Requests that arrive within --window-ms are translated together; answers do not depend on it");
  desc.add_options()("help,h", "print this help")(
      "model,m", po::value(&c.models)->required()->multitoken(),
      "model file(s) or training checkpoints; several translate as an ensemble")(
      "host", po::value(&c.s.host)->default_value(c.s.host), "address to listen on (0.0.0.0: every interface)")(
      "port", po::value(&c.s.port)->default_value(c.s.port), "port (0: any free one, printed)")(
      "threads", po::value(&c.threads)->default_value(c.threads), "translation threads")(
      "connections", po::value(&c.s.connections)->default_value(c.s.connections), "threads serving HTTP connections")(
      "beam-size,b", po::value(&c.s.api.default_beam)->default_value(c.s.api.default_beam),
      "beam size of requests that do not say")(
      "max-beam", po::value(&c.s.api.max_beam)->default_value(c.s.api.max_beam), "largest beam_size a request may ask")(
      "max-sentences", po::value(&c.s.api.max_sentences)->default_value(c.s.api.max_sentences),
      "sentences per request")("max-sentence-bytes",
                               po::value(&c.s.api.max_sentence_bytes)->default_value(c.s.api.max_sentence_bytes),
                               "bytes per sentence")(
      "max-body-bytes", po::value(&c.s.max_body_bytes)->default_value(c.s.max_body_bytes), "bytes per request body")(
      "max-queued", po::value(&c.max_queued)->default_value(c.max_queued),
      "sentences waiting at most; beyond, requests get 503")(
      "max-batch", po::value(&c.max_batch)->default_value(c.max_batch), "sentences translated together at most")(
      "window-ms", po::value(&c.s.queue.window_ms)->default_value(c.s.queue.window_ms),
      "how long a request waits for others to share its batch")("timeout",
                                                                po::value(&c.s.timeout_s)->default_value(c.s.timeout_s),
                                                                "seconds a connection may take per read or write")(
      "stop-after", po::value(&c.o.search.stop_after)->default_value(c.o.search.stop_after),
      "as gloss translate --stop-after")(
      "length-penalty", po::value(&c.o.search.length_penalty)->default_value(c.o.search.length_penalty),
      "as gloss translate --length-penalty")("precision", po::value(&c.o.precision)->default_value(c.o.precision),
                                             "f32, bf16 or auto, as gloss translate")(
      "shortlist", po::value(&c.o.shortlist)->default_value(c.o.shortlist), "a lexical shortlist, as gloss translate");
  return desc;
}

}  // namespace

int serve_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& log) {
  ServeCli c;
  const po::options_description desc = serve_options(c);
  if (wants_help(args)) {
    out << desc;
    return 0;
  }
  serve::block_stop_signals();  // before any thread (OpenMP's, oneDNN's) starts
  parse_options(args, desc, "gloss serve");
  c.s.queue.max_queued_sentences = c.max_queued;
  c.s.queue.max_batch_sentences = c.max_batch;
  serve::validate(c.s);
  const auto translator = open_translator(c.models, c.o, c.threads);
  serve::serve(*translator, c.o, c.s, log);
  return 0;
}

}  // namespace gloss::cli
