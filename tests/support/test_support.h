// Shared test helpers: the built plugins behind a registry, temporary folders, running lmrun.
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "lmrun/params.h"
#include "lmrun/registry.h"

#include "registry/plugin_registry.h"

namespace lmrun {
class Model;
}

namespace lmrun::test {

// Every plugin in the build's plugin folder, loaded once per test process. Fails the test (throws)
// if any of them fails to load.
const host::PluginRegistry& plugin_registry();

// A built plugin's params as the host would pass them: every declared default, then `overrides`.
// An override naming no declared parameter throws lmrun::Error (a typo in a test fails loudly).
Params plugin_params(Kind kind, const std::string& name,
                     const std::map<std::string, Value>& overrides = {});

// The message of the lmrun::Error `action` throws, or "(no error)" when it throws none.
std::string error_of(const std::function<void()>& action);

// The lmrun::Error `action` throws (hint included); a test failure when it throws none.
Error error_from(const std::function<void()>& action);

bool contains(const std::string& text, const std::string& part);

// Conformance for a language model plugin's single-sequence decoding: after 3 tokens, feeding the
// id `vocab` is an lmrun::Error naming it, and the state keeps its length. Eval mode is set.
void expect_decode_rejects_unknown_token(Model& model, std::int64_t vocab);

// The repository root and the build's fixture plugin folder.
std::filesystem::path source_dir();
std::filesystem::path fixture_dir();

// A fresh empty folder under the system temp dir, removed when the object dies.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

void write_file(const std::filesystem::path& path, const std::string& text);
std::string read_file(const std::filesystem::path& path);

struct ProcessResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

// Runs the built lmrun with `args` in `cwd`, with extra environment assignments ("K=V").
ProcessResult run_lmrun(const std::vector<std::string>& args,
                        const std::filesystem::path& cwd = std::filesystem::current_path(),
                        const std::vector<std::string>& env = {});

// Runs `program` (a path, or a name on PATH) with `args` in `cwd`: `output` holds its standard
// output alone, `errors` its standard error. For the real readers the interchange tests call.
struct ProgramResult {
  int exit_code = -1;
  std::string output;
  std::string errors;
};
ProgramResult run_program(const std::string& program, const std::vector<std::string>& args,
                          const std::filesystem::path& cwd = std::filesystem::current_path());

// The same with `input` as its standard input (a pipe's lines: `lmrun chat`, --interactive).
ProcessResult run_lmrun_with_input(const std::vector<std::string>& args, const std::string& input,
                                   const std::filesystem::path& cwd);

}  // namespace lmrun::test
