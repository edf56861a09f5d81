// server: a local completion server for editors, on cpp-httplib, with llama.cpp server's
// endpoints and field names (/completion, /infill, /tokenize, /detokenize, /health) and
// OpenAI's (/v1/completions, /v1/models). One model, one generation at a time, through a
// GenerationSession: a prompt that starts like the previous one (an editor resending the
// file on every keystroke) evaluates only what follows the cached prefix.
#include <httplib.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "cli.hpp"
#include "model_source.hpp"
#include "server_client.hpp"
#include "server_model_thread.hpp"
#include "server_queue.hpp"
#include "server_request.hpp"
#include "json_writer.hpp"

namespace {

using server::Fields;
using server::HttpError;
using Writer = smallcoder::bench::JsonWriter;
using Clock = std::chrono::steady_clock;

struct Flags : tools::ModelFlags {
  std::string kv_cache = "f32", host = "127.0.0.1", api_key;
  long long port = 8012, threads = 0, context = 0, seed = 0, queue = 8, max_body = 1 << 20;
};

// Which response shape a generation request wants.
enum class Api { completion, infill, openai };

// One generation request, checked and tokenized before it waits for the model.
struct Job {
  Api api = Api::completion;
  std::vector<std::int32_t> ids;
  smallcoder::GenerateOptions options;
  bool cache_prompt = true, stream = false;
  double t_max_predict_ms = 0;  // 0: no limit
};

// Fill-in-the-middle tokens, when the vocabulary has them (CodeLlama's or StarCoder's).
struct FimTokens {
  std::int32_t prefix = -1, suffix = -1, middle = -1;
  bool found() const { return prefix >= 0 && suffix >= 0 && middle >= 0; }
};

FimTokens find_fim_tokens(const smallcoder::Tokenizer& tok) {
  const char* const names[][3] = {{"<PRE>", "<SUF>", "<MID>"},
                                  {"\xE2\x96\x81<PRE>", "\xE2\x96\x81<SUF>", "\xE2\x96\x81<MID>"},
                                  {"<fim_prefix>", "<fim_suffix>", "<fim_middle>"},
                                  {"<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"}};
  for (const auto& n : names) {
    const FimTokens f{tok.piece_to_id(n[0]), tok.piece_to_id(n[1]), tok.piece_to_id(n[2])};
    if (f.found()) return f;
  }
  return {};
}

// The first non-blank line of the suffix, without its indentation: the completion stops
// where it would write what already follows the cursor.
std::string suffix_stop(const std::string& suffix) {
  std::size_t start = 0;
  while (start < suffix.size()) {
    std::size_t end = suffix.find('\n', start);
    if (end == std::string::npos) end = suffix.size();
    std::size_t first = suffix.find_first_not_of(" \t\r", start);
    if (first != std::string::npos && first < end) return suffix.substr(first, end - first);
    start = end + 1;
  }
  return "";
}

class Server {
 public:
  Server(smallcoder::Model& model, const Flags& flags, std::string model_name)
      : model_(model),
        session_(model.session()),
        flags_(flags),
        name_(std::move(model_name)),
        fim_(find_fim_tokens(model.tokenizer())),
        queue_(static_cast<std::size_t>(flags.queue)) {}

