// `gloss serve`: translation over HTTP (serve/server.h).
#include <ostream>

#include "gloss/cli/commands.h"
#include "gloss/cli/options.h"
#include "gloss/decode/translator.h"
#include "gloss/serve/server.h"
#include "gloss/tensor/compute.h"
#include "gloss/util/atomic_file.h"

namespace po = boost::program_options;

namespace gloss::cli {

int serve_command(const std::vector<std::string>& args, std::ostream& out, std::ostream& log) {
  decode::TranslateOptions o;  // the translator's defaults; each request sets its search
  serve::ServeOptions s;
  std::vector<std::string> models;
  int threads = 2;
  std::size_t max_queued = s.queue.max_queued_sentences, max_batch = s.queue.max_batch_sentences;
  po::options_description desc(
      "Usage: gloss serve -m MODEL [MODEL ...] [--host 127.0.0.1] [--port 8080] [--threads N] [options]\n"
      "Translates over HTTP until SIGTERM or Ctrl-C (which finish the requests in flight):\n"
      "  POST /translate  {\"text\": [\"...\", ...], \"beam_size\": 5, \"n_best\": 1, \"alignment\": false}\n"
      "  GET  /health     GET /  a page to type sentences and see translations, n-best lists, attention\n"
      "Requests that arrive within --window-ms are translated together; answers do not depend on it");
  desc.add_options()("help,h", "print this help")("model,m", po::value(&models)->required()->multitoken(),
                                                  "model file(s); several translate as an ensemble")(
      "host", po::value(&s.host)->default_value(s.host), "address to listen on (0.0.0.0: every interface)")(
      "port", po::value(&s.port)->default_value(s.port), "port (0: any free one, printed)")(
      "threads", po::value(&threads)->default_value(threads), "translation threads")(
      "connections", po::value(&s.connections)->default_value(s.connections), "threads serving HTTP connections")(
      "beam-size,b", po::value(&s.api.default_beam)->default_value(s.api.default_beam),
      "beam size of requests that do not say")("max-beam", po::value(&s.api.max_beam)->default_value(s.api.max_beam),
                                               "largest beam_size a request may ask")(
      "max-sentences", po::value(&s.api.max_sentences)->default_value(s.api.max_sentences), "sentences per request")(
      "max-sentence-bytes", po::value(&s.api.max_sentence_bytes)->default_value(s.api.max_sentence_bytes),
      "bytes per sentence")("max-body-bytes", po::value(&s.max_body_bytes)->default_value(s.max_body_bytes),
                            "bytes per request body")("max-queued", po::value(&max_queued)->default_value(max_queued),
                                                      "sentences waiting at most; beyond, requests get 503")(
      "max-batch", po::value(&max_batch)->default_value(max_batch), "sentences translated together at most")(
      "window-ms", po::value(&s.queue.window_ms)->default_value(s.queue.window_ms),
      "how long a request waits for others to share its batch")("timeout",
                                                                po::value(&s.timeout_s)->default_value(s.timeout_s),
                                                                "seconds a connection may take per read or write")(
      "stop-after", po::value(&o.search.stop_after)->default_value(o.search.stop_after),
      "as gloss translate --stop-after")("length-penalty",
                                         po::value(&o.search.length_penalty)->default_value(o.search.length_penalty),
                                         "as gloss translate --length-penalty")(
      "precision", po::value(&o.precision)->default_value(o.precision), "f32, bf16 or auto, as gloss translate")(
      "shortlist", po::value(&o.shortlist)->default_value(o.shortlist), "a lexical shortlist, as gloss translate");
  if (wants_help(args)) {
    out << desc;
    return 0;
  }
  serve::block_stop_signals();  // before any thread (OpenMP's, oneDNN's) starts
  parse_options(args, desc, "gloss serve");
  s.queue.max_queued_sentences = max_queued;
  s.queue.max_batch_sentences = max_batch;
  compute::check_threads(threads, "--threads");
  decode::validate(o);
  serve::validate(s);
  compute::set_threads(threads);
  for (const auto& m : models) require_file(m);
  decode::Translator translator(models);
  translator.use_shortlist(o.shortlist);
  serve::serve(translator, o, s, log);
  return 0;
}

}  // namespace gloss::cli
