// Line editing and history for `lmrun generate --interactive` on a terminal, through libedit
// (BSD-licensed, Debian's libedit-dev): arrow keys, Ctrl-A/E/K/W, Ctrl-R search, and the lines of
// earlier sessions, kept in a history file.
//
//   LineEditor editor(LineEditor::default_history_file());
//   std::string line;
//   while (editor.read("> ", line)) { ... }   // false at end of input (Ctrl-D)
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

namespace lmrun::host {

class LineEditor {
 public:
  // $LMRUN_HISTORY when set (empty: no file), else ~/.lmrun_history; empty without a home.
  static std::filesystem::path default_history_file();

  // Loads `history_file`'s lines (a missing file is an empty history; empty path: none kept).
  explicit LineEditor(std::filesystem::path history_file, std::size_t keep = 1000);
  ~LineEditor() = default;
  LineEditor(const LineEditor&) = delete;
  LineEditor& operator=(const LineEditor&) = delete;

  // Shows `prompt`, reads one edited line into `line`; false at the end of input. A line that is
  // not blank and not the previous one joins the history, and the file is saved at once
  // (atomically, readable by its owner alone), so Ctrl-C loses nothing; a failure to save is
  // reported on stderr, not thrown. Several sessions at once: the last to save wins.
  bool read(const std::string& prompt, std::string& line);

 private:
  void save() const;

  std::filesystem::path file_;
  std::size_t keep_;
  std::vector<std::string> history_;
};

}  // namespace lmrun::host
