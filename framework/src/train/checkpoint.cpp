// Writing and reading checkpoint folders; every failure names the checkpoint and the file.
#include "train/checkpoint.h"

#include <unistd.h>

#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <optional>

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>
#include <toml++/toml.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include "lmrun/version.h"
#include "util/checksum.h"
#include "util/fs.h"
#include "util/tensor_stats.h"

namespace fs = std::filesystem;

namespace lmrun::host {
namespace {

Error checkpoint_error(const fs::path& dir, const std::string& what, std::string hint = {}) {
  return Error("checkpoint " + dir.string() + ": " + what, std::move(hint));
}

// An archive's bytes, serialized in memory: LibTorch's file writer, failing to write (a full disk),
// throws again from its destructor and so terminates the process. Our own checked write reports it.
std::string archive_bytes(torch::serialize::OutputArchive& archive) {
  std::string bytes;
  archive.save_to([&bytes](const void* data, std::size_t size) {
    bytes.append(static_cast<const char*>(data), size);
    return size;
  });
  return bytes;
}

std::string model_bytes(Model& model) {
  torch::serialize::OutputArchive archive;
  for (const auto& item : model.module().named_parameters(true))
    archive.write(item.key(), item.value());
  for (const auto& item : model.module().named_buffers(true))
    archive.write(item.key(), item.value(), /*is_buffer=*/true);
  return archive_bytes(archive);
}

// What state.toml records of the files beside it, by path relative to the checkpoint.
using Checksums = std::map<std::string, std::string>;

// Writes one file of the checkpoint being made (checked, flushed) and records its checksum.
void save_file(const fs::path& temp, const std::string& file, const std::string& bytes,
               Checksums& checksums) {
  write_file_atomic(temp / file, bytes);
  checksums[file] = checksum_text(bytes);
}

// The bytes of a file in the checkpoint, regular files only (a FIFO would block the read).
std::string read_regular(const fs::path& dir, const std::string& file) {
  const fs::path path = dir / file;
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (!fs::exists(status))
    throw checkpoint_error(dir, file + " is missing", "the folder is not a complete checkpoint");
  if (!fs::is_regular_file(status))
    throw checkpoint_error(dir, file + " is not a regular file", "the folder is not a checkpoint");
  return read_file(path);
}

// state.toml's record of each file's checksum; empty for a checkpoint written before checksums.
Checksums checksums_of(const fs::path& dir, const toml::table& state) {
  Checksums checksums;
  const toml::node* node = state.get("checksums");
  if (node == nullptr) return checksums;
  const toml::table* table = node->as_table();
  if (table == nullptr) throw checkpoint_error(dir, "state.toml's checksums is not a table");
  for (const auto& [file, value] : *table) {
    const std::optional<std::string> text = value.value<std::string>();
    const std::string name(file.str());
    if (!text || name.empty() || name[0] == '/' || name.find("..") != std::string::npos)
      throw checkpoint_error(dir, "state.toml's checksums has a bad entry '" + name + "'");
    checksums[name] = *text;
  }
  return checksums;
}

// `bytes` of `file` against the checksum state.toml recorded when the checkpoint was written.
void check_bytes(const fs::path& dir, const Checksums& checksums, const std::string& file,
                 const std::string& bytes) {
  const auto it = checksums.find(file);
  if (it == checksums.end()) return;  // written before checksums
  const std::string actual = checksum_text(bytes);
  if (actual != it->second) {
    throw checkpoint_error(
        dir, file + " is corrupt: its checksum is " + actual + ", state.toml says " + it->second,
        "the file changed after it was written (disk or copy errors); resume "
        "or evaluate from another checkpoint");
  }
}

torch::serialize::InputArchive open_archive(const fs::path& dir, const Checksums& checksums,
                                            const std::string& file) {
  const std::string bytes = read_regular(dir, file);
  check_bytes(dir, checksums, file, bytes);
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(bytes.data(), bytes.size());
  } catch (const c10::Error& e) {
    throw checkpoint_error(
        dir, file + " is corrupt or truncated: " + first_line(e.what_without_backtrace()));
  } catch (const std::exception& e) {  // the TorchScript parser's ErrorReport is not a c10::Error
    throw checkpoint_error(dir, file + " is corrupt or truncated: " + first_line(e.what()));
  }
  return archive;
}

toml::table read_state(const fs::path& dir) {
  toml::table state;
  try {
    state = toml::parse(read_regular(dir, "state.toml"), (dir / "state.toml").string());
  } catch (const toml::parse_error& e) {
    throw checkpoint_error(dir, "state.toml is corrupt: " + std::string(e.description()));
  }
  const std::int64_t format = state["format"].value_or<std::int64_t>(-1);
  if (format != kCheckpointFormat) {
    const std::string writer = state["lmrun_version"].value_or<std::string>("an unknown lmrun");
    throw checkpoint_error(dir,
                           "checkpoint format " + std::to_string(format) + " (written by lmrun " +
                               writer + "), this lmrun " + kVersion + " reads format " +
                               std::to_string(kCheckpointFormat),
                           format > kCheckpointFormat ? "use a newer lmrun to read it"
                                                      : "this checkpoint is too old to read");
  }
  return state;
}

const char* toml_type_name(const toml::node& node) {
  if (node.is_string()) return "a string";
  if (node.is_integer()) return "an integer";
  if (node.is_floating_point()) return "a float";
  if (node.is_boolean()) return "a boolean";
  if (node.is_table()) return "a table";
  if (node.is_array()) return "an array";
  return "a date or time";
}

// Steps and token counts stay below 2^53, where a double (JSON, metrics) still holds them exactly.
constexpr std::int64_t kMaxCount = std::int64_t{1} << 53;

// state.toml's integer `key` in [0, kMaxCount]; `fallback` when absent (older checkpoints).
std::int64_t state_count(const fs::path& dir, const toml::table& state, const char* key,
                         std::optional<std::int64_t> fallback) {
  const toml::node* node = state.get(key);
  if (node == nullptr) {
    if (fallback) return *fallback;
    throw checkpoint_error(dir, std::string("state.toml has no ") + key);
  }
  const std::optional<std::int64_t> value = node->value_exact<std::int64_t>();
  if (!node->is_integer() || !value) {
    throw checkpoint_error(dir, std::string("state.toml's ") + key + " is " +
                                    toml_type_name(*node) + ", expected an integer");
  }
  if (*value < 0 || *value > kMaxCount) {
    throw checkpoint_error(dir, std::string("state.toml's ") + key + " = " +
                                    std::to_string(*value) + " is out of range [0, 2^53]");
  }
  return *value;
}

std::string state_text(const fs::path& dir, const toml::node& node, const std::string& key) {
  const std::optional<std::string> text = node.value_exact<std::string>();
  if (!text) {
    throw checkpoint_error(
        dir, "state.toml's " + key + " is " + toml_type_name(node) + ", expected a string");
  }
  return *text;
}

// A checkpoint's model.pt into `model`, checked against the checksum in `state`.
void load_weights_checked(const fs::path& dir, const toml::table& state, Model& model) {
  auto archive = open_archive(dir, checksums_of(dir, state), "model.pt");
  torch::NoGradGuard no_grad;
  auto load = [&](const std::string& key, at::Tensor& target, bool is_buffer) {
    at::Tensor stored;
    if (!archive.try_read(key, stored, is_buffer)) {
      throw checkpoint_error(dir, "model.pt has no '" + key + "'",
                             "the checkpoint comes from another model; check the [model] section");
    }
    if (!stored.sizes().equals(target.sizes())) {
      throw checkpoint_error(
          dir,
          "'" + key + "' has shape " + shape_text(stored.sizes()) + ", this model's is " +
              shape_text(target.sizes()),
          "the checkpoint comes from a model of another shape; check the [model] section");
    }
    if (stored.is_floating_point() && !stored.isfinite().all().item<bool>()) {
      const std::int64_t bad = (~stored.isfinite()).sum().item<std::int64_t>();
      throw checkpoint_error(
          dir,
          "'" + key + "' holds " + std::to_string(bad) + " non-finite values (NaN or infinity)",
          "the model diverged before this checkpoint, or the file is damaged; "
          "use an earlier checkpoint");
    }
    target.copy_(stored);
  };
  for (auto& item : model.module().named_parameters(true)) load(item.key(), item.value(), false);
  for (auto& item : model.module().named_buffers(true)) load(item.key(), item.value(), true);
}

}  // namespace

