// libedit behind LineEditor. libedit's own history file format escapes characters (vis(3)); this
// keeps its own plain one, a line an entry, written atomically so a crash never loses the file.
#include "cli/line_editor.h"

#include <editline/readline.h>

#include <cstdlib>
#include <fstream>
#include <iostream>

#include "lmrun/error.h"
#include "lmrun/util/files.h"

namespace lmrun::host {

std::filesystem::path LineEditor::default_history_file() {
  if (const char* file = std::getenv("LMRUN_HISTORY")) return file;
  const char* home = std::getenv("HOME");
  if (home == nullptr || *home == '\0') return {};
  return std::filesystem::path(home) / ".lmrun_history";
}

LineEditor::LineEditor(std::filesystem::path history_file, std::size_t keep)
    : file_(std::move(history_file)), keep_(keep) {
  rl_readline_name = "lmrun";
  rl_bind_key('\t', rl_insert);  // a tab is text here, not a file-name completion
  using_history();
  if (file_.empty()) return;
  std::ifstream in(file_);
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    history_.push_back(line);
    add_history(line.c_str());
  }
}

void LineEditor::save() const {
  if (file_.empty()) return;
  std::string text;
  const std::size_t from = history_.size() > keep_ ? history_.size() - keep_ : 0;
  for (std::size_t i = from; i < history_.size(); ++i) text += history_[i] + "\n";
  try {
    write_file_atomic(file_, text, 0600);
  } catch (const Error& e) {
    std::cerr << "lmrun: the history was not saved: " << e.what() << "\n";
  }
}

bool LineEditor::read(const std::string& prompt, std::string& line) {
  char* got = readline(prompt.c_str());
  if (got == nullptr) return false;
  line = got;
  std::free(got);
  const bool blank = line.find_first_not_of(" \t") == std::string::npos;
  if (!blank && (history_.empty() || history_.back() != line)) {
    history_.push_back(line);
    add_history(line.c_str());
    save();
  }
  return true;
}

}  // namespace lmrun::host
