// Sampler plugins: one link each in the chain that turns logits into the next token.
//
//   [[generate.samplers]]  type = "temperature"  value = 0.8
//   [[generate.samplers]]  type = "top_k"        k = 40
//
// The chain runs in the order the experiment lists the samplers; each maps logits to logits
// (masking with -inf, rescaling). After the last one the next token is drawn from softmax(logits)
// with the caller's generator, so a chain that leaves one finite logit (greedy) is deterministic.
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include "lmrun/registry.h"

namespace lmrun {

struct SamplerContext {
  std::int64_t vocab_size = 0;
};

// What a sampler may look at besides the logits.
struct SamplingState {
  const std::vector<std::int64_t>* history = nullptr;  // prompt and generated ids; may be null
  at::Generator* generator = nullptr;                  // for samplers that draw; may be null
};

class LMRUN_API Sampler {
 public:
  virtual ~Sampler() = default;
  // logits (B, V) float; returns (B, V). May modify `logits` in place and return it. A -inf
  // logit (a token an earlier link removed) must stay -inf, and every row keeps a finite one:
  // the chain relies on both (the conformance suite checks them).
  virtual at::Tensor apply(at::Tensor logits, const SamplingState& state) = 0;
};

template <>
struct KindTraits<Sampler> {
  static constexpr Kind kKind = Kind::kSampler;
  using Context = SamplerContext;
};

}  // namespace lmrun
