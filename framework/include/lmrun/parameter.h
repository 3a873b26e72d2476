// A model's trainable tensor with its module name, as optimizers and callbacks see it.
//
//   for (const lmrun::NamedParameter& p : parameters)
//     if (p.tensor.grad().defined()) norm += p.tensor.grad().pow(2).sum().item<double>();
#pragma once

#include <string>

#include <ATen/core/Tensor.h>

namespace lmrun {

struct NamedParameter {
  std::string name;  // "blocks.0.attn.qkv.weight": the checkpoint key
  at::Tensor tensor;  // requires_grad; shares storage with the model's parameter
};

}  // namespace lmrun
