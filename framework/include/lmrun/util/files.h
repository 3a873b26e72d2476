// Whole files for plugins and the host: read one, or write one atomically, so that a crash or a
// full disk never leaves half a file where a whole one was (a saved tokenizer, a checkpoint's
// metadata). POSIX; header-only like the rest of the SDK.
//
//   lmrun::write_file_atomic(folder / "vocab.txt", text);   // throws lmrun::Error naming the file
//   std::string text = lmrun::read_file(folder / "vocab.txt");
//   lmrun::require_regular_file(path);   // before a stream opens it: a FIFO would block forever
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

// What keeps `path` from being a regular file lmrun can read, as the end of a sentence: "does
// not exist", "is a folder", "is a FIFO, not a regular file", "is a character device, not a
// regular file", or errno's text; "" for a regular file (a link to one too). stat() only: a FIFO
// or a device is never opened, so this never blocks.
inline std::string regular_file_problem(const std::filesystem::path& path) {
  struct stat info;
  if (::stat(path.c_str(), &info) != 0) {
    return errno == ENOENT || errno == ENOTDIR ? "does not exist"
                                               : "cannot be read: " + files_detail::errno_text();
  }
  if (S_ISREG(info.st_mode)) return "";
  if (S_ISDIR(info.st_mode)) return "is a folder";
  if (S_ISFIFO(info.st_mode)) return "is a FIFO, not a regular file";
  if (S_ISCHR(info.st_mode)) return "is a character device, not a regular file";
  if (S_ISBLK(info.st_mode)) return "is a block device, not a regular file";
  if (S_ISSOCK(info.st_mode)) return "is a socket, not a regular file";
  return "is not a regular file";
}

// Throws lmrun::Error "PATH is a FIFO, not a regular file" (and the like: regular_file_problem)
// unless `path` names a regular file. For readers that open a stream themselves.
inline void require_regular_file(const std::filesystem::path& path, const std::string& hint = "") {
  const std::string problem = regular_file_problem(path);
  if (!problem.empty()) throw Error(path.string() + " " + problem, hint);
}

// The file's bytes. Only a regular file: a FIFO, a device or a folder is an lmrun::Error naming
// it ("cannot read PATH: it is a FIFO, not a regular file"), found without blocking (the file is
// opened non-blocking and checked before any read). Throws lmrun::Error "cannot read PATH: why",
// with `hint` when one is given.
inline std::string read_file(const std::filesystem::path& path, const std::string& hint = "") {
  const std::string where = "cannot read " + path.string() + ": ";
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    const int error = errno;
    if (error == ENOENT || error == ENOTDIR) throw Error(where + "it does not exist", hint);
    if (error == EISDIR) throw Error(where + "it is a folder", hint);
    throw Error(where + std::strerror(error), hint);
  }
  struct stat info;
  if (::fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
    ::close(fd);
    throw Error(where + "it " + regular_file_problem(path), hint);
  }
  std::string text;
  if (info.st_size > 0) text.reserve(static_cast<std::size_t>(info.st_size));
  char buffer[1 << 16];
  while (true) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      const std::string reason = files_detail::errno_text();
      ::close(fd);
      throw Error(where + "a read failed: " + reason, hint);
    }
    text.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return text;
}

}  // namespace lmrun
