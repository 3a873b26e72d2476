// The standard sampler links (greedy, temperature, top_k, top_p; the others are in
// more_samplers.cpp): each maps logits (B, V) to logits
// (B, V), masking what may not be drawn with -inf. Ties always go to the lowest token id.
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <tuple>

#include <ATen/ops/cat.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/full_like.h>
#include <ATen/ops/zeros_like.h>

#include "lmrun/plugin.h"
#include "lmrun/sampler.h"
#include "lmrun/schema.h"
#include "samplers.h"

namespace {

constexpr double kMinusInf = -std::numeric_limits<double>::infinity();

// ---------------------------------------------------------------------------------------------
// Options

struct GreedyOptions {};

struct TemperatureOptions {
  double value = 1.0;  // logits / value; 0 means greedy
};

struct TopKOptions {
  std::int64_t k = 40;  // tokens kept; more than the vocabulary keeps all
};

struct TopPOptions {
  double p = 0.9;  // probability mass kept; 1 keeps all
};

lmrun::Schema<TemperatureOptions> temperature_schema() {
  lmrun::Schema<TemperatureOptions> schema;
  schema
      .add("value", &TemperatureOptions::value,
           "divides the logits: < 1 sharpens, > 1 flattens, 0 is greedy")
      .min(0)
      .shortcut("temp", /*first_in_chain=*/true);
  return schema;
}

lmrun::Schema<TopKOptions> top_k_schema() {
  lmrun::Schema<TopKOptions> schema;
  schema.add("k", &TopKOptions::k, "keep the k most likely tokens (all when k >= vocabulary)")
      .min(1)
      .shortcut("top_k");
  return schema;
}

lmrun::Schema<TopPOptions> top_p_schema() {
  lmrun::Schema<TopPOptions> schema;
  schema
      .add("p", &TopPOptions::p,
           "keep the smallest set of most likely tokens whose probability reaches p")
      .min(0, true)
      .max(1)
      .shortcut("top_p");
  return schema;
}

// ---------------------------------------------------------------------------------------------
// Helpers

using lmrun::samplers::check_logits;

// -inf everywhere except at `keep` (B, n) indices, where the logits are copied.
at::Tensor keep_only(const at::Tensor& logits, const at::Tensor& keep) {
  return at::full_like(logits, kMinusInf).scatter_(1, keep, logits.gather(1, keep));
}

// Greedy: only the argmax stays finite. argmax returns the first maximum, i.e. the lowest id.
at::Tensor keep_argmax(const at::Tensor& logits) {
  return keep_only(logits, logits.argmax(/*dim=*/1, /*keepdim=*/true));  // keep: (B, 1)
}

// Descending sort that keeps equal logits in id order, so ties are cut by id, never by chance.
std::tuple<at::Tensor, at::Tensor> sort_descending(const at::Tensor& logits) {
  return logits.sort(/*stable=*/true, /*dim=*/1, /*descending=*/true);
}

// ---------------------------------------------------------------------------------------------
// Samplers

class Greedy final : public lmrun::Sampler {
 public:
  at::Tensor apply(at::Tensor logits, const lmrun::SamplingState&) override {
    check_logits(logits, "greedy");
    return keep_argmax(logits);
  }
};

class Temperature final : public lmrun::Sampler {
 public:
  explicit Temperature(double value) : value_(value) {}

  at::Tensor apply(at::Tensor logits, const lmrun::SamplingState&) override {
    check_logits(logits, "temperature");
    if (value_ == 0.0) return keep_argmax(logits);  // the limit of logits / T as T -> 0
    if (value_ == 1.0) return logits;
    return logits.div(value_);
  }

 private:
  double value_;
};

class TopK final : public lmrun::Sampler {
 public:
  explicit TopK(std::int64_t k) : k_(k) {}

