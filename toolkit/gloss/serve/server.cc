#include "gloss/serve/server.h"

#include <httplib.h>
#include <signal.h>
#include <sys/socket.h>

#include <atomic>
#include <ctime>
#include <ostream>
#include <thread>

#include "gloss/serve/page.h"
#include "gloss/util/error.h"
#include "gloss/util/format.h"

namespace gloss::serve {

void validate(const ServeOptions& o) {
  if (o.port < 0 || o.port > 65535) throw ConfigError("--port must be in 0..65535");
  if (o.connections < 1 || o.connections > 1024) throw ConfigError("--connections must be in 1..1024");
  if (o.max_body_bytes < 64 || o.max_body_bytes > (std::size_t{1} << 30))
    throw ConfigError("--max-body-bytes must be in 64..2^30");
  if (o.timeout_s < 1 || o.timeout_s > 3600) throw ConfigError("--timeout must be in 1..3600 seconds");
  if (o.api.max_sentences < 1 || o.api.max_sentences > 100000)
    throw ConfigError("--max-sentences must be in 1..100000");
  if (o.api.max_sentence_bytes < 1 || o.api.max_sentence_bytes > (std::size_t{1} << 20))
    throw ConfigError("--max-sentence-bytes must be in 1..2^20");
  if (o.api.max_beam < 1 || o.api.max_beam > 64) throw ConfigError("--max-beam must be in 1..64");
  if (o.api.default_beam < 1 || o.api.default_beam > o.api.max_beam)
    throw ConfigError("--beam-size must be in 1..--max-beam");
  if (o.queue.window_ms < 0 || o.queue.window_ms > 10000) throw ConfigError("--window-ms must be in 0..10000");
  if (o.queue.max_queued_sentences < o.api.max_sentences || o.queue.max_queued_sentences > 10000000)
    throw ConfigError("--max-queued must be in --max-sentences..10000000");
  if (o.queue.max_batch_sentences < 1 || o.queue.max_batch_sentences > 100000)
    throw ConfigError("--max-batch must be in 1..100000");
}

namespace {

struct Counters {
  std::atomic<long> requests{0}, errors{0}, sentences{0};
};

void json_answer(httplib::Response& res, int status, const std::string& body) {
  res.status = status;
  res.set_content(body, "application/json");
}

void handle_translate(const httplib::Request& req, httplib::Response& res, TranslationQueue& queue,
                      const decode::Translator& translator, const decode::TranslateOptions& defaults,
                      const ServeOptions& o, Counters& counters) {
  try {
    const TranslateRequest r = parse_request(req.body, o.api);
    decode::SearchOptions search = defaults.search;
    search.beam_size = r.beam_size;
    search.n_best = r.n_best;
    search.attention = r.alignment;
    auto future = queue.submit(r.lines, search);
    if (!future) {
      res.set_header("Retry-After", "1");
      throw ApiError(503, "the server is busy (" + std::to_string(o.queue.max_queued_sentences) +
                              " sentences queued); retry shortly");
    }
    const auto translations = future->get();
    counters.sentences += static_cast<long>(r.lines.size());
    json_answer(res, 200, answer_json(r, translations, translator));
  } catch (const ApiError& e) {
    ++counters.errors;
    json_answer(res, e.status(), error_json(e.what()));
  } catch (const UserError& e) {
    ++counters.errors;
    json_answer(res, 400, error_json(e.what()));
  } catch (const std::exception& e) {
    ++counters.errors;
    json_answer(res, 500, error_json(std::string("internal error: ") + e.what()));
  }
}

void add_routes(httplib::Server& svr, TranslationQueue& queue, const decode::Translator& translator,
                const decode::TranslateOptions& defaults, const ServeOptions& o, Counters& counters) {
  svr.Post("/translate", [&](const httplib::Request& req, httplib::Response& res) {
    ++counters.requests;
    handle_translate(req, res, queue, translator, defaults, o, counters);
  });
  svr.Get("/health", [&](const httplib::Request&, httplib::Response& res) {
    json_answer(res, 200,
                "{\"status\": \"ok\", \"queued_sentences\": " + std::to_string(queue.queued_sentences()) +
                    ", \"batches\": " + std::to_string(queue.batches()) +
                    ", \"requests\": " + std::to_string(counters.requests.load()) + "}");
  });
  svr.Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(page_html(), "text/html; charset=utf-8");
  });
  // A known path with the other method: 405 naming the right one (httplib alone answers 404).
  auto wrong_method = [&counters](const char* allow, const char* what) {
    return [&counters, allow, what](const httplib::Request&, httplib::Response& res) {
      ++counters.errors;
      res.set_header("Allow", allow);
      json_answer(res, 405, error_json(what));
    };
  };
  svr.Get("/translate", wrong_method("POST", "use POST /translate with a JSON body such as {\"text\": [\"...\"]}"));
  svr.Post("/health", wrong_method("GET", "use GET /health"));
  svr.Post("/", wrong_method("GET", "use GET / (the page); translations: POST /translate"));
  // Whatever httplib answers by itself (404, 405, 413, 400 for broken HTTP) gets a JSON body too.
  svr.set_error_handler([&](const httplib::Request&, httplib::Response& res) {
    if (!res.body.empty()) return;
    ++counters.errors;
    const char* what = res.status == 404   ? "no such path (POST /translate, GET /health, GET /)"
                       : res.status == 413 ? "the body is larger than the server's limit (--max-body-bytes)"
                       : res.status == 405 ? "method not allowed"
                                           : "bad request";
    res.set_content(error_json(what), "application/json");
  });
}