void load_model_weights(const fs::path& dir, Model& model) {
  load_weights_checked(dir, read_state(dir), model);
}

void verify_checkpoint(const fs::path& dir) {
  const toml::table state = read_state(dir);
  for (const auto& [file, expected] : checksums_of(dir, state)) {
    const std::string bytes = read_regular(dir, file);
    check_bytes(dir, {{file, expected}}, file, bytes);
  }
}

void write_checkpoint(const fs::path& dir, Pipeline& p, const TrainerSnapshot& s,
                      const NamedGenerators& generators, const CheckpointProvenance& provenance) {
  const fs::path parent = dir.parent_path();
  const fs::path temp =
      parent / (".tmp-" + dir.filename().string() + "-" + std::to_string(::getpid()));
  std::error_code ec;
  fs::remove_all(temp, ec);
  fs::create_directories(temp / "tokenizer", ec);
  if (ec) throw checkpoint_error(dir, "cannot create " + temp.string() + ": " + ec.message());
  try {
    Checksums checksums;
    save_file(temp, "model.pt", model_bytes(*p.model), checksums);
    if (p.optimizer) {
      torch::serialize::OutputArchive archive;
      p.optimizer->save(archive);
      save_file(temp, "optimizer.pt", archive_bytes(archive), checksums);
    }
    torch::serialize::OutputArchive rng;
    for (const auto& [name, generator] : generators) rng.write(name, generator->get_state());
    save_file(temp, "rng.pt", archive_bytes(rng), checksums);
    save_file(temp, "config.toml", provenance.config_toml, checksums);
    p.tokenizer->save(temp / "tokenizer");
    for (const auto& item : fs::recursive_directory_iterator(temp / "tokenizer")) {
      if (!item.is_regular_file()) continue;
      checksums[fs::relative(item.path(), temp).generic_string()] =
          checksum_text(read_file(item.path()));
    }

    toml::table state;
    state.insert("format", kCheckpointFormat);
    state.insert("lmrun_version", std::string(kVersion));
    state.insert("config_hash", provenance.config_hash);
    toml::array plugins;
    for (const auto& plugin : provenance.plugins) plugins.push_back(plugin);
    state.insert("plugins", std::move(plugins));
    state.insert("step", s.step);
    state.insert("tokens_seen", s.tokens_seen);
    state.insert("elapsed_seconds", s.elapsed_seconds);
    state.insert("scheduler_state", s.scheduler_state);
    toml::array callbacks;
    for (const auto& text : s.callback_states) callbacks.push_back(text);
    state.insert("callback_states", std::move(callbacks));
    toml::table metrics;
    for (const auto& [name, value] : s.metrics) metrics.insert(name, value);
    state.insert("metrics", std::move(metrics));
    toml::table context;
    context.insert("vocab_size", p.model_context.vocab_size);
    context.insert("sequence_length", p.model_context.sequence_length);
    context.insert("num_classes", p.model_context.num_classes);
    context.insert("pad_id", p.model_context.pad_id);
    context.insert("output",
                   p.model_context.output == ModelOutput::kVectors ? "vectors" : "scores");
    if (!p.class_names.empty()) {
      toml::array names;
      for (const auto& name : p.class_names) names.push_back(name);
      context.insert("class_names", std::move(names));
    }
    state.insert("model_context", std::move(context));
    if (p.chat_format.defined()) {
      const ChatFormat& f = p.chat_format;
      state.insert("chat_format", toml::table{{"system", f.system},
                                              {"user", f.user},
                                              {"assistant", f.assistant},
                                              {"start", f.start},
                                              {"end", f.end}});
    }
    toml::table sums;
    for (const auto& [file, sum] : checksums) sums.insert(file, sum);
    state.insert("checksums", std::move(sums));
    std::ostringstream text;
    text << "# lmrun checkpoint state\n" << state << "\n";
    write_file_atomic(temp / "state.toml", text.str());
  } catch (const c10::Error& e) {
    fs::remove_all(temp, ec);
    throw checkpoint_error(dir, "cannot write: " + first_line(e.what_without_backtrace()));
  } catch (const Error& e) {
    fs::remove_all(temp, ec);
    throw checkpoint_error(dir, e.what(),
                           "free space on the disk, then resume the run; the "
                           "previous checkpoints are whole");
  } catch (...) {
    fs::remove_all(temp, ec);
    throw;
  }

  // Swap in: the old checkpoint of this name stays whole until the new one is in place.
  const fs::path old =
      parent / (".old-" + dir.filename().string() + "-" + std::to_string(::getpid()));
  const bool replacing = fs::exists(dir);
  if (replacing) fs::rename(dir, old);
  fs::rename(temp, dir);
  files_detail::sync_folder(parent);
  if (replacing) fs::remove_all(old, ec);
}

