// AdamW's update of one parameter tensor in a single pass over raw fp32 arrays: what
// torch::optim::AdamW's step does per tensor with nine LibTorch ops (each a full pass and a
// dispatch), in the same order of operations, so results agree to float rounding.
#pragma once

#include <cstdint>

namespace lmrun::optimizers {

struct AdamWStep {
  float decay_factor;  // 1 - lr * weight_decay
  float beta1, beta2;
  float one_minus_beta1, one_minus_beta2;  // computed in double by the caller
  float step_size;                         // lr / (1 - beta1^t)
  float sqrt_bias_correction2;             // sqrt(1 - beta2^t)
  float eps;
};

// p (n) parameter, g (n) its gradient, m and v (n) the moment estimates, updated in place; the
// four arrays must not overlap.
void adamw_update(const AdamWStep& s, std::int64_t n, float* p, const float* g, float* m, float* v);

}  // namespace lmrun::optimizers
