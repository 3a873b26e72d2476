// Generation: nanoGPT's sampling loop over lmrun's Model, Sampler and Tokenizer interfaces, with a
// KV-cached path and the uncached reference path that must draw the same tokens.
#include "generate/generate.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/log_softmax.h>
#include <ATen/ops/multinomial.h>
#include <c10/core/GradMode.h>
#include <c10/util/Exception.h>
#include <torch/nn/module.h>

#include "config/experiment.h"
#include "lmrun/error.h"
#include "lmrun/model.h"
#include "lmrun/registry.h"
#include "lmrun/sampler.h"
#include "lmrun/tokenizer.h"
#include "registry/guarded.h"

namespace lmrun::host {
namespace {

// ---------------------------------------------------------------------------------------------
// Helpers

// Eval mode for the guard's life; the module's own training flag comes back afterwards.
class EvalModeGuard {
 public:
  explicit EvalModeGuard(torch::nn::Module& module)
      : module_(module), was_training_(module.is_training()) {
    module_.eval();
  }
  ~EvalModeGuard() { module_.train(was_training_); }
  EvalModeGuard(const EvalModeGuard&) = delete;
  EvalModeGuard& operator=(const EvalModeGuard&) = delete;

 private:
  torch::nn::Module& module_;
  bool was_training_;
};

at::Device device_of(Model& model) {
  const std::vector<at::Tensor> parameters = model.module().parameters();
  return parameters.empty() ? at::Device(at::kCPU) : parameters.front().device();
}

// Index of the first token the model sees: the last `max_context` of `length` (all when 0).
std::size_t window_start(std::size_t length, std::int64_t max_context) {
  const auto limit = static_cast<std::size_t>(max_context);
  return max_context > 0 && length > limit ? length - limit : 0;
}

// ids[begin, end) as (1, n) int64 on `device`.
at::Tensor token_tensor(const std::vector<std::int64_t>& ids, std::size_t begin,
                        const at::Device& device) {
  const auto n = static_cast<std::int64_t>(ids.size() - begin);
  at::Tensor tokens = at::empty({1, n}, at::kLong);  // (1, n)
  std::copy(ids.begin() + static_cast<std::ptrdiff_t>(begin), ids.end(),
            tokens.data_ptr<std::int64_t>());
  return tokens.to(device);
}

std::string shape_of(const at::Tensor& t) {
  if (!t.defined()) return "undefined";
  std::string shape = "(";
  for (std::int64_t d = 0; d < t.dim(); ++d) shape += (d ? ", " : "") + std::to_string(t.size(d));
  return shape + ")";
}

void check_request(const GenerationRequest& request) {
  if (request.prompt.empty()) {
    throw Error("generate: the prompt is empty; a model needs at least one token to predict from",
                "start from at least one token, e.g. the id of \"\\n\" (nanoGPT's default prompt)");
  }
  if (request.max_new_tokens < 0) {
    throw Error("generate: max_new_tokens is " + std::to_string(request.max_new_tokens),
                "set max_new_tokens >= 0");
  }
  for (std::size_t i = 0; i < request.prompt.size(); ++i) {
    if (request.prompt[i] < 0) {
      throw Error("generate: prompt token " + std::to_string(i) + " has the negative id " +
                  std::to_string(request.prompt[i]));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Logits for the next token, both ways. Each call gets the whole history (prompt and generated
// ids), which has grown by exactly one token since the previous call.

// `context` on `device`, one row per sequence of a batch of `rows`; undefined stays undefined.
Conditioning context_rows(const Conditioning& context, std::int64_t rows, at::Device device) {
  if (!context.defined()) return context;
  Conditioning out;
  out.tokens = context.tokens.to(device).expand({rows, context.tokens.size(-1)});
  if (context.mask.defined())
    out.mask = context.mask.to(device).expand({rows, context.mask.size(-1)});
  return out;
}

std::unique_ptr<DecodeState> start_state(Model& model, const Conditioning& context,
                                         at::Device device) {
  if (!context.defined()) return model.start_decoding(1);
  return model.start_decoding_conditioned(1, context_rows(context, 1, device));
}

// forward() on `inputs` (B, T), conditioned on `context` for every row when it is defined.
at::Tensor run_forward(Model& model, const at::Tensor& inputs, const Conditioning& context) {
  if (!context.defined()) return model.forward(inputs, at::Tensor());
  return model.forward_conditioned(inputs, at::Tensor(),
                                   context_rows(context, inputs.size(0), inputs.device()));
}

// How many tokens of history fit beside `context`: max_context() less the positions the context
// takes in a decoding state (a transformer reads it as a prefix; a reservoir takes none); 0 when
// the model is unbounded. Throws when the context leaves no room.
std::int64_t history_room(Model& model, const Conditioning& context, at::Device device) {
  const std::int64_t limit = model.max_context();
  if (limit <= 0 || !context.defined() || !model.can_decode()) return limit;
  const std::int64_t room = limit - start_state(model, context, device)->length();
  if (room < 1) {
    throw Error("generate: the system message takes all " + std::to_string(limit) +
                    " positions of the model's context",
                "shorten the system message");
  }
  return room;
}

class NextLogits {
 public:
  virtual ~NextLogits() = default;
  virtual at::Tensor operator()(const std::vector<std::int64_t>& history) = 0;  // (1, V)
};

// One decode() per token. A bounded model's state holds at most max_context tokens; when it is
// full, a fresh state prefilled with the last max_context tokens gives exactly the logits of the
// cropped context (for learned positions the window's positions restart at 0, as in nanoGPT).
class CachedLogits final : public NextLogits {
 public:
  CachedLogits(Model& model, at::Device device, Conditioning context)
      : model_(model),
        device_(device),
        context_(std::move(context)),
        room_(history_room(model, context_, device)) {}

  at::Tensor operator()(const std::vector<std::int64_t>& history) override {
    const std::int64_t limit = model_.max_context();
    if (!state_ || (limit > 0 && state_->length() >= limit)) {
      state_ = start_state(model_, context_, device_);
      return model_.decode(*state_, token_tensor(history, window_start(history.size(), room_),
                                                 device_));  // (1, T) -> (1, V)
    }
    return model_.decode(*state_, token_tensor(history, history.size() - 1, device_));  // (1, V)
  }

 private:
  Model& model_;
  at::Device device_;
  Conditioning context_;
  std::int64_t room_;  // history_room()
  std::unique_ptr<DecodeState> state_;
};

// The reference: forward() on the cropped context every step, as nanoGPT's generate().
class UncachedLogits final : public NextLogits {
 public:
  UncachedLogits(Model& model, at::Device device, Conditioning context)
      : model_(model),
        device_(device),
        context_(std::move(context)),
        room_(history_room(model, context_, device)) {}

  at::Tensor operator()(const std::vector<std::int64_t>& history) override {
    const at::Tensor context = token_tensor(history, window_start(history.size(), room_), device_);
    const at::Tensor logits = run_forward(model_, context, context_);  // (1, T, V)
    return logits.select(1, logits.size(1) - 1);                       // (1, V)
  }

 private:
  Model& model_;
  at::Device device_;
  Conditioning context_;
  std::int64_t room_;  // history_room()
};

// ---------------------------------------------------------------------------------------------
// Drawing one token

std::int64_t draw(at::Tensor logits, const std::vector<std::shared_ptr<Sampler>>& samplers,
                  const SamplingState& state, at::Generator& generator) {
  // On the CPU in float whatever the model's device and dtype: the generator is a CPU one.
  logits = logits.to(at::kCPU, at::kFloat);  // (1, V)
  const std::int64_t vocab = logits.size(1);
  for (std::size_t i = 0; i < samplers.size(); ++i) {
    logits = samplers[i]->apply(std::move(logits), state);
    if (!logits.defined() || logits.dim() != 2 || logits.size(0) != 1 || logits.size(1) != vocab) {
      throw Error("generate: sampler " + std::to_string(i) + " of the chain returned logits " +
                  shape_of(logits) + ", expected (1, " + std::to_string(vocab) + ")");
    }
  }
  const at::Tensor probs = logits.softmax(/*dim=*/1);  // (1, V)
  try {
    return at::multinomial(probs, /*num_samples=*/1, /*replacement=*/false, generator)
        .item<std::int64_t>();
  } catch (const c10::Error& e) {
    throw Error(std::string("generate: cannot draw from the sampler chain's output: ") +
                    e.what_without_backtrace(),
                "the chain must leave at least one finite logit (and no NaN)");
  }
}

// ---------------------------------------------------------------------------------------------
// Text streaming

// Length of the longest prefix of `text` that does not end inside a UTF-8 sequence. Only an
// incomplete sequence at the very end is held back; invalid bytes pass through.
std::size_t complete_utf8_prefix(const std::string& text) {
  std::size_t lead = text.size();
  int continuation = 0;
  while (lead > 0 && continuation < 3 &&
         (static_cast<unsigned char>(text[lead - 1]) & 0xC0) == 0x80) {
    --lead;
    ++continuation;
  }
  if (lead == 0) return text.size();
  const auto byte = static_cast<unsigned char>(text[lead - 1]);
  const std::size_t needed = (byte & 0xE0) == 0xC0   ? 2
                             : (byte & 0xF0) == 0xE0 ? 3
                             : (byte & 0xF8) == 0xF0 ? 4
                                                     : 1;
  return text.size() - (lead - 1) < needed ? lead - 1 : text.size();
}

// Turns ids into text pieces as they come, and finds stop strings in them.
class TextStream {
 public:
  TextStream(const Tokenizer& tokenizer, const std::function<void(const std::string&)>& on_text,
             const std::vector<std::string>& stop = {})
      : tokenizer_(tokenizer), on_text_(on_text), stop_(stop) {}

  void push(std::int64_t id) {
    ids_.push_back(id);
    text_ = tokenizer_.decode(ids_);
    for (const auto& s : stop_) {
      const std::size_t at = s.empty() ? std::string::npos : text_.find(s);
      if (at != std::string::npos && at < cut_) {
        cut_ = at;
        stop_string_ = s;
      }
    }
    if (stopped()) {
      emit(cut_);
      return;
    }
    std::size_t end = complete_utf8_prefix(text_);
    // Hold back the longest tail that is the start of a stop string.
    std::size_t held = 0;
    for (const auto& s : stop_) {
      if (s.empty()) continue;
      for (std::size_t k = std::min(s.size() - 1, end); k > held; --k) {
        if (text_.compare(end - k, k, s, 0, k) == 0) {
          held = k;
          break;
        }
      }
    }
    emit(end - held);
  }

  void finish() {
    text_ = tokenizer_.decode(ids_);
    emit(std::min(cut_, text_.size()));
  }

  bool stopped() const { return cut_ != std::string::npos; }
  const std::string& stop_string() const { return stop_string_; }
  std::string text() const { return text_.substr(0, std::min(cut_, text_.size())); }

 private:
  void emit(std::size_t end) {
    if (end <= emitted_) return;
    if (on_text_) on_text_(text_.substr(emitted_, end - emitted_));
    emitted_ = end;
  }

  const Tokenizer& tokenizer_;
  const std::function<void(const std::string&)>& on_text_;
  const std::vector<std::string>& stop_;
  std::vector<std::int64_t> ids_;
  std::string text_;
  std::size_t emitted_ = 0;              // bytes handed out
  std::size_t cut_ = std::string::npos;  // where the first stop string starts
  std::string stop_string_;
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// API

GenerationResult generate(Model& model, const std::vector<std::shared_ptr<Sampler>>& samplers,
                          const GenerationRequest& request,
                          const std::function<void(std::int64_t)>& on_token) {
  check_request(request);
  EvalModeGuard eval_mode(model.module());
  c10::NoGradGuard no_grad;

  const auto start = std::chrono::steady_clock::now();
  GenerationResult result;
  if (request.max_new_tokens > 0) {
    at::Generator generator = at::detail::createCPUGenerator(request.seed);
    std::vector<std::int64_t> history = request.prompt;
    history.reserve(history.size() + static_cast<std::size_t>(request.max_new_tokens));
    result.tokens.reserve(static_cast<std::size_t>(request.max_new_tokens));
    const SamplingState sampling{&history, &generator};

    const at::Device device = device_of(model);
    std::unique_ptr<NextLogits> next_logits;
    if (request.use_cache) {
      next_logits = std::make_unique<CachedLogits>(model, device, request.context);
    } else {
      next_logits = std::make_unique<UncachedLogits>(model, device, request.context);
    }

    at::Tensor logits;  // (1, V)
    try {
      logits = (*next_logits)(history);
    } catch (const c10::Error& e) {
      throw Error(
          std::string("generate: the model failed on the prompt: ") + e.what_without_backtrace(),
          "check that every prompt id is below the model's vocabulary size");
    }
    const std::int64_t vocab = logits.size(1);
    for (std::size_t i = 0; i < request.prompt.size(); ++i) {
      if (request.prompt[i] >= vocab) {
        throw Error("generate: prompt token " + std::to_string(i) + " has the id " +
                    std::to_string(request.prompt[i]) + ", outside the model's vocabulary of " +
                    std::to_string(vocab));
      }
    }

    while (true) {
      const std::int64_t token = draw(logits, samplers, sampling, generator);
      history.push_back(token);
      result.tokens.push_back(token);
      if (on_token) on_token(token);
      const bool stop = std::find(request.stop_tokens.begin(), request.stop_tokens.end(), token) !=
                        request.stop_tokens.end();
      if (stop || (request.stop_when && request.stop_when()) ||
          static_cast<std::int64_t>(result.tokens.size()) == request.max_new_tokens)
        break;
      logits = (*next_logits)(history);  // no forward after the last token
    }
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!result.tokens.empty() && result.seconds > 0) {
    result.tokens_per_second = static_cast<double>(result.tokens.size()) / result.seconds;
  }
  return result;
}

std::string generate_text(Model& model, const Tokenizer& tokenizer,
                          const std::vector<std::shared_ptr<Sampler>>& samplers,
                          const std::string& prompt, std::int64_t max_new_tokens,
                          std::uint64_t seed,
                          const std::function<void(const std::string&)>& on_text) {
  TextRequest request;
  request.prompt = prompt;
  request.max_new_tokens = max_new_tokens;
  request.seed = seed;
  return generate_text(model, tokenizer, samplers, request, on_text).text;
}

BeamResult beam_search(Model& model, const GenerationRequest& request, const BeamRequest& beam) {
  check_request(request);
  if (beam.width < 1) throw Error("generate: beam width " + std::to_string(beam.width) + " < 1");
  EvalModeGuard eval_mode(model.module());
  c10::NoGradGuard no_grad;
  const auto start = std::chrono::steady_clock::now();
  const at::Device device = device_of(model);
  const auto is_stop = [&](std::int64_t id) {
    return std::find(request.stop_tokens.begin(), request.stop_tokens.end(), id) !=
           request.stop_tokens.end();
  };
  struct Hypothesis {
    std::vector<std::int64_t> tokens;
    double score = 0;         // sum of log probabilities
    std::int64_t parent = 0;  // the row of the previous step's batch it extends
  };
  const auto normalized = [&](const Hypothesis& h) {
    const double length = static_cast<double>(std::max<std::size_t>(h.tokens.size(), 1));
    return h.score / std::pow(length, beam.length_penalty);
  };
  const auto failed = [](const c10::Error& e) {
    return Error(std::string("generate: the model failed in beam search: ") +
                 e.what_without_backtrace());
  };
  // With a decoding state that can follow the hypotheses (DecodeState::select_rows), each step
  // feeds the new tokens alone; otherwise, or when prompt and answer outgrow the context, each
  // step recomputes the hypotheses' cropped contexts.
  const std::int64_t context = history_room(model, request.context, device);
  const auto total = static_cast<std::int64_t>(request.prompt.size()) + request.max_new_tokens;
  std::unique_ptr<DecodeState> state;
  at::Tensor next_logits;  // (running, V): the cached path's logits for the coming step
  if (beam.use_cache && (context == 0 || total <= context)) {
    try {
      state = start_state(model, request.context, device);
      next_logits =
          model.decode(*state, at::tensor(request.prompt, at::kLong).unsqueeze(0).to(device));
    } catch (const c10::Error& e) {
      throw failed(e);
    }
    if (!state->select_rows(at::zeros({1}, at::kLong))) state.reset();
  }
  std::vector<Hypothesis> running = {Hypothesis{}}, finished;
  for (std::int64_t step = 0; step < request.max_new_tokens && !running.empty(); ++step) {
    const auto n = static_cast<std::int64_t>(running.size());
    at::Tensor logits = next_logits;
    if (!state) {
      // The running hypotheses (all of one length) as one batch of their cropped contexts.
      const std::size_t length = request.prompt.size() + static_cast<std::size_t>(step);
      const std::size_t begin = window_start(length, context);
      at::Tensor inputs = at::empty({n, static_cast<std::int64_t>(length - begin)}, at::kLong);
      for (std::int64_t b = 0; b < n; ++b) {
        std::vector<std::int64_t> history = request.prompt;
        const auto& tokens = running[static_cast<std::size_t>(b)].tokens;
        history.insert(history.end(), tokens.begin(), tokens.end());
        std::copy(history.begin() + static_cast<std::ptrdiff_t>(begin), history.end(),
                  inputs[b].data_ptr<std::int64_t>());
      }
      try {
        const at::Tensor all = run_forward(model, inputs.to(device), request.context);
        logits = all.select(1, all.size(1) - 1);
      } catch (const c10::Error& e) {
        throw failed(e);
      }
    }
    const at::Tensor log_p = at::log_softmax(logits.to(at::kCPU, at::kDouble), -1).contiguous();
    const std::int64_t vocab = log_p.size(1);
    const double* lp = log_p.data_ptr<double>();
    // The best 2 * width extensions (ties: lower beam, then lower token): enough that `width`
    // of them continue even when the others end at a stop token.
    std::vector<std::int64_t> order(static_cast<std::size_t>(n * vocab));
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = static_cast<std::int64_t>(i);
    const auto score_of = [&](std::int64_t i) {
      return running[static_cast<std::size_t>(i / vocab)].score + lp[i];
    };
    const auto keep = std::min<std::size_t>(order.size(), static_cast<std::size_t>(2 * beam.width));
    std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(keep), order.end(),
                      [&](std::int64_t a, std::int64_t b) {
                        const double sa = score_of(a), sb = score_of(b);
                        return sa > sb || (sa == sb && a < b);
                      });
    std::vector<Hypothesis> next;
    for (std::size_t k = 0; k < keep && static_cast<std::int64_t>(next.size()) < beam.width; ++k) {
      const std::int64_t i = order[k];
      Hypothesis h = running[static_cast<std::size_t>(i / vocab)];
      h.tokens.push_back(i % vocab);
      h.score = score_of(i);
      h.parent = i / vocab;
      if (is_stop(i % vocab)) {
        finished.push_back(std::move(h));
      } else {
        next.push_back(std::move(h));
      }
    }
    running = std::move(next);
    // Done when `width` hypotheses have ended and none running can still beat the best of them
    // (log probabilities only fall, so a running score only drops; with a length penalty > 0
    // this is the usual heuristic, as Hugging Face's early_stopping=False).
    if (static_cast<std::int64_t>(finished.size()) >= beam.width && !running.empty()) {
      double best_finished = -std::numeric_limits<double>::infinity();
      for (const auto& h : finished) best_finished = std::max(best_finished, normalized(h));
      double best_running = -std::numeric_limits<double>::infinity();
      for (const auto& h : running) best_running = std::max(best_running, normalized(h));
      if (best_finished >= best_running) running.clear();
    }
    if (state && !running.empty() && step + 1 < request.max_new_tokens) {
      // Each kept hypothesis takes its parent's cache, then feeds its new token.
      std::vector<std::int64_t> parents, last;
      for (const auto& h : running) {
        parents.push_back(h.parent);
        last.push_back(h.tokens.back());
      }
      try {
        state->select_rows(at::tensor(parents, at::kLong));
        next_logits = model.decode(*state, at::tensor(last, at::kLong).unsqueeze(1).to(device));
      } catch (const c10::Error& e) {
        throw failed(e);
      }
    }
  }
  for (auto& h : running) finished.push_back(std::move(h));
  BeamResult result;
  result.cached = state != nullptr;
  if (!finished.empty()) {
    const auto best = std::max_element(
        finished.begin(), finished.end(),
        [&](const Hypothesis& a, const Hypothesis& b) { return normalized(a) < normalized(b); });
    result.tokens = best->tokens;
    result.log_probability = best->score;
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

TextResult generate_text(Model& model, const Tokenizer& tokenizer,
                         const std::vector<std::shared_ptr<Sampler>>& samplers,
                         const TextRequest& text_request,
                         const std::function<void(const std::string&)>& on_text) {
  GenerationRequest request;
  try {
    request.prompt = tokenizer.encode(text_request.prompt);
  } catch (const Error& e) {
    throw e.with_context("generate: encoding the prompt");
  }
  if (request.prompt.empty()) {
    throw Error("generate: the prompt \"" + text_request.prompt + "\" encodes to no tokens",
                "give a prompt of at least one character, e.g. \"\\n\"");
  }
  request.max_new_tokens = text_request.max_new_tokens;
  request.seed = text_request.seed;
  request.stop_tokens = text_request.stop_tokens;
  request.context = text_request.context;

  TextStream stream(tokenizer, on_text, text_request.stop);
  GenerationResult generated;
  if (text_request.beam_width >= 2) {
    // The winner is known only at the end: its tokens are streamed then, up to a stop string.
    const BeamResult best = beam_search(
        model, request, BeamRequest{text_request.beam_width, text_request.length_penalty});
    for (std::int64_t id : best.tokens) {
      generated.tokens.push_back(id);
      stream.push(id);
      if (stream.stopped()) break;
    }
    generated.seconds = best.seconds;
    generated.tokens_per_second =
        best.seconds > 0 ? static_cast<double>(generated.tokens.size()) / best.seconds : 0;
  } else {
    request.stop_when = [&stream] { return stream.stopped(); };
    generated = generate(model, samplers, request, [&stream](std::int64_t id) { stream.push(id); });
  }
  stream.finish();
  TextResult result;
  result.text = stream.text();
  result.tokens = static_cast<std::int64_t>(generated.tokens.size());
  result.tokens_per_second = generated.tokens_per_second;
  if (stream.stopped()) {
    result.stop_reason = "stop string " + quote(stream.stop_string());
  } else if (!generated.tokens.empty() &&
             std::find(request.stop_tokens.begin(), request.stop_tokens.end(),
                       generated.tokens.back()) != request.stop_tokens.end()) {
    result.stop_reason = "stop token " + std::to_string(generated.tokens.back());
  } else {
    result.stop_reason = "max_new_tokens";
  }
  return result;
}

std::vector<std::shared_ptr<Sampler>> make_samplers(const Registry& registry,
                                                    const std::vector<PluginSpec>& specs,
                                                    std::int64_t vocab_size) {
  std::vector<std::shared_ptr<Sampler>> samplers;
  samplers.reserve(specs.size());
  for (const PluginSpec& spec : specs) {
    if (spec.kind != Kind::kSampler) {
      throw Error(spec.key + ": is a " + kind_name(spec.kind) + " section, not a sampler");
    }
    try {
      samplers.push_back(
          make_plugin<Sampler>(registry, spec.type, spec.params, SamplerContext{vocab_size}));
    } catch (const Error& e) {
      throw e.with_context(spec.key);
    }
  }
  return samplers;
}

}  // namespace lmrun::host
