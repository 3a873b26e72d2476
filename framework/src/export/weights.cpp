#include "export/weights.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <set>
#include <utility>

#include <c10/util/Exception.h>
#include <toml++/toml.h>
#include <torch/serialize/input-archive.h>
#include <torch/utils.h>

#include "export/safetensors.h"
#include "export/torch_file.h"
#include "lmrun/error.h"
#include "train/checkpoint.h"
#include "util/fs.h"
#include "util/tensor_stats.h"

namespace fs = std::filesystem;

namespace lmrun::host {
namespace {

constexpr const char* kHint =
    "init_from takes a .safetensors file (or a folder with model.safetensors), a nanoGPT ckpt.pt, "
    "or an lmrun run, checkpoint or export folder";

// "a, b, c and 4 more"
std::string some(const std::vector<std::string>& names, std::size_t shown = 8) {
  std::string out;
  for (std::size_t i = 0; i < names.size() && i < shown; ++i) out += (i ? ", " : "") + names[i];
  if (names.size() > shown) out += " and " + std::to_string(names.size() - shown) + " more";
  return out;
}

std::string first_bytes(const fs::path& path, std::size_t n) {
  std::ifstream in(path, std::ios::binary);
  std::string bytes(n, '\0');
  in.read(bytes.data(), static_cast<std::streamsize>(n));
  bytes.resize(static_cast<std::size_t>(in.gcount()));
  return bytes;
}

// The [tokenizer] type of a run's or checkpoint's config.toml; empty when unreadable.
std::string tokenizer_type_of(const fs::path& config) {
  try {
    const toml::table table = toml::parse_file(config.string());
    return table["tokenizer"]["type"].value_or(std::string());
  } catch (const std::exception&) {
    return {};
  }
}

void take_tokenizer(WeightsSource& source, const fs::path& dir) {
  if (fs::is_directory(dir / "tokenizer") && fs::is_regular_file(dir / "config.toml")) {
    source.tokenizer_dir = dir / "tokenizer";
    source.tokenizer_type = tokenizer_type_of(dir / "config.toml");
  }
}

WeightsSource read_safetensors_source(const fs::path& file) {
  WeightsSource source;
  source.file = file;
  source.format = "safetensors";
  Safetensors st = read_safetensors(file);
  source.tensors = std::move(st.tensors);
  const auto stated = st.metadata.find("lmrun.layout");
  if (stated != st.metadata.end()) source.layouts.push_back(stated->second);
  for (const char* layout : {kOwnLayout, "gpt2"}) {
    if (std::find(source.layouts.begin(), source.layouts.end(), layout) == source.layouts.end())
      source.layouts.push_back(layout);
  }
  take_tokenizer(source, file.parent_path());
  return source;
}

WeightsSource read_torch_source(const fs::path& file) {
  WeightsSource source;
  source.file = file;
  source.format = "nanoGPT checkpoint";
  source.tensors = state_dict_entries(read_torch_file(file));
  if (source.tensors.empty()) {
    throw Error(file.string() +
                    " holds no state dict (a dict of names to tensors, or one under "
                    "\"model\" or \"state_dict\")",
                kHint);
  }
  source.layouts = {"nanogpt", kOwnLayout};
  return source;
}

WeightsSource read_checkpoint_source(const fs::path& dir) {
  const fs::path checkpoint = find_checkpoint(dir);
  WeightsSource source;
  source.file = checkpoint / "model.pt";
  source.format = "lmrun checkpoint";
  source.layouts = {kOwnLayout};
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(source.file.string());
  } catch (const std::exception& e) {
    throw Error(source.file.string() + " is corrupt or truncated: " + first_line(e.what()), kHint);
  }
  for (const std::string& key : archive.keys()) {
    at::Tensor value;
    if (archive.try_read(key, value)) source.tensors.push_back({key, value});
  }
  take_tokenizer(source, checkpoint);
  return source;
}

}  // namespace

WeightsSource read_weights(const fs::path& path) {
  if (!fs::exists(path)) throw Error("init_from " + path.string() + " does not exist", kHint);
  if (fs::is_directory(path)) {
    if (fs::is_regular_file(path / "model.safetensors"))
      return read_safetensors_source(path / "model.safetensors");
    if (fs::is_regular_file(path / "ckpt.pt")) return read_torch_source(path / "ckpt.pt");
    if (fs::is_regular_file(path / "state.toml") || fs::is_directory(path / "checkpoints"))
      return read_checkpoint_source(path);
    throw Error("init_from " + path.string() +
                    " is a folder without weights (no model.safetensors, ckpt.pt, or checkpoint)",
                kHint);
  }
  const std::string head = first_bytes(path, 16);
  if (head.size() >= 2 && head[0] == 'P' && head[1] == 'K') return read_torch_source(path);
  if (looks_like_safetensors(head)) return read_safetensors_source(path);
  throw Error("init_from " + path.string() +
                  " is not a weights file (neither safetensors nor a "
                  "torch.save zip)",
              kHint);
}

