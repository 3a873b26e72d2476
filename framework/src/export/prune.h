// Magnitude pruning for `lmrun export --prune FRACTION`: in each torch::nn::Linear layer of a
// model (LibTorch's own module type, whatever the plugin), the smallest weights by absolute value
// set to zero, in place. The weights stay dense (a file holds the zeros).
//
//   PruneReport r = prune_linear_weights(model.module(), 0.5, PruneMode::kUnstructured);
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <torch/nn/module.h>

namespace lmrun::host {

enum class PruneMode {
  kUnstructured,  // the fraction of each layer's weights, wherever they are
  kRows,          // the fraction of each output row's weights
};

struct PruneReport {
  std::vector<std::string> layers;  // module names of the pruned linears
  std::int64_t weights = 0;         // in those layers
  std::int64_t zeros = 0;           // of them, zero after pruning
};

// Throws lmrun::Error for a fraction outside [0, 1) or a model without a torch::nn::Linear.
PruneReport prune_linear_weights(torch::nn::Module& module, double fraction, PruneMode mode);

// "unstructured" or "rows"; throws lmrun::Error naming the choices otherwise.
PruneMode parse_prune_mode(const std::string& name);

}  // namespace lmrun::host
