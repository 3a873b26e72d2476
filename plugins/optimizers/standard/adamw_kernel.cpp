// The fused AdamW element loop of adamw_kernel.h. Built with -fno-math-errno so that GCC
// vectorises the square root.
#include "adamw_kernel.h"

#include <cmath>

namespace lmrun::optimizers {

void adamw_update(const AdamWStep& s, std::int64_t n, float* __restrict p,
                  const float* __restrict g, float* __restrict m, float* __restrict v) {
  // Locals, not s's fields: a store through p could otherwise alias them and stop vectorisation.
  const float decay = s.decay_factor, beta1 = s.beta1, beta2 = s.beta2;
  const float one_minus_beta1 = s.one_minus_beta1, one_minus_beta2 = s.one_minus_beta2;
  const float step_size = s.step_size, sqrt_bc2 = s.sqrt_bias_correction2, eps = s.eps;
  for (std::int64_t i = 0; i < n; ++i) {
    const float grad = g[i];
    const float decayed = p[i] * decay;                      // p.mul_(1 - lr * wd)
    const float mi = m[i] * beta1 + grad * one_minus_beta1;  // exp_avg.mul_(b1).add_(g, 1-b1)
    const float vi = v[i] * beta2 + one_minus_beta2 * grad * grad;  // .mul_(b2).addcmul_(g, g)
    m[i] = mi;
    v[i] = vi;
    const float denom = std::sqrt(vi) / sqrt_bc2 + eps;
    p[i] = decayed + -step_size * (mi / denom);  // p.addcdiv_(exp_avg, denom, -step_size)
  }
}

}  // namespace lmrun::optimizers
