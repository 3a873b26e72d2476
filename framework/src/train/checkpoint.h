// clang-format off
// Checkpoints: a folder per checkpoint, written atomically (temporary folder, fsync, rename), so a
// crash mid-write leaves the previous one intact.
//
//   <run>/checkpoints/<name>/
//     model.pt      parameters and buffers by their flat module names (the model's keys)
//     optimizer.pt  optimizer state (the optimizer plugin's own layout)
//     rng.pt        generator states: data sampling, evaluation sampling, LibTorch's global one
//     state.toml    format version, provenance (lmrun and plugin versions, config hash), step,
//                   tokens seen, elapsed time, scheduler and callback state, latest metrics, and
//                   the CRC-32 of every other file (checked when read)
//     tokenizer/    the tokenizer's own files
//     config.toml   the resolved experiment
// clang-format on
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Generator.h>

#include "lmrun/common.h"
#include "train/pipeline.h"

namespace lmrun::host {

inline constexpr std::int64_t kCheckpointFormat = 1;

// The trainer's progress beyond the plugin objects.
struct TrainerSnapshot {
  std::int64_t step = 0;
  std::int64_t tokens_seen = 0;
  double elapsed_seconds = 0.0;
  std::string scheduler_state;
  std::vector<std::string> callback_states;  // in experiment order
  Metrics metrics;                           // latest value of each metric
};

// Named generators whose states a checkpoint saves and restores. Names must be valid TorchScript
// identifiers (the archive is a TorchScript module): "global" is not.
using NamedGenerators = std::vector<std::pair<std::string, at::Generator*>>;

struct CheckpointProvenance {
  std::string config_toml;           // the resolved experiment
  std::string config_hash;           // of config_toml
  std::vector<std::string> plugins;  // "model transformer (transformer 0.1.0)"
  // [plugins] override as applied: "model.transformer from mine 0.2 (/b.so), replacing ..."
  std::vector<std::string> overrides;
};

// Writes `dir` (its parent must exist) atomically, replacing an existing checkpoint of that name.
void write_checkpoint(const std::filesystem::path& dir, Pipeline& pipeline,
                      const TrainerSnapshot& snapshot, const NamedGenerators& generators,
                      const CheckpointProvenance& provenance);

// Restores model, optimizer (when the pipeline has one) and generators; returns the snapshot.
// Throws lmrun::Error naming the checkpoint and the file: a missing or corrupt file (its checksum
// differs from state.toml's), a newer format, a value of the wrong type or out of range, a
// parameter whose shape differs from the model's or that holds NaN or infinity.
TrainerSnapshot read_checkpoint(const std::filesystem::path& dir, Pipeline& pipeline,
                                const NamedGenerators& generators);

// The step a checkpoint was written at, checked as read_checkpoint checks it.
std::int64_t read_checkpoint_step(const std::filesystem::path& dir);

// The ModelContext the checkpoint's model was built for.
ModelContext read_model_context(const std::filesystem::path& dir);

// How the run's conversations render a message (Dataset::chat_format); undefined for a run on
// other data, or one from before conversations.
ChatFormat read_chat_format(const std::filesystem::path& dir);

// A classifier checkpoint's label names in id order: those saved, or "0".."C-1" for a checkpoint
// written before names were saved. Empty for a language model.
std::vector<std::string> read_class_names(const std::filesystem::path& dir);

// Every file state.toml lists against its checksum; throws lmrun::Error naming the first that
// differs or is missing. A checkpoint written before checksums passes.
void verify_checkpoint(const std::filesystem::path& dir);

// Model weights only (generate, eval): the same checks as read_checkpoint.
void load_model_weights(const std::filesystem::path& dir, Model& model);

// The checkpoint a run folder (or a checkpoint folder itself) designates: `dir` if it holds
// state.toml; else <dir>/checkpoints/last; else the newest checkpoint by step. Throws if none.
std::filesystem::path find_checkpoint(const std::filesystem::path& dir);

}  // namespace lmrun::host
