// The loss every training step and evaluation uses: cross-entropy summed over a batch's real
// targets (padding excluded), so callers divide by the real-token count they accumulate.
#pragma once

#include <cstdint>

#include <ATen/core/Tensor.h>
#include <ATen/ops/cross_entropy_loss.h>
#include <ATen/ops/full_like.h>
#include <ATen/ops/where.h>

#include "lmrun/dataset.h"
#include "lmrun/metric.h"

namespace lmrun::host {

inline constexpr int kIgnoreIndex = -100;  // cross_entropy_loss's default ignore_index
static_assert(kIgnoreIndex == lmrun::kIgnoreTarget, "metrics see the loss's ignored targets");

// Targets with padded positions set to the ignored index.
inline at::Tensor masked_targets(const Batch& batch) {
  if (!batch.mask.defined() || batch.targets.dim() != batch.mask.dim()) return batch.targets;
  return at::where(batch.mask, batch.targets, at::full_like(batch.targets, kIgnoreIndex));
}

inline std::int64_t count_targets(const at::Tensor& targets) {
  return (targets != kIgnoreIndex).sum().item<std::int64_t>();
}

// logits (B, T, V) with targets (B, T), or (B, C) with (B): the summed loss over real targets.
inline at::Tensor summed_loss(const at::Tensor& logits, const at::Tensor& targets) {
  const std::int64_t classes = logits.size(-1);
  return at::cross_entropy_loss(logits.reshape({-1, classes}), targets.reshape({-1}), {},
                                at::Reduction::Sum, kIgnoreIndex);
}

}  // namespace lmrun::host
