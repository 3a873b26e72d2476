// A weights-only unpickler for torch.save files, after PyTorch's own `weights_only` loader: it
// builds dicts, lists, tuples, strings, numbers and tensors and calls no Python code, so a file
// from elsewhere can hold nothing that runs. LibTorch 1.13's unpickler reads what LibTorch writes
// but not what Python's torch.save writes (it lacks SETITEM, and OrderedDict's BUILD), so a
// nanoGPT ckpt.pt needs this one.
//
//   c10::IValue checkpoint = unpickle_weights(bytes, [&](const std::string& key) { ... });
//
// Globals it knows: collections.OrderedDict, torch._utils._rebuild_tensor_v2 and
// _rebuild_parameter, the torch.*Storage types, torch.Size. Any other global (a numpy scalar, a
// dataclass) unpickles as None, so the rest of a checkpoint still reads; its name is recorded.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <ATen/core/ivalue.h>

namespace lmrun::host {

// The bytes of the storage record `key` (a zip's data/KEY).
using StorageReader = std::function<std::string(const std::string& key)>;

struct Unpickled {
  c10::IValue value;
  std::vector<std::string> skipped_globals;  // "numpy.core.multiarray scalar", ...
};

// Throws lmrun::Error (without a file name: the caller adds it) for a malformed or truncated
// pickle, an opcode outside protocols 2 to 5's data opcodes, or a storage it cannot read.
Unpickled unpickle_weights(const std::string& pickle, const StorageReader& storage);

}  // namespace lmrun::host
