// Checksums of the files lmrun saves (checkpoints), so that a flipped bit or a truncated file is
// an error when it is read back rather than NaN losses or blank samples.
#pragma once

#include <string>
#include <string_view>

namespace lmrun::host {

// "crc32:" and 8 hex digits: CRC-32 (the zip and PNG polynomial, Boost.CRC) of `bytes`.
std::string checksum_text(std::string_view bytes);

}  // namespace lmrun::host