std::int64_t read_checkpoint_step(const fs::path& dir) {
  return state_count(dir, read_state(dir), "step", std::nullopt);
}

ModelContext read_model_context(const fs::path& dir) {
  const toml::table state = read_state(dir);
  ModelContext context;
  context.vocab_size = state["model_context"]["vocab_size"].value_or<std::int64_t>(-1);
  context.sequence_length = state["model_context"]["sequence_length"].value_or<std::int64_t>(-1);
  context.num_classes = state["model_context"]["num_classes"].value_or<std::int64_t>(0);
  context.pad_id = state["model_context"]["pad_id"].value_or<std::int64_t>(-1);
  // Absent in checkpoints from before objectives: every model then output scores.
  const std::string output = state["model_context"]["output"].value_or<std::string>("scores");
  if (output != "scores" && output != "vectors") {
    throw checkpoint_error(dir, "state.toml's model_context.output is \"" + output +
                                    "\", expected \"scores\" or \"vectors\"");
  }
  context.output = output == "vectors" ? ModelOutput::kVectors : ModelOutput::kScores;
  if (context.vocab_size <= 0 || context.sequence_length < 0) {
    throw checkpoint_error(dir, "state.toml has no valid [model_context]");
  }
  return context;
}

ChatFormat read_chat_format(const fs::path& dir) {
  const toml::table state = read_state(dir);
  ChatFormat f;
  if (!state.contains("chat_format")) return f;
  const auto part = [&](const char* key) {
    const std::optional<std::string> value = state["chat_format"][key].value<std::string>();
    if (!value) throw checkpoint_error(dir, std::string("state.toml's chat_format has no ") + key);
    return *value;
  };
  f.system = part("system");
  f.user = part("user");
  f.assistant = part("assistant");
  f.start = part("start");
  f.end = part("end");
  if (f.end.empty()) throw checkpoint_error(dir, "state.toml's chat_format.end is empty");
  return f;
}