  int run() {
    // Worker threads: one per request that may wait, the one running, and a few for
    // /health, /tokenize and the 503s while the queue is full.
    const std::size_t threads = static_cast<std::size_t>(flags_.queue) + 4;
    http_.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
    http_.set_payload_max_length(static_cast<std::size_t>(flags_.max_body));
    // Without it a response written in two parts (headers, then body) waits for the
    // client's delayed ACK of the first (Nagle's algorithm): 40 ms added to every answer.
    http_.set_tcp_nodelay(true);
    http_.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      if (flags_.api_key.empty() || req.path == "/health") return httplib::Server::HandlerResponse::Unhandled;
      if (req.get_header_value("Authorization") == "Bearer " + flags_.api_key) {
        return httplib::Server::HandlerResponse::Unhandled;
      }
      send_error(res, 401, "invalid or missing API key (send 'Authorization: Bearer KEY')");
      return httplib::Server::HandlerResponse::Handled;
    });
    http_.set_error_handler([](const httplib::Request&, httplib::Response& res) {
      if (!res.body.empty()) return;  // a handler's own error
      const char* what = res.status == 404   ? "no such endpoint"
                         : res.status == 413 ? "request body over the size limit (--max-body)"
                                             : "request refused";
      send_error(res, res.status, what);
    });
    http_.Get("/health", [](const httplib::Request&, httplib::Response& res) {
      res.set_content("{\"status\":\"ok\"}", "application/json");
    });
    http_.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
      Writer w(false);
      w.begin_object().key("object").text("list").key("data").begin_array();
      w.begin_object().key("id").text(name_).key("object").text("model").key("owned_by").text("smallcoder");
      w.key("meta").begin_object().key("n_ctx_train").integer(model_.config().max_context);
      w.key("n_ctx").integer(model_.transformer().context()).key("n_vocab").integer(model_.config().vocab_size);
      w.end_object().end_object().end_array().end_object();
      res.set_content(w.str(), "application/json");
    });
    post("/tokenize", [this](const Fields& f, httplib::Response& res) { tokenize(f, res); });
    post("/detokenize", [this](const Fields& f, httplib::Response& res) { detokenize(f, res); });
    post("/completion", [this](const Fields& f, httplib::Response& res, const httplib::Request& req) {
      generate(completion_job(f, Api::completion), req, res);
    });
    post("/completions", [this](const Fields& f, httplib::Response& res, const httplib::Request& req) {
      generate(completion_job(f, Api::completion), req, res);
    });
    post("/infill", [this](const Fields& f, httplib::Response& res, const httplib::Request& req) {
      generate(infill_job(f), req, res);
    });
    post("/v1/completions", [this](const Fields& f, httplib::Response& res, const httplib::Request& req) {
      generate(completion_job(f, Api::openai), req, res);
    });

    int port = static_cast<int>(flags_.port);
    if (port == 0) {
      port = http_.bind_to_any_port(flags_.host);
      if (port < 0) throw smallcoder::Error("cannot listen on " + flags_.host);
    } else if (!http_.bind_to_port(flags_.host, port)) {
      throw smallcoder::Error("cannot listen on " + flags_.host + ":" + std::to_string(port));
    }
    std::fprintf(stderr, "server: listening on http://%s:%d (model %s, context %d)\n", flags_.host.c_str(), port,
                 name_.c_str(), model_.transformer().context());
    std::fflush(stderr);
    bool listened = false;
    std::thread http_thread([&] {
      listened = http_.listen_after_bind();
      model_thread_.stop();
    });
    model_thread_.serve();
    http_thread.join();
    return listened ? 0 : 1;
  }

 private:
  static void send_error(httplib::Response& res, int status, const std::string& message) {
    Writer w(false);
    const char* type = status == 404   ? "not_found_error"
                       : status == 401 ? "authentication_error"
                       : status == 503 ? "unavailable_error"
                       : status >= 500 ? "server_error"
                                       : "invalid_request_error";
    w.begin_object().key("error").begin_object().key("code").integer(status).key("message").text(message);
    w.key("type").text(type).end_object().end_object();
    res.status = status;
    res.set_content(w.str(), "application/json");
  }

  // A POST endpoint taking a JSON body; every error becomes a JSON error response.
  template <class Handler>
  void post(const char* path, Handler handler) {
    http_.Post(path, [handler](const httplib::Request& req, httplib::Response& res) {
      try {
        const Fields fields(req.body);
        if constexpr (std::is_invocable_v<Handler, const Fields&, httplib::Response&, const httplib::Request&>) {
          handler(fields, res, req);
        } else {
          handler(fields, res);
        }
      } catch (const HttpError& e) {
        send_error(res, e.status, cli::one_line(e.what()));
      } catch (const std::exception& e) {
        send_error(res, 500, cli::one_line(e.what()));
      }
    });
  }

  std::vector<std::int32_t> encode(const std::string& text, const char* field) const {
    try {
      return model_.tokenizer().encode(text);
    } catch (const smallcoder::Error& e) {
      throw HttpError(400, Fields::where(field) + ": " + e.what());
    }
  }

  // `prompt`: a string, or an array of token ids (BOS is added unless it starts with it).
  std::vector<std::int32_t> prompt_ids(const Fields& f) const {
    std::vector<std::int32_t> ids{model_.config().bos_id};
    const smallcoder::JsonValue* prompt = f.get("prompt");
    if (prompt == nullptr) throw HttpError(400, "missing field 'prompt'");
    if (prompt->is_array()) {
      Fields::typed([&] {
        for (const smallcoder::JsonValue& v : prompt->as_array("field 'prompt'")) {
          ids.push_back(checked_id(v.as_int("field 'prompt' item"), "prompt"));
        }
        return 0;
      });
      if (ids.size() > 1 && ids[1] == model_.config().bos_id) ids.erase(ids.begin());
      return ids;
    }
    const std::vector<std::int32_t> text = encode(f.text("prompt"), "prompt");
    ids.insert(ids.end(), text.begin(), text.end());
    return ids;
  }

  std::int32_t checked_id(std::int64_t id, const char* field) const {
    if (id < 0 || id >= model_.config().vocab_size) {
      throw HttpError(400, Fields::where(field) + ": token id " + std::to_string(id) +
                               " is outside the vocabulary of " + std::to_string(model_.config().vocab_size));
    }
    return static_cast<std::int32_t>(id);
  }

  // The sampling and length fields every generation endpoint shares.
  void read_generation_fields(const Fields& f, Job& job, const char* length_field) const {
    const int context = model_.transformer().context();
    const std::int64_t n_predict = f.integer(length_field, f.integer("max_tokens", -1, -1, 1 << 30), -1, 1 << 30);
    if (n_predict > context) {
      throw HttpError(400, Fields::where(length_field) + ": " + std::to_string(n_predict) +
                               " tokens do not fit in the context of " + std::to_string(context));
    }
    if (job.ids.size() >= static_cast<std::size_t>(context)) {
      throw HttpError(400, "the prompt has " + std::to_string(job.ids.size()) + " tokens but the context holds " +
                               std::to_string(context) + " (at most " + std::to_string(context - 1) + ")");
    }
    job.options.max_tokens = n_predict < 0 ? context : static_cast<int>(n_predict);  // -1: until the context is full
    smallcoder::SamplingOptions& s = job.options.sampling;
    s.temperature = static_cast<float>(f.number("temperature", s.temperature));
    s.top_k = static_cast<int>(f.integer("top_k", s.top_k, 0, 1 << 30));
    s.top_p = static_cast<float>(f.number("top_p", s.top_p));
    try {
      s.validate("request");
    } catch (const smallcoder::Error& e) {
      throw HttpError(400, e.what());
    }
    const std::int64_t seed = f.integer("seed", -1, -1, INT64_MAX);
    job.options.seed = seed < 0 ? std::random_device{}() : static_cast<std::uint64_t>(seed);
    job.options.stop = f.texts("stop");
    job.cache_prompt = f.boolean("cache_prompt", true);
    job.stream = f.boolean("stream", false);
    // Accepted for llama.cpp clients; this server has one slot, no sampler chain to
    // reorder, and always sends every response field.
    f.integer("id_slot", -1, -1, 1 << 30);
    if (f.has("samplers")) f.texts("samplers");
    if (f.has("response_fields")) f.texts("response_fields");
  }

  Job completion_job(const Fields& f, Api api) const {
    Job job;
    job.api = api;
    job.ids = prompt_ids(f);
    read_generation_fields(f, job, api == Api::openai ? "max_tokens" : "n_predict");
    return job;
  }

  // /infill: with FIM tokens, [BOS] PRE extra+prefix SUF suffix MID prompt; without
  // them (SmallCoder's Llama vocabulary), [BOS] extra + prefix + prompt, and the suffix's
  // first non-blank line as a stop string.
  Job infill_job(const Fields& f) const {
    Job job;
    job.api = Api::infill;
    std::string context_text;
    if (const smallcoder::JsonValue* extra = f.get("input_extra")) {
      Fields::typed([&] {
        for (const smallcoder::JsonValue& chunk : extra->as_array("field 'input_extra'")) {
          const smallcoder::JsonValue* text = chunk.find("text");
          if (!chunk.is_object() || text == nullptr) throw HttpError(400, "field 'input_extra': items need 'text'");
          if (const smallcoder::JsonValue* name = chunk.find("filename"))
            name->as_string("field 'input_extra' filename");
          context_text += text->as_string("field 'input_extra' text");
          if (!context_text.empty() && context_text.back() != '\n') context_text += '\n';
        }
        return 0;
      });
    }
    const std::string prefix = f.text("input_prefix"), suffix = f.text("input_suffix"), prompt = f.text("prompt");
    const auto append = [&](const std::string& text, const char* field) {
      const std::vector<std::int32_t> ids = encode(text, field);
      job.ids.insert(job.ids.end(), ids.begin(), ids.end());
    };
    job.ids.push_back(model_.config().bos_id);
    if (fim_.found()) {
      job.ids.push_back(fim_.prefix);
      append(context_text + prefix, "input_prefix");
      job.ids.push_back(fim_.suffix);
      append(suffix, "input_suffix");
      job.ids.push_back(fim_.middle);
      if (!prompt.empty()) append(prompt, "prompt");
    } else {
      append(context_text + prefix + prompt, "input_prefix");
      encode(suffix, "input_suffix");  // checked like the rest
    }
    read_generation_fields(f, job, "n_predict");
    if (!fim_.found()) {
      const std::string stop = suffix_stop(suffix);
      if (!stop.empty()) job.options.stop.push_back(stop);
    }
    f.integer("n_indent", 0, 0, 1 << 20);
    f.integer("t_max_prompt_ms", 0, -1, INT64_MAX);
    job.t_max_predict_ms = static_cast<double>(f.integer("t_max_predict_ms", 0, -1, INT64_MAX));
    return job;
  }

  void tokenize(const Fields& f, httplib::Response& res) const {
    std::vector<std::int32_t> ids = encode(f.text("content"), "content");
    if (f.boolean("add_special", false)) ids.insert(ids.begin(), model_.config().bos_id);
    const bool with_pieces = f.boolean("with_pieces", false);
    Writer w(false);
    w.begin_object().key("tokens").begin_array();
    for (const std::int32_t id : ids) {
      if (with_pieces) {
        w.begin_object().key("id").integer(id).key("piece").text(model_.tokenizer().piece(id)).end_object();
      } else {
        w.integer(id);
      }
    }
    w.end_array().end_object();
    res.set_content(w.str(), "application/json");
  }

  void detokenize(const Fields& f, httplib::Response& res) const {
    std::vector<std::int32_t> ids;
    if (const smallcoder::JsonValue* tokens = f.get("tokens")) {
      Fields::typed([&] {
        for (const smallcoder::JsonValue& v : tokens->as_array("field 'tokens'")) {
          ids.push_back(checked_id(v.as_int("field 'tokens' item"), "tokens"));
        }
        return 0;
      });
    }
    Writer w(false);
    w.begin_object().key("content").text(model_.tokenizer().decode(ids)).end_object();
    res.set_content(w.str(), "application/json");
  }

  // Waits for the model (503 when the queue is full), then runs the job, streamed or not.
  // The generation stops at the first token after its client has gone.
  void generate(Job job, const httplib::Request& req, httplib::Response& res) {
    auto client = std::make_shared<server::ClientSocket>(req.remote_addr, req.remote_port);
    std::shared_ptr<server::ModelQueue::Lease> lease;
    switch (queue_.acquire([&] { return client->gone(); }, lease)) {
      case server::ModelQueue::Outcome::full:
        throw HttpError(503, "the server is busy: " + std::to_string(flags_.queue) + " requests are already waiting");
      case server::ModelQueue::Outcome::client_gone:
        std::fprintf(stderr, "server: dropped a queued request: its client has gone\n");
        res.status = 499;  // nobody reads it: nginx's "client closed request"
        return;
      case server::ModelQueue::Outcome::granted:
        break;
    }
    auto shared_job = std::make_shared<Job>(std::move(job));
    if (!shared_job->stream) {
      smallcoder::GenerationResult r;
      model_thread_.run([&] { r = run(*shared_job, *client, {}); });
      res.set_content(final_json(*shared_job, r, /*streamed=*/false), "application/json");
      return;
    }
    res.set_chunked_content_provider(
        "text/event-stream", [this, shared_job, client, lease](std::size_t, httplib::DataSink& sink) {
          const Job& job = *shared_job;
          bool write_failed = false;
          const auto send = [&](const std::string& json) {
            const std::string event = "data: " + json + "\n\n";
            if (!write_failed && !sink.write(event.data(), event.size())) write_failed = true;
          };
          try {
            smallcoder::GenerationResult r;
            // The pieces are written from the model thread while this one waits for it.
            model_thread_.run([&] {
              r = run(
                  job, *client,
                  [&](std::string_view piece) {
                    if (!write_failed) send(piece_json(job, piece));
                  },
                  &write_failed);
            });
            send(final_json(job, r, /*streamed=*/true));
            if (job.api == Api::openai) send("[DONE]");
          } catch (const std::exception& e) {
            Writer w(false);
            w.begin_object().key("error").begin_object().key("code").integer(500);
            w.key("message").text(cli::one_line(e.what())).key("type").text("server_error").end_object().end_object();
            send(w.str());
          }
          if (!write_failed) sink.done();
          return !write_failed;
        });
  }

  smallcoder::GenerationResult run(const Job& job, const server::ClientSocket& client,
                                   const smallcoder::TextCallback& on_text, const bool* write_failed = nullptr) {
    smallcoder::GenerateOptions options = job.options;
    const Clock::time_point start = Clock::now();
    options.cancel = [&] {
      if ((write_failed != nullptr && *write_failed) || client.gone()) return true;
      if (job.t_max_predict_ms > 0 &&
          std::chrono::duration<double, std::milli>(Clock::now() - start).count() > job.t_max_predict_ms) {
        return true;
      }
      return false;
    };
    const smallcoder::GenerationResult r = session_.generate_from_ids(job.ids, options, on_text, job.cache_prompt);
    const smallcoder::Timings& t = r.timings;
    std::fprintf(stderr, "server: %d prompt tokens (%d cached), %d generated, stop %s, %.1f ms\n", t.prompt_tokens,
                 t.cached_tokens, t.generated_tokens, smallcoder::stop_reason_name(r.stop_reason), t.total_s * 1e3);
    return r;
  }

  std::string piece_json(const Job& job, std::string_view piece) const {
    Writer w(false);
    if (job.api == Api::openai) {
      w.begin_object().key("object").text("text_completion").key("model").text(name_).key("choices").begin_array();
      w.begin_object().key("text").text(piece).key("index").integer(0).key("logprobs").null();
      w.key("finish_reason").null().end_object().end_array().end_object();
    } else {
      w.begin_object().key("content").text(piece).key("stop").boolean(false).key("id_slot").integer(0).end_object();
    }
    return w.str();
  }

  // The response (or the stream's last event, whose text came in the pieces before it).
  std::string final_json(const Job& job, const smallcoder::GenerationResult& r, bool streamed) const {
    using smallcoder::StopReason;
    const smallcoder::Timings& t = r.timings;
    const std::string text = streamed ? std::string() : r.text;
    Writer w(false);
    if (job.api == Api::openai) {
      const char* finish =
          r.stop_reason == StopReason::eos || r.stop_reason == StopReason::stop_string ? "stop" : "length";
      w.begin_object().key("id").text("cmpl-smallcoder").key("object").text("text_completion");
      w.key("created").integer(static_cast<std::int64_t>(std::time(nullptr))).key("model").text(name_);
      w.key("choices").begin_array().begin_object().key("text").text(text).key("index").integer(0);
      w.key("logprobs").null().key("finish_reason").text(finish).end_object().end_array();
      w.key("usage").begin_object().key("prompt_tokens").integer(t.prompt_tokens);
      w.key("completion_tokens")
          .integer(t.generated_tokens)
          .key("total_tokens")
          .integer(t.prompt_tokens + t.generated_tokens);
      w.end_object().end_object();
      return w.str();
    }
    const char* stop_type = r.stop_reason == StopReason::eos           ? "eos"
                            : r.stop_reason == StopReason::stop_string ? "word"
                                                                       : "limit";
    const double prompt_ms = t.prefill_s * 1e3, predicted_ms = t.decode_s * 1e3;
    w.begin_object().key("content").text(text).key("id_slot").integer(0).key("stop").boolean(true);
    w.key("model").text(name_).key("tokens_predicted").integer(t.generated_tokens);
    w.key("tokens_evaluated").integer(t.prompt_tokens).key("tokens_cached").integer(t.cached_tokens);
    w.key("stop_type").text(stop_type).key("stopped_eos").boolean(r.stop_reason == StopReason::eos);
    w.key("stopped_word").boolean(r.stop_reason == StopReason::stop_string);
    w.key("stopped_limit").boolean(std::string(stop_type) == "limit").key("truncated").boolean(false);
    w.key("timings").begin_object();
    w.key("prompt_n").integer(t.evaluated_tokens()).key("prompt_ms").number(prompt_ms);
    w.key("prompt_per_token_ms").number(t.evaluated_tokens() > 0 ? prompt_ms / t.evaluated_tokens() : 0.0);
    w.key("prompt_per_second").number(prompt_ms > 0 ? t.evaluated_tokens() * 1e3 / prompt_ms : 0.0);
    // The first token comes from the prefill's logits; each later one costs a decode step.
    const int decoded = t.generated_tokens > 0 ? t.generated_tokens - 1 : 0;
    w.key("predicted_n").integer(t.generated_tokens).key("predicted_ms").number(predicted_ms);
    w.key("predicted_per_token_ms").number(decoded > 0 ? predicted_ms / decoded : 0.0);
    w.key("predicted_per_second").number(predicted_ms > 0 ? decoded * 1e3 / predicted_ms : 0.0);
    w.end_object().end_object();
    return w.str();
  }

  smallcoder::Model& model_;
  smallcoder::GenerationSession<smallcoder::CpuBackend> session_;  // used only under a queue lease
  const Flags& flags_;
  std::string name_;
  FimTokens fim_;
  server::ModelQueue queue_;
  server::ModelThread model_thread_;  // runs every generation: main(), which loaded the model
  httplib::Server http_;
};