  // Exactly min(k, V) tokens stay; among equal logits at the cut the lower ids win (llama.cpp's
  // top-k also keeps exactly k, whereas nanoGPT's `logits < v[:, [-1]]` keeps every tie).
  at::Tensor apply(at::Tensor logits, const lmrun::SamplingState&) override {
    check_logits(logits, "top_k");
    if (k_ >= logits.size(1)) return logits;
    at::Tensor order = std::get<1>(sort_descending(logits));  // (B, V) ids, most likely first
    return keep_only(logits, order.narrow(1, 0, k_));         // keep: (B, k)
  }

 private:
  std::int64_t k_;
};

class TopP final : public lmrun::Sampler {
 public:
  explicit TopP(double p) : p_(p) {}

  // Nucleus sampling (Holtzman et al. 2019, https://arxiv.org/abs/1904.09751), as HF's
  // TopPLogitsWarper: sort descending, cumulative softmax, drop the tokens past the first one whose
  // cumulative probability reaches p. A token stays iff the mass strictly before it is < p, so the
  // most likely token always stays. Probabilities in double, so that sums of many small terms
  // do not decide the cut by rounding.
  at::Tensor apply(at::Tensor logits, const lmrun::SamplingState&) override {
    check_logits(logits, "top_p");
    if (p_ >= 1.0) return logits;
    auto [sorted, order] = sort_descending(logits);                      // (B, V) each
    const at::Tensor probs = sorted.to(at::kDouble).softmax(/*dim=*/1);  // (B, V)
    const at::Tensor cumulative = probs.cumsum(/*dim=*/1);               // (B, V)
    const std::int64_t vocab = logits.size(1);
    const at::Tensor before = at::cat(  // (B, V) mass before i
        {at::zeros_like(cumulative.narrow(1, 0, 1)), cumulative.narrow(1, 0, vocab - 1)}, 1);
    const at::Tensor sorted_kept = sorted.masked_fill(before.ge(p_), kMinusInf);
    return at::empty_like(logits).scatter_(1, order, sorted_kept);  // back to id order
  }

 private:
  double p_;
};

void register_samplers(lmrun::Registry& registry) {
  registry.add<lmrun::Sampler>("greedy", "keep only the most likely token (ties: the lowest id)",
                               lmrun::Schema<GreedyOptions>(),
                               [](const GreedyOptions&, const lmrun::SamplerContext&) {
                                 return std::make_shared<Greedy>();
                               });
  // The schemas enforce the bounds (schema.h), so the factories only build.
  registry.add<lmrun::Sampler>("temperature", "divide the logits by a temperature",
                               temperature_schema(),
                               [](const TemperatureOptions& o, const lmrun::SamplerContext&) {
                                 return std::make_shared<Temperature>(o.value);
                               });
  registry.add<lmrun::Sampler>("top_k", "keep the k most likely tokens", top_k_schema(),
                               [](const TopKOptions& o, const lmrun::SamplerContext&) {
                                 return std::make_shared<TopK>(o.k);
                               });
  registry.add<lmrun::Sampler>("top_p", "nucleus: keep the most likely tokens up to mass p",
                               top_p_schema(), [](const TopPOptions& o, const lmrun::SamplerContext&) {
                                 return std::make_shared<TopP>(o.p);
                               });
  lmrun::samplers::register_more_samplers(registry);
}

}  // namespace

namespace lmrun::samplers {

void check_logits(const at::Tensor& logits, const char* sampler) {
  if (!logits.defined() || logits.dim() != 2 || !logits.is_floating_point()) {
    std::string shape = logits.defined() ? "[" : "undefined";
    for (std::int64_t d = 0; logits.defined() && d < logits.dim(); ++d) {
      shape += (d ? ", " : "") + std::to_string(logits.size(d));
    }
    if (logits.defined()) shape += std::string("] ") + c10::toString(logits.scalar_type());
    throw lmrun::Error(std::string("sampler '") + sampler +
                       "' expects floating-point logits of shape (B, V), got " + shape);
  }
}

}  // namespace lmrun::samplers

LMRUN_PLUGIN("samplers", "0.2.0", register_samplers)
