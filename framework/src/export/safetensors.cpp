#include "export/safetensors.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <set>
#include <utility>

#include <ATen/ops/empty.h>
#include <nlohmann/json.hpp>

#include "lmrun/error.h"
#include "util/tensor_stats.h"

namespace fs = std::filesystem;

namespace lmrun::host {
namespace {

// Hugging Face's limit: a header larger than this is refused as malformed.
constexpr std::uint64_t kMaxHeader = 100'000'000;

struct DtypeName {
  c10::ScalarType type;
  const char* name;
};
constexpr DtypeName kDtypes[] = {
    {c10::kFloat, "F32"}, {c10::kBFloat16, "BF16"}, {c10::kHalf, "F16"},  {c10::kDouble, "F64"},
    {c10::kLong, "I64"},  {c10::kInt, "I32"},       {c10::kShort, "I16"}, {c10::kChar, "I8"},
    {c10::kByte, "U8"},   {c10::kBool, "BOOL"},
};

Error file_error(const fs::path& path, const std::string& what) {
  return Error(path.string() + ": " + what,
               "the file is not a complete safetensors file; export it again");
}

}  // namespace

std::string safetensors_dtype(c10::ScalarType type) {
  for (const DtypeName& d : kDtypes)
    if (d.type == type) return d.name;
  throw Error(std::string("safetensors has no dtype for ") + c10::toString(type));
}

bool looks_like_safetensors(const std::string& bytes) {
  if (bytes.size() < 9) return false;
  std::uint64_t length = 0;
  std::memcpy(&length, bytes.data(), 8);
  return length >= 2 && length <= kMaxHeader && bytes[8] == '{';
}

void write_safetensors(const fs::path& path, const std::vector<NamedTensor>& tensors,
                       const std::map<std::string, std::string>& metadata,
                       c10::ScalarType float_type) {
  std::set<std::string> names;
  std::vector<at::Tensor> data;
  nlohmann::ordered_json header;
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::uint64_t offset = 0;
  for (const NamedTensor& t : tensors) {
    if (!names.insert(t.name).second) throw Error("safetensors: '" + t.name + "' appears twice");
    at::Tensor value = t.value.detach().to(at::kCPU);
    if (value.is_floating_point()) value = value.to(float_type);
    value = value.contiguous();
    const std::uint64_t bytes = value.numel() * value.element_size();
    header[t.name] = {{"dtype", safetensors_dtype(value.scalar_type())},
                      {"shape", value.sizes().vec()},
                      {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    data.push_back(std::move(value));
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // the data starts 8-byte aligned
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw Error("cannot write " + path.string());
  const std::uint64_t length = text.size();
  out.write(reinterpret_cast<const char*>(&length), 8);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  for (const at::Tensor& value : data) {
    out.write(static_cast<const char*>(value.data_ptr()),
              static_cast<std::streamsize>(value.numel() * value.element_size()));
  }
  out.flush();
  if (!out) throw Error("cannot write " + path.string() + " (is the disk full?)");
}

Safetensors read_safetensors(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot read " + path.string());
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (bytes.size() < 8) throw file_error(path, "shorter than the 8-byte header length");
  std::uint64_t length = 0;
  std::memcpy(&length, bytes.data(), 8);
  if (length > kMaxHeader || length > bytes.size() - 8) {
    throw file_error(path, "the header length " + std::to_string(length) +
                               " runs past the end of the file (" + std::to_string(bytes.size()) +
                               " bytes)");
  }
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(bytes.substr(8, length));
  } catch (const nlohmann::json::exception& e) {
    throw file_error(path, std::string("the header is not JSON: ") + e.what());
  }
  if (!header.is_object()) throw file_error(path, "the header is not a JSON object");
  const std::uint64_t data_size = bytes.size() - 8 - length;
  const char* data = bytes.data() + 8 + length;

  Safetensors out;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges;
  struct Entry {
    std::string name;
    at::Tensor value;
    std::uint64_t begin;
  };
  std::vector<Entry> entries;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) throw file_error(path, "__metadata__ is not an object");
      for (const auto& [key, value] : entry.items()) {
        if (!value.is_string()) throw file_error(path, "__metadata__." + key + " is not a string");
        out.metadata[key] = value.get<std::string>();
      }
      continue;
    }
    const std::string where = "tensor '" + name + "'";
    if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") ||
        !entry.contains("data_offsets") || !entry["dtype"].is_string() ||
        !entry["shape"].is_array() || !entry["data_offsets"].is_array() ||
        entry["data_offsets"].size() != 2) {
      throw file_error(path, where + " lacks dtype, shape or data_offsets");
    }
    const std::string dtype = entry["dtype"].get<std::string>();
    const auto known = std::find_if(std::begin(kDtypes), std::end(kDtypes),
                                    [&](const DtypeName& d) { return dtype == d.name; });
    if (known == std::end(kDtypes))
      throw file_error(path, where + " has dtype " + dtype + ", which lmrun does not read");
    std::vector<std::int64_t> shape;
    std::uint64_t numel = 1;
    for (const auto& dim : entry["shape"]) {
      if (!dim.is_number_unsigned()) throw file_error(path, where + " has a bad shape");
      shape.push_back(dim.get<std::int64_t>());
      numel *= dim.get<std::uint64_t>();
    }
    const auto& offsets = entry["data_offsets"];
    if (!offsets[0].is_number_unsigned() || !offsets[1].is_number_unsigned())
      throw file_error(path, where + " has bad data_offsets");
    const std::uint64_t begin = offsets[0].get<std::uint64_t>();
    const std::uint64_t end = offsets[1].get<std::uint64_t>();
    const std::uint64_t element = c10::elementSize(known->type);
    if (end < begin || end - begin != numel * element) {
      throw file_error(path, where + ": shape " + shape_text(shape) + " of " + dtype + " needs " +
                                 std::to_string(numel * element) + " bytes, its range holds " +
                                 std::to_string(end >= begin ? end - begin : 0));
    }
    if (end > data_size) {
      throw file_error(path, where + " ends at byte " + std::to_string(end) +
                                 " of the data, which has " + std::to_string(data_size) +
                                 " (truncated?)");
    }
    ranges.emplace_back(begin, end);
    at::Tensor value = at::empty(shape, at::TensorOptions().dtype(known->type));
    if (end > begin) std::memcpy(value.data_ptr(), data + begin, end - begin);
    entries.push_back({name, std::move(value), begin});
  }
  std::sort(ranges.begin(), ranges.end());
  for (std::size_t i = 1; i < ranges.size(); ++i) {
    if (ranges[i].first < ranges[i - 1].second)
      throw file_error(path, "two tensors' byte ranges overlap");
  }
  std::stable_sort(entries.begin(), entries.end(),
                   [](const Entry& a, const Entry& b) { return a.begin < b.begin; });
  for (Entry& e : entries) out.tensors.push_back({std::move(e.name), std::move(e.value)});
  return out;
}

}  // namespace lmrun::host
