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
  // A regular file only: a FIFO would block the read forever (issue 21).
  const std::string problem = regular_file_problem(file);
  if (!problem.empty())
    throw Error(option + " " + file.string() + " " + problem, "pass a text file, or - for stdin");
  try {
    return read_file(file);
  } catch (const Error& error) {
    throw error.with_context(option);
  }
}

void check_output_file(const fs::path& file, const std::string& option) {
  const std::string named = option + " " + file.string();
  const fs::path folder = files_detail::folder_of(file);
  const std::string folder_problem = regular_file_problem(folder);
  if (folder_problem != "is a folder") {
    throw Error(named + ": its folder " + folder.string() + " " +
                    (folder_problem.empty() ? "is a file" : folder_problem),
                "create the folder first, or write elsewhere");
  }
  if (regular_file_problem(file) == "is a folder")
    throw Error(named + " is a folder", "name a file to write");
  try {
    ::unlink(write_temporary_file(file, "").c_str());  // EACCES, EROFS, ENOSPC: now, not later
  } catch (const Error& error) {
    throw Error(named + ": " + error.what(), "write somewhere this user can");
  }
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
