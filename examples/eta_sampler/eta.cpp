// eta: a sampler plugin built out of tree. Eta sampling truncates the tail of the next-token
// distribution with a threshold that follows its entropy: a confident distribution loses more of
// its tail than an uncertain one.
#include <cmath>
#include <limits>
#include <memory>
#include <string>

#include <ATen/core/Tensor.h>

#include "lmrun/plugin.h"
#include "lmrun/sampler.h"
#include "lmrun/schema.h"

namespace {

// ---------------------------------------------------------------------------------------------
// Options

struct EtaOptions {
  double epsilon = 3e-4;  // the paper's best for GPT-2 sizes lie in 3e-4 .. 2e-3
};

lmrun::Schema<EtaOptions> eta_schema() {
  lmrun::Schema<EtaOptions> schema;
  schema
      .add("epsilon", &EtaOptions::epsilon,
           "largest probability cut-off; an uncertain distribution is cut lower")
      .min(0, /*exclusive=*/true)
      .max(1, /*exclusive=*/true)
      .shortcut("eta");  // `lmrun generate --interactive`: /eta 0.001
  return schema;
}

// ---------------------------------------------------------------------------------------------
// The sampler
//
// Hewitt, Manning & Liang, "Truncation Sampling as Language Model Desmoothing", Findings of
// EMNLP 2022 (https://arxiv.org/abs/2210.15191), as Hugging Face's EtaLogitsWarper: with p the
// softmax of a row and H(p) its entropy in nats, a token stays when
//   p >= eta,   eta = min(epsilon, sqrt(epsilon) * exp(-H(p)))
// and the most likely token always stays. Tokens masked before (-inf) stay masked.

class EtaSampler final : public lmrun::Sampler {
 public:
  explicit EtaSampler(double epsilon) : epsilon_(epsilon) {}

  // logits (B, V) -> (B, V)
  at::Tensor apply(at::Tensor logits, const lmrun::SamplingState& /*state*/) override {
    if (logits.dim() != 2 || !logits.is_floating_point()) {
      throw lmrun::Error("eta: expects floating-point logits of shape (B, V)");
    }
    const at::Tensor log_p = logits.to(at::kDouble).log_softmax(1);  // (B, V)
    const at::Tensor p = log_p.exp();
    // H = -sum p log p, a masked token (p = 0, log p = -inf) adding 0
    const at::Tensor entropy = p.mul(log_p).masked_fill(p.eq(0), 0).sum(1, true).neg();  // (B, 1)
    const at::Tensor eta = entropy.neg().exp().mul(std::sqrt(epsilon_)).clamp_max(epsilon_);
    at::Tensor cut = p.lt(eta);                             // (B, V) bool
    cut.scatter_(1, p.argmax(1, /*keepdim=*/true), false);  // keep the top token
    return logits.masked_fill(cut, -std::numeric_limits<double>::infinity());
  }

 private:
  double epsilon_;
};

// ---------------------------------------------------------------------------------------------
// Registration

void register_eta(lmrun::Registry& registry) {
  registry.add<lmrun::Sampler>("eta", "eta sampling: an entropy-dependent probability cut-off",
                               eta_schema(),
                               [](const EtaOptions& options, const lmrun::SamplerContext&) {
                                 return std::make_shared<EtaSampler>(options.epsilon);
                               });
}

}  // namespace

LMRUN_PLUGIN("eta", "0.1.0", register_eta)