std::vector<std::string> read_class_names(const fs::path& dir) {
  const toml::table state = read_state(dir);
  const std::int64_t classes = state["model_context"]["num_classes"].value_or<std::int64_t>(0);
  std::vector<std::string> names;
  if (const toml::array* saved = state["model_context"]["class_names"].as_array()) {
    for (const auto& name : *saved) names.push_back(name.value_or<std::string>(""));
  }
  if (names.empty()) {
    for (std::int64_t c = 0; c < classes; ++c) names.push_back(std::to_string(c));
  }
  if (static_cast<std::int64_t>(names.size()) != classes) {
    throw checkpoint_error(dir, "state.toml names " + std::to_string(names.size()) +
                                    " classes for a model of " + std::to_string(classes));
  }
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (names[i].empty())
      throw checkpoint_error(dir, "state.toml's class " + std::to_string(i) + " has no name");
    for (std::size_t j = 0; j < i; ++j) {
      if (names[j] == names[i]) {
        throw checkpoint_error(dir, "state.toml names class '" + names[i] + "' twice (" +
                                        std::to_string(j) + " and " + std::to_string(i) + ")");
      }
    }
  }
  return names;
}

TrainerSnapshot read_checkpoint(const fs::path& dir, Pipeline& p,
                                const NamedGenerators& generators) {
  const toml::table state = read_state(dir);
  const Checksums checksums = checksums_of(dir, state);
  TrainerSnapshot s;
  s.step = state_count(dir, state, "step", std::nullopt);
  s.tokens_seen = state_count(dir, state, "tokens_seen", 0);
  if (const toml::node* elapsed = state.get("elapsed_seconds")) {
    const std::optional<double> value = elapsed->value<double>();
    if (!value || !(elapsed->is_floating_point() || elapsed->is_integer()) ||
        !std::isfinite(*value) || *value < 0) {
      throw checkpoint_error(dir, "state.toml's elapsed_seconds is not a finite number >= 0");
    }
    s.elapsed_seconds = *value;
  }
  if (const toml::node* scheduler = state.get("scheduler_state"))
    s.scheduler_state = state_text(dir, *scheduler, "scheduler_state");
  if (const toml::node* node = state.get("callback_states")) {
    const toml::array* callbacks = node->as_array();
    if (callbacks == nullptr)
      throw checkpoint_error(dir, "state.toml's callback_states is not an array");
    for (const auto& item : *callbacks)
      s.callback_states.push_back(state_text(dir, item, "callback_states"));
  }
  if (const toml::node* node = state.get("metrics")) {
    const toml::table* metrics = node->as_table();
    if (metrics == nullptr) throw checkpoint_error(dir, "state.toml's metrics is not a table");
    for (const auto& [name, value] : *metrics) {
      const std::optional<double> number = value.value<double>();
      if (!number || !(value.is_floating_point() || value.is_integer())) {
        throw checkpoint_error(dir, "state.toml's metrics." + std::string(name.str()) + " is " +
                                        toml_type_name(value) + ", expected a number");
      }
      s.metrics[std::string(name.str())] = *number;
    }
  }

  load_weights_checked(dir, state, *p.model);
  if (p.optimizer) {
    auto archive = open_archive(dir, checksums, "optimizer.pt");
    try {
      p.optimizer->load(archive);
    } catch (const c10::Error& e) {
      throw checkpoint_error(dir, "optimizer.pt does not fit this optimizer: " +
                                      first_line(e.what_without_backtrace()));
    } catch (const Error& e) {
      throw checkpoint_error(dir, std::string("optimizer.pt: ") + e.what(), e.hint());
    }
  }
  auto rng = open_archive(dir, checksums, "rng.pt");
  for (const auto& [name, generator] : generators) {
    at::Tensor saved;
    if (!rng.try_read(name, saved))
      throw checkpoint_error(dir, "rng.pt has no '" + name + "' generator state");
    try {
      generator->set_state(saved);
    } catch (const c10::Error& e) {
      throw checkpoint_error(dir, "rng.pt's '" + name + "' is not a generator state: " +
                                      first_line(e.what_without_backtrace()));
    }
  }
  return s;
}

fs::path find_checkpoint(const fs::path& dir) {
  if (fs::is_regular_file(dir / "state.toml")) return dir;
  const fs::path checkpoints = dir / "checkpoints";
  if (fs::is_regular_file(checkpoints / "last" / "state.toml")) return checkpoints / "last";
  fs::path newest;
  std::int64_t newest_step = -1;
  std::error_code ec;
  for (const auto& item : fs::directory_iterator(checkpoints, ec)) {
    if (item.path().filename().string()[0] == '.') continue;
    if (!fs::is_regular_file(item.path() / "state.toml", ec)) continue;
    toml::table state;
    try {
      state = toml::parse_file((item.path() / "state.toml").string());
    } catch (...) {
      continue;
    }
    const std::int64_t step = state["step"].value_or<std::int64_t>(-1);
    if (step > newest_step) {
      newest_step = step;
      newest = item.path();
    }
  }
  if (newest.empty()) {
    throw Error("no checkpoint in " + dir.string(),
                "name a run folder with a checkpoints/ folder, or a checkpoint folder");
  }
  return newest;
}

}  // namespace lmrun::host
