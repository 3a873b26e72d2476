// Files in PyTorch's torch.save format (a zip of a pickle and the tensors' storages): nanoGPT's
// ckpt.pt, and plain Python pickles such as its meta.pkl. Written through LibTorch's own pickler
// and zip writer; read through LibTorch's zip reader and lmrun's weights-only unpickler
// (weights_unpickler.h), since LibTorch's unpickler does not read what Python's torch.save writes.
//
//   write_torch_file(dir / "ckpt.pt", checkpoint);     // torch.load() reads it
//   c10::IValue loaded = read_torch_file(path);        // what torch.save() wrote
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <ATen/core/ivalue.h>

#include "lmrun/model.h"

namespace lmrun::host {

// A JSON value (object, array, string, number, bool, null) as the IValue Python would load:
// objects become dicts of str to any, arrays lists. Throws lmrun::Error for malformed JSON.
c10::IValue ivalue_from_json(const std::string& json);

// An ordered str -> Tensor dict: a state dict.
c10::IValue state_dict(const std::vector<NamedTensor>& tensors);

// torch.save's zip format, with plain dicts and lists: no TorchScript type tags, so that
// torch.load(weights_only=True) accepts it. Throws lmrun::Error when the file cannot be written.
void write_torch_file(const std::filesystem::path& path, const c10::IValue& value);

// A protocol-2 pickle of `value` (str, int, float, bool, dicts of them), as Python's pickle.load
// reads it: nanoGPT's meta.pkl.
void write_pickle(const std::filesystem::path& path, const c10::IValue& value);

// What torch.save wrote: a dict, a state dict, ... (a Python object other than containers,
// numbers, strings and tensors reads as None). Throws lmrun::Error naming the file when it is not
// a torch.save zip, is truncated, or its pickle is malformed.
c10::IValue read_torch_file(const std::filesystem::path& path);

// The str -> Tensor entries of `value` when it is a state dict, or of value["model"] (nanoGPT's
// and most training scripts' checkpoints), or value["state_dict"]; names without torch.compile's
// "_orig_mod." prefix. Empty when there is none.
std::vector<NamedTensor> state_dict_entries(const c10::IValue& value);

}  // namespace lmrun::host
