// Files lmrun writes: atomically, so that a crash never leaves a half-written file in place.
#pragma once

#include <filesystem>
#include <string>

namespace lmrun::host {

// Writes `content` to a temporary file beside `path`, flushes it to disk, and renames it over
// `path`. Throws lmrun::Error naming the file.
void write_file_atomic(const std::filesystem::path& path, const std::string& content);

// Writes `content` to `path` only if no file is there (atomically, as above); false when one is.
// Of several processes racing to create the same file, exactly one gets true.
bool write_file_exclusive(const std::filesystem::path& path, const std::string& content);

std::string read_text_file(const std::filesystem::path& path);

// 16 hex digits of FNV-1a 64: a fingerprint of a config's text, not a cryptographic hash.
std::string hash_text(const std::string& text);

}  // namespace lmrun::host