// Waits for SIGTERM or SIGINT (blocked in every thread) and stops the server; returns when
// the server stopped for another reason and `done` is set.
void wait_for_signal(httplib::Server& svr, const std::atomic<bool>& done, std::ostream& log) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  const timespec tick{0, 200 * 1000 * 1000};
  while (!done) {
    const int sig = sigtimedwait(&set, nullptr, &tick);
    if (sig == SIGTERM || sig == SIGINT) {
      log << "serve: " << (sig == SIGTERM ? "SIGTERM" : "SIGINT") << ": finishing the requests in flight" << std::endl;
      svr.stop();
      return;
    }
  }
}

}  // namespace

void block_stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

void serve(decode::Translator& translator, const decode::TranslateOptions& defaults, const ServeOptions& o,
           std::ostream& log) {
  validate(o);
  block_stop_signals();      // the caller did already, unless it has no other threads
  signal(SIGPIPE, SIG_IGN);  // a vanished client is a failed write, not a dead server

  TranslationQueue queue(translator, defaults, o.queue);
  Counters counters;
  httplib::Server svr;
  const int connections = o.connections;
  svr.new_task_queue = [connections] { return new httplib::ThreadPool(static_cast<std::size_t>(connections)); };
  svr.set_payload_max_length(o.max_body_bytes);
  svr.set_read_timeout(o.timeout_s, 0);
  svr.set_write_timeout(o.timeout_s, 0);
  svr.set_keep_alive_timeout(o.timeout_s);
  add_routes(svr, queue, translator, defaults, o, counters);
  // cpp-httplib's default also sets SO_REUSEPORT, with which a second server binds the port
  // already in use and the kernel splits the requests between the two: a port in use must be
  // an error. SO_REUSEADDR alone still lets a restarted server take its port back at once.
  svr.set_socket_options([](socket_t sock) {
    const int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });

  const int port = o.port == 0 ? svr.bind_to_any_port(o.host) : (svr.bind_to_port(o.host, o.port) ? o.port : -1);
  if (port < 0)
    throw UserError("gloss serve: cannot listen on " + o.host + ":" + std::to_string(o.port) +
                    " (in use, or not an address of this machine); choose another --port or --host");
  log << "serve: listening on http://" << o.host << ":" << port << " (POST /translate, GET /health, GET /)"
      << std::endl;
  std::atomic<bool> done{false};
  std::thread signals([&] { wait_for_signal(svr, done, log); });
  svr.listen_after_bind();  // returns after stop(), once the connection threads finished their requests
  done = true;
  signals.join();
  queue.stop();
  log << "serve: stopped after " << counted(counters.requests, "translation request") << " ("
      << counted(counters.sentences, "sentence") << "), " << counted(queue.batches(), "batch", "batches") << ", "
      << counted(counters.errors, "error answer") << std::endl;
}

}  // namespace gloss::serve
