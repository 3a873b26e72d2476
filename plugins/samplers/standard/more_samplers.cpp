// The rest of the chain that llama.cpp and Hugging Face `generate` users expect: min_p, typical,
// the repetition / frequency / presence penalties over a window of recent tokens,
// no_repeat_ngram and logit_bias. Each maps logits (B, V) to logits (B, V); the ones that look
// at earlier tokens read SamplingState::history (the prompt and what has been generated), the
// same for every row of the batch.
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <ATen/TensorOperators.h>
#include <ATen/ops/abs.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/log_softmax.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/where.h>
#include <ATen/ops/zeros_like.h>

#include "lmrun/plugin.h"
#include "lmrun/sampler.h"
#include "lmrun/schema.h"
#include "samplers.h"

namespace lmrun::samplers {
namespace {

constexpr double kMinusInf = -std::numeric_limits<double>::infinity();

// The last `window` ids of the history (all of it when window is 0); empty without history.
std::vector<std::int64_t> recent(const SamplingState& state, std::int64_t window) {
  if (state.history == nullptr) return {};
  const auto& h = *state.history;
  const std::size_t n =
      window > 0 ? std::min<std::size_t>(h.size(), static_cast<std::size_t>(window)) : h.size();
  return std::vector<std::int64_t>(h.end() - static_cast<std::ptrdiff_t>(n), h.end());
}

// How often each id occurs in `ids`, ids outside [0, vocab) left out.
std::map<std::int64_t, std::int64_t> counts(const std::vector<std::int64_t>& ids,
                                            std::int64_t vocab) {
  std::map<std::int64_t, std::int64_t> out;
  for (std::int64_t id : ids) {
    if (id >= 0 && id < vocab) ++out[id];
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// min_p (llama.cpp; Nguyen et al. 2024, https://arxiv.org/abs/2407.01082): keep the tokens whose
// probability is at least p times the most likely token's. In log space: logit >= max + log p.

struct MinPOptions {
  double p = 0.05;
};

class MinP final : public Sampler {
 public:
  explicit MinP(double p) : p_(p) {}
  at::Tensor apply(at::Tensor logits, const SamplingState&) override {
    check_logits(logits, "min_p");
    if (p_ <= 0.0) return logits;
    const at::Tensor top = std::get<0>(logits.max(/*dim=*/1, /*keepdim=*/true));  // (B, 1)
    return logits.masked_fill(logits.lt(top + std::log(p_)), kMinusInf);
  }

 private:
  double p_;
};

// ---------------------------------------------------------------------------------------------
// typical (Meister et al. 2022, https://arxiv.org/abs/2202.00666), as HF's TypicalLogitsWarper:
// rank tokens by how far their information -log p is from the entropy, and keep the closest ones
// until their probability reaches p (the token that reaches it stays, so at least one does).

struct TypicalOptions {
  double p = 0.95;
};

class Typical final : public Sampler {
 public:
  explicit Typical(double p) : p_(p) {}
  at::Tensor apply(at::Tensor logits, const SamplingState&) override {
    check_logits(logits, "typical");
    if (p_ >= 1.0) return logits;
    const at::Tensor log_p = at::log_softmax(logits.to(at::kDouble), 1);  // (B, V)
    const at::Tensor p = log_p.exp();
    // Entropy, with 0 * log 0 = 0 for masked tokens.
    const at::Tensor entropy = -at::where(p.gt(0), p * log_p, at::zeros_like(p)).sum(1, true);
    at::Tensor distance = at::abs(-log_p - entropy);
    distance = distance.masked_fill(p.eq(0), std::numeric_limits<double>::infinity());
    auto [sorted, order] = distance.sort(/*stable=*/true, /*dim=*/1, /*descending=*/false);
    const at::Tensor mass = p.gather(1, order).cumsum(1);  // (B, V) in typicality order
    // Keep a token iff the mass strictly before it is below p.
    const at::Tensor before = mass - p.gather(1, order);
    const at::Tensor drop_sorted = before.ge(p_);
    const at::Tensor drop = at::empty_like(drop_sorted).scatter_(1, order, drop_sorted);
    return logits.masked_fill(drop, kMinusInf);
  }

 private:
  double p_;
};

// ---------------------------------------------------------------------------------------------
// Penalties over the last `window` tokens of the history (0: all of it).

struct RepetitionOptions {
  double penalty = 1.1;
  std::int64_t window = 64;
};

// CTRL's (Keskar et al. 2019) and HF's RepetitionPenaltyLogitsProcessor: a token seen in the
// window has its logit divided by the penalty when positive, multiplied when negative, so it
// always becomes less likely (for penalty > 1). Once per token, however often it occurs.
class RepetitionPenalty final : public Sampler {
 public:
  explicit RepetitionPenalty(RepetitionOptions o) : o_(o) {}
  at::Tensor apply(at::Tensor logits, const SamplingState& state) override {
    check_logits(logits, "repetition_penalty");
    const auto seen = counts(recent(state, o_.window), logits.size(1));
    if (seen.empty() || o_.penalty == 1.0) return logits;
    std::vector<std::int64_t> ids;
    for (const auto& entry : seen) ids.push_back(entry.first);
    const at::Tensor index =
        at::tensor(ids, at::kLong).to(logits.device()).unsqueeze(0).expand({logits.size(0), -1});
    const at::Tensor picked = logits.gather(1, index);
    const at::Tensor penalised = at::where(picked.gt(0), picked / o_.penalty, picked * o_.penalty);
    return logits.scatter(1, index, penalised);
  }

 private:
  RepetitionOptions o_;
};

struct AdditiveOptions {
  double value = 0.5;
  std::int64_t window = 64;
};

// OpenAI's frequency and presence penalties (llama.cpp's penalty_freq / penalty_present):
// logit -= frequency * count (frequency) or presence * [count > 0] (presence).
class AdditivePenalty final : public Sampler {
 public:
  AdditivePenalty(AdditiveOptions o, bool per_occurrence, const char* name)
      : o_(o), per_occurrence_(per_occurrence), name_(name) {}
  at::Tensor apply(at::Tensor logits, const SamplingState& state) override {
    check_logits(logits, name_);
    const auto seen = counts(recent(state, o_.window), logits.size(1));
    if (seen.empty() || o_.value == 0.0) return logits;
    at::Tensor out = logits.clone();
    for (const auto& [id, count] : seen) {
      at::Tensor column = out.select(1, id);
      column.sub_(o_.value * static_cast<double>(per_occurrence_ ? count : 1));
    }
    return out;
  }

 private:
  AdditiveOptions o_;
  bool per_occurrence_;
  const char* name_;
};

// ---------------------------------------------------------------------------------------------
// no_repeat_ngram (HF's NoRepeatNGramLogitsProcessor): a token that would complete an n-gram
// already in the history is masked.

struct NoRepeatOptions {
  std::int64_t n = 3;
};

class NoRepeatNgram final : public Sampler {
 public:
  explicit NoRepeatNgram(std::int64_t n) : n_(n) {}
  at::Tensor apply(at::Tensor logits, const SamplingState& state) override {
    check_logits(logits, "no_repeat_ngram");
    if (state.history == nullptr) return logits;
    const auto& h = *state.history;
    const auto n = static_cast<std::size_t>(n_);
    if (h.size() + 1 < n) return logits;
    // The last n-1 tokens; every earlier place they occur bans the token that followed there.
    const std::size_t prefix = n - 1;
    std::set<std::int64_t> banned;
    for (std::size_t start = 0; start + prefix < h.size(); ++start) {
      bool same = true;
      for (std::size_t i = 0; i < prefix && same; ++i)
        same = h[start + i] == h[h.size() - prefix + i];
      const std::int64_t next = h[start + prefix];
      if (same && next >= 0 && next < logits.size(1)) banned.insert(next);
    }
    for (std::int64_t id : banned) logits.select(1, id).fill_(kMinusInf);
    return logits;
  }

 private:
  std::int64_t n_;
};

// ---------------------------------------------------------------------------------------------
// logit_bias (OpenAI's): add bias[i] to the logit of tokens[i]; -inf bans a token.

struct LogitBiasOptions {
  std::vector<std::int64_t> tokens;
  std::vector<double> bias;
};

class LogitBias final : public Sampler {
 public:
  explicit LogitBias(LogitBiasOptions o) : o_(std::move(o)) {}
  at::Tensor apply(at::Tensor logits, const SamplingState&) override {
    check_logits(logits, "logit_bias");
    for (std::size_t i = 0; i < o_.tokens.size(); ++i) {
      if (o_.tokens[i] >= logits.size(1)) {
        throw Error("logit_bias: token " + std::to_string(o_.tokens[i]) +
                    " is outside the logits' vocabulary of " + std::to_string(logits.size(1)));
      }
      logits.select(1, o_.tokens[i]).add_(o_.bias[i]);
    }
    return logits;
  }

 private:
  LogitBiasOptions o_;
};

}  // namespace

void register_more_samplers(Registry& registry) {
  {
    Schema<MinPOptions> schema;
    schema
        .add("p", &MinPOptions::p,
             "keep tokens at least p times as likely as the most likely one; 0 keeps all")
        .range(0, 1);
    registry.add<Sampler>("min_p", "keep tokens within a factor p of the most likely", schema,
                          [](const MinPOptions& o, const SamplerContext&) {
                            if (!(o.p >= 0 && o.p <= 1))
                              throw Error("p = " + format_value(o.p) + " is outside [0, 1]");
                            return std::make_shared<MinP>(o.p);
                          });
  }
  {
    Schema<TypicalOptions> schema;
    schema
        .add("p", &TypicalOptions::p,
             "keep the tokens whose information is closest to the entropy, up to mass p; 1 "
             "keeps all")
        .min(0, true)
        .max(1);
    registry.add<Sampler>("typical", "locally typical sampling", schema,
                          [](const TypicalOptions& o, const SamplerContext&) {
                            return std::make_shared<Typical>(o.p);
                          });
  }
  {
    Schema<RepetitionOptions> schema;
    schema
        .add("penalty", &RepetitionOptions::penalty,
             "divide a recent token's positive logit by it, multiply a negative one; 1: off")
        .min(0, true);
    schema.add("window", &RepetitionOptions::window, "recent tokens looked at; 0: all").min(0);
    registry.add<Sampler>(
        "repetition_penalty", "CTRL's penalty on tokens already seen", schema,
        [](const RepetitionOptions& o, const SamplerContext&) {
          if (!(o.penalty > 0))
            throw Error("penalty = " + format_value(o.penalty) + " must be positive");
          return std::make_shared<RepetitionPenalty>(o);
        });
  }
  for (const bool frequency : {true, false}) {
    Schema<AdditiveOptions> schema;
    schema.add("value", &AdditiveOptions::value,
               frequency ? "subtracted from a logit once per occurrence in the window"
                         : "subtracted from the logit of every token in the window");
    schema.add("window", &AdditiveOptions::window, "recent tokens looked at; 0: all").min(0);
    const char* name = frequency ? "frequency_penalty" : "presence_penalty";
    registry.add<Sampler>(
        name, frequency ? "lower a token's logit by its count" : "lower every seen token's logit",
        schema, [frequency, name](const AdditiveOptions& o, const SamplerContext&) {
          return std::make_shared<AdditivePenalty>(o, frequency, name);
        });
  }
  {
    Schema<NoRepeatOptions> schema;
    schema.add("n", &NoRepeatOptions::n, "n-gram length that may not occur twice").min(1);
    registry.add<Sampler>("no_repeat_ngram", "ban tokens that would repeat an n-gram", schema,
                          [](const NoRepeatOptions& o, const SamplerContext&) {
                            if (o.n < 1) throw Error("n must be >= 1");
                            return std::make_shared<NoRepeatNgram>(o.n);
                          });
  }
  {
    Schema<LogitBiasOptions> schema;
    schema.add("tokens", &LogitBiasOptions::tokens, "token ids to bias");
    schema.add("bias", &LogitBiasOptions::bias,
               "added to each token's logit, in the order of tokens; -inf bans it");
    registry.add<Sampler>(
        "logit_bias", "add a fixed bias to chosen tokens' logits", schema,
        [](const LogitBiasOptions& o, const SamplerContext& context) {
          if (o.tokens.size() != o.bias.size()) {
            throw Error("logit_bias has " + std::to_string(o.tokens.size()) + " tokens and " +
                            std::to_string(o.bias.size()) + " biases",
                        "give one bias per token, in the same order");
          }
          for (std::int64_t id : o.tokens) {
            if (id < 0 || (context.vocab_size > 0 && id >= context.vocab_size)) {
              throw Error("logit_bias: token " + std::to_string(id) +
                              " is outside the vocabulary (0.." +
                              std::to_string(context.vocab_size - 1) + ")",
                          "ids run from 0 to the tokenizer's vocabulary size - 1");
            }
          }
          for (double b : o.bias) {
            if (std::isnan(b)) throw Error("logit_bias: a bias is nan");
          }
          return std::make_shared<LogitBias>(o);
        });
  }
}

}  // namespace lmrun::samplers
