#include "export/torch_file.h"

#include <fstream>
#include <utility>

#include <c10/util/Exception.h>
#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/serialization/export.h>
#include <torch/csrc/jit/serialization/pickler.h>
#include <nlohmann/json.hpp>

#include "export/weights_unpickler.h"
#include "lmrun/error.h"
#include "util/fs.h"

namespace fs = std::filesystem;

namespace lmrun::host {
namespace {

c10::IValue from_json(const nlohmann::json& j) {
  switch (j.type()) {
    case nlohmann::json::value_t::object: {
      c10::impl::GenericDict dict(c10::StringType::get(), c10::AnyType::get());
      for (const auto& [key, value] : j.items()) dict.insert(key, from_json(value));
      return dict;
    }
    case nlohmann::json::value_t::array: {
      c10::impl::GenericList list(c10::AnyType::get());
      for (const auto& value : j) list.push_back(from_json(value));
      return list;
    }
    case nlohmann::json::value_t::string:
      return j.get<std::string>();
    case nlohmann::json::value_t::boolean:
      return j.get<bool>();
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned:
      return j.get<std::int64_t>();
    case nlohmann::json::value_t::number_float:
      return j.get<double>();
    default:
      return c10::IValue();  // null -> None
  }
}

// The pickle bytes of `value` without type tags, and the tensors whose storages it refers to
// by persistent id (torch.save's layout: no tensor table, storages as records data/0, data/1, ...).
std::vector<char> pickle_untagged(const c10::IValue& value, std::vector<at::Tensor>* tensors) {
  std::vector<char> bytes;
  torch::jit::Pickler pickler(
      [&](const char* data, size_t size) { bytes.insert(bytes.end(), data, data + size); },
      /*tensor_table=*/nullptr, nullptr, nullptr, nullptr, /*tag_aggregates=*/false);
  pickler.protocol();
  pickler.pushIValue(value);
  pickler.stop();
  if (tensors != nullptr) *tensors = pickler.tensorData();
  return bytes;
}

void write_bytes(const fs::path& path, const char* data, std::size_t size) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data, static_cast<std::streamsize>(size));
  out.flush();
  if (!out) throw Error("cannot write " + path.string() + " (is the disk full?)");
}

}  // namespace

c10::IValue ivalue_from_json(const std::string& json) {
  try {
    return from_json(nlohmann::json::parse(json));
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("malformed JSON: ") + e.what());
  }
}

c10::IValue state_dict(const std::vector<NamedTensor>& tensors) {
  c10::Dict<std::string, at::Tensor> dict;
  for (const NamedTensor& t : tensors) dict.insert(t.name, t.value);
  return dict;
}

void write_torch_file(const fs::path& path, const c10::IValue& value) {
  std::vector<at::Tensor> tensors;
  const std::vector<char> pickle = pickle_untagged(value, &tensors);
  std::vector<char> zip;
  {
    caffe2::serialize::PyTorchStreamWriter writer([&](const void* data, size_t size) -> size_t {
      const char* bytes = static_cast<const char*>(data);
      zip.insert(zip.end(), bytes, bytes + size);
      return size;
    });
    torch::jit::writeArchiveAndTensors("data", pickle.data(), pickle.size(), tensors, writer);
    writer.writeEndOfFile();
  }
  write_bytes(path, zip.data(), zip.size());
}

void write_pickle(const fs::path& path, const c10::IValue& value) {
  const std::vector<char> pickle = pickle_untagged(value, nullptr);
  write_bytes(path, pickle.data(), pickle.size());
}

c10::IValue read_torch_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot read " + path.string());
  char magic[2] = {0, 0};
  in.read(magic, 2);
  if (magic[0] != 'P' || magic[1] != 'K') {
    throw Error(path.string() + " is not a torch.save file (no zip archive)",
                "give init_from a nanoGPT ckpt.pt, a .safetensors file, or an lmrun run folder");
  }
  in.seekg(0);
  try {
    caffe2::serialize::PyTorchStreamReader reader(&in);
    auto record = [&](const std::string& name) {
      const auto [data, size] = reader.getRecord(name);
      return std::string(static_cast<const char*>(data.get()), size);
    };
    if (!reader.hasRecord("data.pkl")) throw Error("the archive has no data.pkl");
    Unpickled unpickled = unpickle_weights(
        record("data.pkl"), [&](const std::string& key) { return record("data/" + key); });
    return unpickled.value;
  } catch (const Error& e) {
    throw Error(path.string() + " cannot be read: " + e.what(),
                "the file is truncated or not a checkpoint of weights");
  } catch (const std::exception& e) {  // the zip reader's c10::Error
    throw Error(path.string() + " cannot be read: " + first_line(e.what()),
                "the file is truncated or not a torch.save file");
  }
}

std::vector<NamedTensor> state_dict_entries(const c10::IValue& value) {
  if (!value.isGenericDict()) return {};
  const c10::impl::GenericDict dict = value.toGenericDict();
  for (const char* key : {"model", "state_dict"}) {
    for (const auto& item : dict) {
      if (item.key().isString() && item.key().toStringRef() == key && item.value().isGenericDict())
        return state_dict_entries(item.value());
    }
  }
  std::vector<NamedTensor> out;
  const std::string compiled = "_orig_mod.";
  for (const auto& item : dict) {
    if (!item.key().isString() || !item.value().isTensor()) return {};
    std::string name = item.key().toStringRef();
    if (name.compare(0, compiled.size(), compiled) == 0) name = name.substr(compiled.size());
    out.push_back({std::move(name), item.value().toTensor()});
  }
  return out;
}

}  // namespace lmrun::host
