// Gradient clipping of clip.h.
#include "train/clip.h"

#include <cmath>

#include <torch/types.h>
// clip_grad.h uses torch::Tensor without including it.
#include <torch/nn/utils/clip_grad.h>

#include "lmrun/cpu_kernels.h"

namespace lmrun::host {

double clip_grad_norm(const std::vector<NamedParameter>& parameters, double max_norm,
                      std::vector<at::Tensor>& scratch) {
  std::vector<at::Tensor>& grads = scratch;
  grads.clear();
  bool plain = true;
  for (const auto& named : parameters) {
    const at::Tensor& g = named.tensor.grad();
    if (!g.defined()) continue;
    plain = plain && g.device().is_cpu() && g.scalar_type() == at::kFloat && g.is_contiguous();
    grads.push_back(g);
  }
  if (!plain) {
    std::vector<at::Tensor> tensors;
    for (const auto& named : parameters) tensors.push_back(named.tensor);
    return torch::nn::utils::clip_grad_norm_(tensors, max_norm);
  }
  double squares = 0.0;
  for (const at::Tensor& g : grads) {
    const float* data = g.data_ptr<float>();
    squares += static_cast<double>(cpu::dot(data, data, g.numel()));
  }
  const double norm = std::sqrt(squares);
  const double coefficient = max_norm / (norm + 1e-6);
  if (coefficient < 1.0) {
    for (at::Tensor& g : grads) g.mul_(coefficient);
  }
  return norm;
}

}  // namespace lmrun::host