InitReport load_weights(Model& model, const WeightsSource& source, bool strict) {
  std::map<std::string, at::Tensor> targets;
  for (const auto& item : model.module().named_parameters(true)) targets[item.key()] = item.value();
  for (const auto& item : model.module().named_buffers(true)) targets[item.key()] = item.value();

  std::set<std::string> offered;
  for (const WeightLayout& layout : model.weight_layouts()) offered.insert(layout.name);
  InitReport best;
  std::vector<NamedTensor> best_tensors;
  std::int64_t best_score = -1;
  for (const std::string& layout : source.layouts) {
    if (layout != kOwnLayout && offered.count(layout) == 0) continue;
    std::vector<NamedTensor> mapped =
        layout == kOwnLayout ? source.tensors : model.import_weights(layout, source.tensors);
    std::int64_t score = 0;
    for (const NamedTensor& t : mapped) {
      const auto it = targets.find(t.name);
      if (it != targets.end() && it->second.sizes().equals(t.value.sizes())) ++score;
    }
    if (score > best_score) {
      best_score = score;
      best = InitReport{};
      best.layout = layout;
      best_tensors = std::move(mapped);
    }
  }
  if (best_score <= 0) {
    std::vector<std::string> theirs, ours;
    for (const NamedTensor& t : source.tensors) theirs.push_back(t.name);
    for (const auto& [name, value] : targets) ours.push_back(name);
    throw Error("init_from " + source.file.string() + " (" + source.format + ", " +
                    std::to_string(source.tensors.size()) +
                    " tensors) has nothing this model can take: its names (" + some(theirs, 5) +
                    ") match none of the model's (" + some(ours, 5) + ") in shape",
                "the weights come from another architecture; set [model] to theirs");
  }

  std::set<std::string> seen;
  std::vector<std::pair<at::Tensor, at::Tensor>> copies;  // (target, value)
  for (const NamedTensor& t : best_tensors) {
    const auto it = targets.find(t.name);
    if (it == targets.end()) {
      best.unexpected.push_back(t.name);
      continue;
    }
    seen.insert(t.name);
    if (!it->second.sizes().equals(t.value.sizes())) {
      best.mismatched.push_back(t.name + ": file " + shape_text(t.value.sizes()) + ", model " +
                                shape_text(it->second.sizes()));
      continue;
    }
    copies.emplace_back(it->second, t.value);
  }
  for (const auto& [name, value] : targets)
    if (seen.count(name) == 0) best.missing.push_back(name);

  if (strict && !best.complete()) {
    std::string what = "init_from " + source.file.string() + " (" + source.format + ", layout " +
                       best.layout + ") does not fit the model:";
    if (!best.mismatched.empty())
      what += " " + std::to_string(best.mismatched.size()) + " of another shape (" +
              some(best.mismatched) + ");";
    if (!best.missing.empty())
      what += " " + std::to_string(best.missing.size()) + " missing (" + some(best.missing) + ");";
    if (!best.unexpected.empty())
      what += " " + std::to_string(best.unexpected.size()) + " not in the model (" +
              some(best.unexpected) + ");";
    what.pop_back();
    throw Error(what,
                "set [model] to the architecture the weights come from, or model.init_strict = "
                "false to load what matches and keep the rest as initialised");
  }
  torch::NoGradGuard no_grad;
  for (auto& [target, value] : copies) target.copy_(value);
  best.loaded = static_cast<std::int64_t>(copies.size());
  return best;
}

std::vector<std::string> describe(const InitReport& report, const WeightsSource& source) {
  std::vector<std::string> lines;
  lines.push_back("init from " + source.file.string() + " (" + source.format + ", layout " +
                  report.layout + "): " + std::to_string(report.loaded) + " tensors loaded");
  if (!report.mismatched.empty())
    lines.push_back("  not loaded, another shape: " + some(report.mismatched, 100));
  if (!report.missing.empty())
    lines.push_back("  not in the file, kept as initialised: " + some(report.missing, 100));
  if (!report.unexpected.empty())
    lines.push_back("  in the file, not in the model: " + some(report.unexpected, 100));
  return lines;
}

bool matches_pattern(const std::string& name, const std::string& pattern) {
  if (pattern.find('*') == std::string::npos) {
    return name == pattern ||
           (name.size() > pattern.size() && name.compare(0, pattern.size(), pattern) == 0 &&
            name[pattern.size()] == '.');
  }
  // Glob with '*' only: greedy match with backtracking to the last star.
  std::size_t n = 0, p = 0, star = std::string::npos, resume = 0;
  while (n < name.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      resume = n;
    } else if (p < pattern.size() && pattern[p] == name[n]) {
      ++p;
      ++n;
    } else if (star != std::string::npos) {
      p = star + 1;
      n = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

FreezeReport freeze_parameters(Model& model, const std::vector<std::string>& patterns) {
  FreezeReport report;
  std::vector<std::string> names;
  std::vector<bool> used(patterns.size(), false);
  for (auto& item : model.module().named_parameters(true)) {
    names.push_back(item.key());
    bool hit = false;
    for (std::size_t i = 0; i < patterns.size(); ++i) {
      if (matches_pattern(item.key(), patterns[i])) used[i] = hit = true;
    }
    if (!hit) continue;
    item.value().set_requires_grad(false);
    report.frozen.push_back(item.key());
    report.frozen_parameters += item.value().numel();
  }
  for (std::size_t i = 0; i < patterns.size(); ++i) {
    if (!used[i]) {
      throw Error("model.freeze: \"" + patterns[i] + "\" matches no parameter of the model",
                  "the model's parameters: " + some(names, 12));
    }
  }
  return report;
}

}  // namespace lmrun::host
