// Gradient clipping of clip.h.
#include "train/clip.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

#include <torch/types.h>
// clip_grad.h uses torch::Tensor without including it.
#include <torch/nn/utils/clip_grad.h>

#include "lmrun/util/cpu_kernels.h"

namespace lmrun::host {

double clip_grad_norm(const std::vector<NamedParameter>& parameters, double max_norm,
                      std::vector<at::Tensor>& scratch) {
  std::vector<at::Tensor>& grads = scratch;
  grads.clear();
  bool plain = true;
  for (const auto& named : parameters) {
    const at::Tensor& g = named.tensor.grad();
    if (!g.defined()) continue;
    plain = plain && g.device().is_cpu() && g.scalar_type() == at::kFloat &&
            g.layout() == at::kStrided && g.is_contiguous();
    grads.push_back(g);
  }
  if (!plain) {
    grads.clear();
    std::vector<at::Tensor> tensors;
    for (const auto& named : parameters) tensors.push_back(named.tensor);
    return torch::nn::utils::clip_grad_norm_(tensors, max_norm);
  }
  // Float partial sums over short chunks, added in double: a million-element tensor's sum of
  // squares keeps float's precision per chunk instead of drifting over the whole length.
  constexpr std::int64_t kChunk = 4096;
  double squares = 0.0;
  for (const at::Tensor& g : grads) {
    const float* data = g.data_ptr<float>();
    const std::int64_t n = g.numel();
    for (std::int64_t i = 0; i < n; i += kChunk) {
      const std::int64_t len = std::min(kChunk, n - i);
      squares += static_cast<double>(cpu::dot(data + i, data + i, len));
    }
  }
  const double norm = std::sqrt(squares);
  const double coefficient = max_norm / (norm + 1e-6);
  if (coefficient < 1.0) {
    for (at::Tensor& g : grads) g.mul_(coefficient);
  }
  grads.clear();  // the scratch keeps its capacity, not the gradients' storage
  return norm;
}

}  // namespace lmrun::host