int run(int argc, char** argv) {
  Flags f;
  cli::Parser p("server",
                "A local completion server (llama.cpp server and OpenAI endpoints) for editors.\n"
                "Without --model it serves a random-weight variant (--variant): its text is noise.");
  tools::add_model_flags(p, f);
  tools::add_cpu_flags(p, f.threads, f.kv_cache);
  p.integer("--context", &f.context, 0, 1 << 20, "KV-cache length (default: the model's context)");
  p.integer("--seed", &f.seed, 0, (1ll << 62), "random-weight seed (default 0)");
  p.text("--host", &f.host, "ADDR", "address to listen on (default 127.0.0.1)");
  p.integer("--port", &f.port, 0, 65535, "port (default 8012, llama.vim's; 0 picks a free one)");
  p.text("--api-key", &f.api_key, "KEY", "require 'Authorization: Bearer KEY' (all but /health; 401 without)");
  p.integer("--queue", &f.queue, 0, 1024, "requests that may wait for the model; more get 503 (default 8)");
  p.integer("--max-body", &f.max_body, 1024, 1ll << 30,
            "largest request body in bytes; larger get 413 (default 1 MiB)");
  if (!p.parse(argc, argv)) return 0;
  const smallcoder::DType kv_cache = tools::parse_kv_cache_flag(f.kv_cache);
  f.variant = tools::resolve_variant_flag(f.model, f.variant);
  const std::optional<smallcoder::DType> dtype = tools::parse_dtype_flag(f.dtype);
  smallcoder::BackendOptions backend;
  backend.threads = static_cast<int>(f.threads);
  backend.context = static_cast<int>(f.context);
  backend.kv_cache = kv_cache;
  smallcoder::Checkpoint checkpoint = tools::load_model_choice(
      {f.model, f.variant, dtype, f.tokenizer, static_cast<std::uint64_t>(f.seed), backend.threads});
  if (backend.context > checkpoint.config.max_context) {
    throw cli::UsageError("--context " + std::to_string(backend.context) + " exceeds the model's context of " +
                          std::to_string(checkpoint.config.max_context));
  }
  const std::string name = f.model.empty() ? f.variant + " (random weights)" : checkpoint.config.name;
  smallcoder::Model model(std::move(checkpoint), backend);
  model.warm_up();
  ::signal(SIGPIPE, SIG_IGN);  // a client that has gone is an error on its write, not the end of the server
  Server server(model, f, name.empty() ? f.model : name);
  return server.run();
}

}  // namespace

int main(int argc, char** argv) {
  return cli::run_tool("server", [&] { return run(argc, argv); });
}
