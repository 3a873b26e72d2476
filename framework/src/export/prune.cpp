#include "export/prune.h"

#include <cmath>

#include <ATen/ATen.h>
#include <torch/nn/modules/linear.h>
#include <torch/utils.h>

#include "lmrun/error.h"

namespace lmrun::host {

PruneMode parse_prune_mode(const std::string& name) {
  if (name == "unstructured") return PruneMode::kUnstructured;
  if (name == "rows") return PruneMode::kRows;
  throw Error("--prune-mode must be unstructured or rows, not '" + name + "'");
}

PruneReport prune_linear_weights(torch::nn::Module& module, double fraction, PruneMode mode) {
  if (!(fraction >= 0.0 && fraction < 1.0)) {
    throw Error("--prune takes the fraction of weights to zero, in [0, 1), not " +
                std::to_string(fraction));
  }
  torch::NoGradGuard no_grad;
  PruneReport report;
  for (const auto& item : module.named_modules("", /*include_self=*/false)) {
    auto* linear = item.value()->as<torch::nn::Linear>();
    if (linear == nullptr) continue;
    at::Tensor& w = linear->weight;
    const at::Tensor magnitude = w.abs();
    // k smallest magnitudes per layer, or per row; ties at the threshold are pruned too.
    if (mode == PruneMode::kUnstructured) {
      const auto k = static_cast<std::int64_t>(std::floor(fraction * w.numel()));
      if (k > 0) {
        const at::Tensor threshold = std::get<0>(magnitude.flatten().kthvalue(k));
        w.masked_fill_(magnitude <= threshold, 0.0);
      }
    } else {
      const auto k = static_cast<std::int64_t>(std::floor(fraction * w.size(1)));
      if (k > 0) {
        const at::Tensor threshold = std::get<0>(magnitude.kthvalue(k, 1, /*keepdim=*/true));
        w.masked_fill_(magnitude <= threshold, 0.0);
      }
    }
    report.layers.push_back(item.key());
    report.weights += w.numel();
    report.zeros += (w == 0).sum().item<std::int64_t>();
  }
  if (report.layers.empty()) {
    throw Error(
        "--prune zeroes the weights of linear layers (torch::nn::Linear), and this model "
        "has none");
  }
  return report;
}

}  // namespace lmrun::host
