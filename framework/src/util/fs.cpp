// Atomic writes: temp file, fsync, rename, fsync of the folder.
#include "util/fs.h"

#include <fcntl.h>
#include <sys/stat.h>
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
namespace {

std::string errno_text() { return std::strerror(errno); }

void sync_folder(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return;  // best effort: some file systems cannot open folders
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

namespace {

// `content` in a new temporary file beside `path`, flushed to disk; returns its name.
std::string write_temporary(const fs::path& path, const std::string& content) {
  const fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
  std::string temp = (dir / ("." + path.filename().string() + ".tmp-XXXXXX")).string();
  const int fd = ::mkstemp(temp.data());
  if (fd < 0) throw Error("cannot write " + path.string() + ": " + errno_text());
  std::size_t written = 0;
  while (written < content.size()) {
    const ssize_t n = ::write(fd, content.data() + written, content.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      const std::string reason = errno_text();
      ::close(fd);
      ::unlink(temp.c_str());
      throw Error("cannot write " + path.string() + ": " + reason);
    }
    written += static_cast<std::size_t>(n);
  }
  ::fchmod(fd, 0644);
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const std::string reason = errno_text();
    ::unlink(temp.c_str());
    throw Error("cannot write " + path.string() + ": " + reason);
  }
  return temp;
}

}  // namespace

void write_file_atomic(const fs::path& path, const std::string& content) {
  const std::string temp = write_temporary(path, content);
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    const std::string reason = errno_text();
    ::unlink(temp.c_str());
    throw Error("cannot write " + path.string() + ": " + reason);
  }
  sync_folder(path.has_parent_path() ? path.parent_path() : fs::path("."));
}

bool write_file_exclusive(const fs::path& path, const std::string& content) {
  const std::string temp = write_temporary(path, content);
  // link() fails with EEXIST instead of replacing: of several writers, exactly one succeeds.
  const int result = ::link(temp.c_str(), path.c_str());
  const int error = errno;
  ::unlink(temp.c_str());
  if (result == 0) {
    sync_folder(path.has_parent_path() ? path.parent_path() : fs::path("."));
    return true;
  }
  if (error == EEXIST) return false;
  throw Error("cannot write " + path.string() + ": " + std::strerror(error));
}

std::string read_text_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot read " + path.string());
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
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

}  // namespace lmrun::host
