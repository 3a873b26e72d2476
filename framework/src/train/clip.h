// Gradient clipping by global norm, torch::nn::utils::clip_grad_norm_'s rule without its per-tensor
// ops on the common case.
//
//   double norm = clip_grad_norm(pipeline.parameters, /*max_norm=*/1.0, scratch);
#pragma once

#include <vector>

#include <ATen/core/Tensor.h>

#include "lmrun/optimizer.h"

namespace lmrun::host {

// Scales every defined gradient by max_norm / (norm + 1e-6) when that is below 1, where norm is
// the L2 norm of all gradients together, and returns norm. When every gradient is a contiguous
// fp32 CPU tensor the sum of squares is one vectorised pass per tensor (lmrun/util/cpu_kernels.h;
// gpt_tiny: 0.65 -> 0.2 ms) instead of a norm op per tensor, a stack and a norm; otherwise
// LibTorch's clip_grad_norm_. `scratch` is reused between calls to avoid allocating.
double clip_grad_norm(const std::vector<NamedParameter>& parameters, double max_norm,
                      std::vector<at::Tensor>& scratch);

}  // namespace lmrun::host
