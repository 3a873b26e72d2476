// What the standard samplers' two files share.
#pragma once

#include <ATen/core/Tensor.h>

#include "lmrun/registry.h"

namespace lmrun::samplers {

// Throws lmrun::Error naming `sampler` unless logits is a floating-point (B, V) tensor.
void check_logits(const at::Tensor& logits, const char* sampler);

// min_p, typical, the penalties, no_repeat_ngram, logit_bias (more_samplers.cpp).
void register_more_samplers(Registry& registry);

}  // namespace lmrun::samplers
