// Writing and reading checkpoint folders; every failure names the checkpoint and the file.
#include "train/checkpoint.h"

#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <fstream>

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>
#include <toml++/toml.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include "lmrun/version.h"
#include "util/fs.h"

namespace fs = std::filesystem;

namespace lmrun::host {
namespace {

Error checkpoint_error(const fs::path& dir, const std::string& what, std::string hint = {}) {
  return Error("checkpoint " + dir.string() + ": " + what, std::move(hint));
}

void save_archive(torch::serialize::OutputArchive& archive, const fs::path& path) {
  archive.save_to(path.string());
  fsync_file(path);
}

torch::serialize::InputArchive open_archive(const fs::path& dir, const std::string& file) {
  const fs::path path = dir / file;
  if (!fs::is_regular_file(path))
    throw checkpoint_error(dir, file + " is missing", "the folder is not a complete checkpoint");
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(path.string());
  } catch (const c10::Error& e) {
    throw checkpoint_error(
        dir, file + " is corrupt or truncated: " + first_line(e.what_without_backtrace()));
  } catch (const std::exception& e) {  // the TorchScript parser's ErrorReport is not a c10::Error
    throw checkpoint_error(dir, file + " is corrupt or truncated: " + first_line(e.what()));
  }
  return archive;
}

void save_model(Model& model, const fs::path& path) {
  torch::serialize::OutputArchive archive;
  for (const auto& item : model.module().named_parameters(true))
    archive.write(item.key(), item.value());
  for (const auto& item : model.module().named_buffers(true))
    archive.write(item.key(), item.value(), /*is_buffer=*/true);
  save_archive(archive, path);
}

std::string shape_text(const at::Tensor& t) {
  std::string out = "[";
  for (std::int64_t i = 0; i < t.dim(); ++i) out += (i ? ", " : "") + std::to_string(t.size(i));
  return out + "]";
}

}  // namespace

void load_model_weights(const fs::path& dir, Model& model) {
  auto archive = open_archive(dir, "model.pt");
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
          "'" + key + "' has shape " + shape_text(stored) + ", this model's is " +
              shape_text(target),
          "the checkpoint comes from a model of another shape; check the [model] section");
    }
    target.copy_(stored);
  };
  for (auto& item : model.module().named_parameters(true)) load(item.key(), item.value(), false);
  for (auto& item : model.module().named_buffers(true)) load(item.key(), item.value(), true);
}

void write_checkpoint(const fs::path& dir, Pipeline& p, const TrainerSnapshot& s,
                      const NamedGenerators& generators, const CheckpointProvenance& provenance) {
  const fs::path parent = dir.parent_path();
  const fs::path temp =
      parent / (".tmp-" + dir.filename().string() + "-" + std::to_string(::getpid()));
  std::error_code ec;
  fs::remove_all(temp, ec);
  fs::create_directories(temp / "tokenizer");
  try {
    save_model(*p.model, temp / "model.pt");
    if (p.optimizer) {
      torch::serialize::OutputArchive archive;
      p.optimizer->save(archive);
      save_archive(archive, temp / "optimizer.pt");
    }
    torch::serialize::OutputArchive rng;
    for (const auto& [name, generator] : generators) rng.write(name, generator->get_state());
    save_archive(rng, temp / "rng.pt");
    p.tokenizer->save(temp / "tokenizer");

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
    std::ostringstream text;
    text << "# lmrun checkpoint state\n" << state << "\n";
    write_file_atomic(temp / "state.toml", text.str());
    write_file_atomic(temp / "config.toml", provenance.config_toml);
  } catch (const c10::Error& e) {
    fs::remove_all(temp, ec);
    throw checkpoint_error(dir, "cannot write: " + first_line(e.what_without_backtrace()));
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
  if (replacing) fs::remove_all(old, ec);
}

namespace {

toml::table read_state(const fs::path& dir) {
  const fs::path state_path = dir / "state.toml";
  if (!fs::is_regular_file(state_path))
    throw checkpoint_error(dir, "state.toml is missing", "the folder is not a complete checkpoint");
  toml::table state;
  try {
    state = toml::parse_file(state_path.string());
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

}  // namespace

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
  TrainerSnapshot s;
  s.step = state["step"].value_or<std::int64_t>(-1);
  if (s.step < 0) throw checkpoint_error(dir, "state.toml has no valid step");
  s.tokens_seen = state["tokens_seen"].value_or<std::int64_t>(0);
  s.elapsed_seconds = state["elapsed_seconds"].value_or(0.0);
  s.scheduler_state = state["scheduler_state"].value_or<std::string>("");
  if (const toml::array* callbacks = state["callback_states"].as_array()) {
    for (const auto& item : *callbacks) s.callback_states.push_back(item.value_or<std::string>(""));
  }
  if (const toml::table* metrics = state["metrics"].as_table()) {
    for (const auto& [name, value] : *metrics)
      s.metrics[std::string(name.str())] = value.value_or(0.0);
  }

  load_model_weights(dir, *p.model);
  if (p.optimizer) {
    auto archive = open_archive(dir, "optimizer.pt");
    try {
      p.optimizer->load(archive);
    } catch (const c10::Error& e) {
      throw checkpoint_error(dir, "optimizer.pt does not fit this optimizer: " +
                                      first_line(e.what_without_backtrace()));
    } catch (const Error& e) {
      throw checkpoint_error(dir, std::string("optimizer.pt: ") + e.what(), e.hint());
    }
  }
  auto rng = open_archive(dir, "rng.pt");
  for (const auto& [name, generator] : generators) {
    at::Tensor saved;
    if (!rng.try_read(name, saved))
      throw checkpoint_error(dir, "rng.pt has no '" + name + "' generator state");
    generator->set_state(saved);
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
