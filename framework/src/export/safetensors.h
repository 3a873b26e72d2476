// The safetensors format (https://github.com/huggingface/safetensors): an 8-byte little-endian
// header length, a JSON header naming each tensor's dtype, shape and byte range, then the raw
// little-endian data. Read back by Hugging Face's libraries and by lmrun's init_from.
//
//   write_safetensors(path, tensors, {{"format", "pt"}}, at::kFloat);
//   Safetensors file = read_safetensors(path);   // file.tensors in the header's order
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <c10/core/ScalarType.h>

#include "lmrun/model.h"

namespace lmrun::host {

struct Safetensors {
  std::vector<NamedTensor> tensors;             // CPU tensors, in the order of their data
  std::map<std::string, std::string> metadata;  // the header's "__metadata__"
};

// Writes `tensors` to `path` (the caller makes the write atomic), floating-point ones converted
// to `float_type` (kFloat, kBFloat16 or kHalf), others as they are. Throws lmrun::Error for a
// name used twice or a dtype the format lacks.
void write_safetensors(const std::filesystem::path& path, const std::vector<NamedTensor>& tensors,
                       const std::map<std::string, std::string>& metadata,
                       c10::ScalarType float_type);

// Reads and checks a whole file: the header's length and JSON, each dtype, each byte range
// against its shape and against the file's size, no two ranges overlapping. Throws lmrun::Error
// naming the file and what is wrong.
Safetensors read_safetensors(const std::filesystem::path& path);

// True when `bytes` (a file's first bytes, at least 9) look like a safetensors header.
bool looks_like_safetensors(const std::string& bytes);

// "F32", "BF16", ... for a LibTorch dtype; throws lmrun::Error for one the format lacks.
std::string safetensors_dtype(c10::ScalarType type);

}  // namespace lmrun::host
