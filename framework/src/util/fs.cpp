// Exclusive writes (temp file, fsync, link), command-line inputs and text fingerprints.
#include "util/fs.h"

#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>

#include "lmrun/error.h"

namespace fs = std::filesystem;

namespace lmrun::host {

bool write_file_exclusive(const fs::path& path, const std::string& content) {
  const std::string temp = write_temporary_file(path, content);
  // link() fails with EEXIST instead of replacing: of several writers, exactly one succeeds.
  const int result = ::link(temp.c_str(), path.c_str());
  const int error = errno;
  ::unlink(temp.c_str());
  if (result == 0) {
    files_detail::sync_folder(files_detail::folder_of(path));
    return true;
  }
  if (error == EEXIST) return false;
  throw Error("cannot write " + path.string() + ": " + std::strerror(error));
}

std::string hash_text(const std::string& text) {
  std::uint64_t hash = 1469598103934665603ull;
  for (unsigned char c : text) hash = (hash ^ c) * 1099511628211ull;
  char buffer[17];
  std::snprintf(buffer, sizeof buffer, "%016" PRIx64, hash);
  return buffer;
}

std::string read_input(const fs::path& file, const std::string& option) {
  std::ostringstream text;
  if (file == "-") {
    text << std::cin.rdbuf();
    return text.str();
  }
  std::error_code ec;
  if (fs::is_directory(file, ec)) {
    throw Error(option + " " + file.string() + " is a folder", "pass a text file, or - for stdin");
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error("cannot read " + option + " " + file.string());
  text << in.rdbuf();
  return text.str();
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(std::move(line));
  }
  return lines;
}

void fsync_file(const fs::path& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) return;
  ::fsync(fileno(file));
  std::fclose(file);
}

std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

}  // namespace lmrun::host
