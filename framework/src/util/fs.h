// Files lmrun writes: atomically, so that a crash never leaves a half-written file in place.
// lmrun::write_file_atomic and lmrun::read_file come from the SDK (lmrun/util/files.h), which
// plugins share.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "lmrun/util/files.h"

namespace lmrun::host {

// Writes `content` to `path` only if no file is there (atomically, as above); false when one is.
// Of several processes racing to create the same file, exactly one gets true.
bool write_file_exclusive(const std::filesystem::path& path, const std::string& content);

// The text a command-line option names: a file, or stdin for "-". Throws lmrun::Error naming the
// option ("--input x.txt is a folder", "cannot read --input x.txt").
std::string read_input(const std::filesystem::path& file, const std::string& option);

// Checks, before the work that produces it, that `file` (named by `option`, "-o") can be written:
// its folder exists and takes a new file (one is created there and removed), and `file` is not a
// folder. Throws lmrun::Error naming the option and the path. A write after minutes of sampling
// should not be the first to find a missing folder.
void check_output_file(const std::filesystem::path& file, const std::string& option);

// The lines of `text`, each without its newline or the CR of a CRLF ending.
std::vector<std::string> lines_of(const std::string& text);

// Flushes a written file to disk, best effort (before a folder holding it is renamed into place).
void fsync_file(const std::filesystem::path& path);

// The first line of `text`: LibTorch's messages without the backtrace that follows.
std::string first_line(const std::string& text);

// 16 hex digits of FNV-1a 64: a fingerprint of a config's text, not a cryptographic hash.
std::string hash_text(const std::string& text);

}  // namespace lmrun::host
