#pragma once
// `gloss serve`: translation over HTTP (cpp-httplib), one process, one set of models.
//   POST /translate  the JSON of serve/api.h; requests are batched by serve/queue.h
//   GET  /health     {"status": "ok", "queued_sentences": n, "batches": n, "requests": n}
//   GET  /           a self-contained page (serve/page.h): translations, n-best lists and heat maps
// Limits: the body (413), the sentences of a request and their length (413), a full queue
// (503 with Retry-After), slow clients (each read and write times out); every error answer
// is {"error": "..."}. SIGTERM or SIGINT: no new connections, the requests in flight are
// answered, then serve() returns.
#include <cstddef>
#include <iosfwd>
#include <string>

#include "gloss/decode/translator.h"
#include "gloss/serve/api.h"
#include "gloss/serve/queue.h"

namespace gloss::serve {

struct ServeOptions {
  std::string host = "127.0.0.1";  // loopback unless told otherwise
  int port = 8080;                 // 0: any free port (the log line names it)
  int connections = 16;            // threads reading and answering HTTP connections
  std::size_t max_body_bytes = std::size_t{1} << 20;
  int timeout_s = 5;  // per read and per write of a connection
  ApiLimits api;
  QueueOptions queue;
};
// Throws ConfigError naming the `gloss serve` option of a bad value.
void validate(const ServeOptions& options);

// Blocks SIGTERM and SIGINT in the calling thread: call it first, before any other thread
// starts (threads inherit the mask; serve() then waits for the signals itself).
void block_stop_signals();

// Serves until SIGTERM or SIGINT (see block_stop_signals). Logs one line when
// listening ("serve: listening on http://HOST:PORT") and one when done. Throws UserError if
// the address cannot be bound.
void serve(decode::Translator& translator, const decode::TranslateOptions& defaults, const ServeOptions& options,
           std::ostream& log);

}  // namespace gloss::serve
