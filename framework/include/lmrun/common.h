// Small vocabulary shared by the kind headers: data splits and metric maps.
#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace lmrun {

enum class Split { kTrain, kVal, kTest };

inline const char* split_name(Split split) {
  switch (split) {
    case Split::kTrain:
      return "train";
    case Split::kVal:
      return "val";
    case Split::kTest:
      return "test";
  }
  return "?";
}

// Named scalar results: "train_loss", "val_loss", "val_accuracy", "lr", ...
using Metrics = std::map<std::string, double>;

// A target to leave out of losses and metrics (a padded position, a masked prompt): the value
// cross-entropy's ignore_index takes by default.
inline constexpr std::int64_t kIgnoreTarget = -100;

}  // namespace lmrun
