// Test helpers: loading the built plugins once, temp folders, running lmrun as a child process.
#include "support/test_support.h"

#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>

#include <gtest/gtest.h>

#include <ATen/ops/full.h>
#include <ATen/ops/randint.h>

#include "lmrun/error.h"
#include "lmrun/model.h"
#include "registry/plugin_loader.h"

namespace lmrun::test {

const host::PluginRegistry& plugin_registry() {
  static host::PluginRegistry* registry = [] {
    auto* r = new host::PluginRegistry();  // lives until exit, like the libraries behind it
    host::PluginLoader loader(*r);
    loader.load_directory(LMRUN_TEST_PLUGIN_DIR);
    if (!loader.failures().empty()) throw Error(loader.failures().front().message);
    return r;
  }();
  return *registry;
}

Params plugin_params(Kind kind, const std::string& name,
                     const std::map<std::string, Value>& overrides) {
  const Registration* registration = plugin_registry().find(kind, name);
  if (registration == nullptr) {
    throw Error(std::string(kind_name(kind)) + " '" + name + "' is not registered");
  }
  Params params;
  for (const ParamSpec& spec : registration->params) {
    if (spec.default_value) params.set(spec.name, *spec.default_value);
  }
  for (const auto& [key, value] : overrides) {
    const auto& specs = registration->params;
    const bool declared = std::any_of(specs.begin(), specs.end(),
                                      [&](const ParamSpec& spec) { return spec.name == key; });
    if (!declared) throw Error(name + " declares no parameter '" + key + "'");
    params.set(key, value);
  }
  return params;
}

void expect_decode_rejects_unknown_token(Model& model, std::int64_t vocab) {
  model.module().eval();
  auto state = model.start_decoding(1);
  model.decode(*state, at::randint(vocab, {1, 3}, at::kLong));
  const std::string message = error_of([&] {
    model.decode(*state, at::full({1, 1}, vocab, at::kLong));
  });
  const std::string expected = "token id " + std::to_string(vocab) +
                               " is outside the vocabulary of " + std::to_string(vocab);
  EXPECT_TRUE(contains(message, expected)) << message;
  EXPECT_EQ(state->length(), 3);
}

std::string error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

Error error_from(const std::function<void()>& action) {
  try {
    action();
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "expected an lmrun::Error";
  return Error("(no error)");
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::filesystem::path source_dir() { return LMRUN_TEST_SOURCE_DIR; }
std::filesystem::path fixture_dir() { return LMRUN_TEST_FIXTURE_DIR; }

TempDir::TempDir() {
  std::random_device device;
  for (int attempt = 0; attempt < 100; ++attempt) {
    auto candidate =
        std::filesystem::temp_directory_path() / ("lmrun-test-" + std::to_string(device()));
    if (std::filesystem::create_directory(candidate)) {
      path_ = candidate;
      return;
    }
  }
  throw Error("could not create a temporary folder");
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

void write_file(const std::filesystem::path& path, const std::string& text) {
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary);
  out << text;
  if (!out) throw Error("cannot write " + path.string());
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot read " + path.string());
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

namespace {
std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}
}  // namespace

namespace {

// Runs `command` (already quoted) through the shell: its standard output, and its standard error
// too unless `errors` names a file for it.
ProcessResult run_shell(const std::string& command, const std::string& errors = {}) {
  const std::string full = command + (errors.empty() ? " 2>&1" : " 2>" + shell_quote(errors));
  ProcessResult result;
  FILE* pipe = popen(full.c_str(), "r");
  if (pipe == nullptr) throw Error("cannot start: " + full);
  std::array<char, 4096> buffer;
  std::size_t n;
  while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0)
    result.output.append(buffer.data(), n);
  int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

ProcessResult run_command(const std::vector<std::string>& args, const std::filesystem::path& cwd,
                          const std::vector<std::string>& env, const std::string& stdin_file) {
  std::string command = "cd " + shell_quote(cwd.string()) + " && env";
  for (const auto& assignment : env) command += " " + shell_quote(assignment);
  command += " " + shell_quote(LMRUN_TEST_BINARY);
  for (const auto& arg : args) command += " " + shell_quote(arg);
  if (!stdin_file.empty()) command += " < " + shell_quote(stdin_file);
  return run_shell(command);
}

}  // namespace

ProgramResult run_program(const std::string& program, const std::vector<std::string>& args,
                          const std::filesystem::path& cwd) {
  TempDir dir;
  std::string command = "cd " + shell_quote(cwd.string()) + " && " + shell_quote(program);
  for (const auto& arg : args) command += " " + shell_quote(arg);
  const ProcessResult run = run_shell(command, (dir / "stderr.txt").string());
  return ProgramResult{run.exit_code, run.output, read_file(dir / "stderr.txt")};
}

ProcessResult run_lmrun(const std::vector<std::string>& args, const std::filesystem::path& cwd,
                        const std::vector<std::string>& env) {
  return run_command(args, cwd, env, "");
}

ProcessResult run_lmrun_with_input(const std::vector<std::string>& args, const std::string& input,
                                   const std::filesystem::path& cwd) {
  TempDir dir;
  write_file(dir / "stdin.txt", input);
  return run_command(args, cwd, {}, (dir / "stdin.txt").string());
}

}  // namespace lmrun::test
