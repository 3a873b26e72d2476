// Whole files for plugins and the host: read one, or write one atomically, so that a crash or a
// full disk never leaves half a file where a whole one was (a saved tokenizer, a checkpoint's
// metadata). POSIX; header-only like the rest of the SDK.
//
//   lmrun::write_file_atomic(folder / "vocab.txt", text);   // throws lmrun::Error naming the file
//   std::string text = lmrun::read_file(folder / "vocab.txt");
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>

#include "lmrun/error.h"

namespace lmrun {
namespace files_detail {

inline std::string errno_text() { return std::strerror(errno); }

inline std::filesystem::path folder_of(const std::filesystem::path& path) {
  return path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
}

// Best effort: some file systems cannot open folders.
inline void sync_folder(const std::filesystem::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

}  // namespace files_detail

// `content` in a new hidden temporary file beside `path`, flushed to disk; returns its name.
inline std::string write_temporary_file(const std::filesystem::path& path, std::string_view content,
                                        mode_t mode = 0644) {
  using files_detail::errno_text;
  std::string temp =
      (files_detail::folder_of(path) / ("." + path.filename().string() + ".tmp-XXXXXX")).string();
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
  ::fchmod(fd, mode);
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const std::string reason = errno_text();
    ::unlink(temp.c_str());
    throw Error("cannot write " + path.string() + ": " + reason);
  }
  return temp;
}

// Writes `content` to a temporary file beside `path`, flushes it to disk, and renames it over
// `path`: a reader sees the old file or the new one, never a part. `mode`: its permissions.
inline void write_file_atomic(const std::filesystem::path& path, std::string_view content,
                              mode_t mode = 0644) {
  const std::string temp = write_temporary_file(path, content, mode);
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    const std::string reason = files_detail::errno_text();
    ::unlink(temp.c_str());
    throw Error("cannot write " + path.string() + ": " + reason);
  }
  files_detail::sync_folder(files_detail::folder_of(path));
}

// The file's bytes. Throws lmrun::Error "cannot read PATH", with `hint` when one is given.
inline std::string read_file(const std::filesystem::path& path, const std::string& hint = "") {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw Error("cannot read " + path.string() + ": it is a folder", hint);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot read " + path.string(), hint);
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw Error("cannot read " + path.string() + ": a read failed", hint);
  return text.str();
}

}  // namespace lmrun
