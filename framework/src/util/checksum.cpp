// CRC-32 through Boost.CRC.
#include "util/checksum.h"

#include <cstdio>

#include <boost/crc.hpp>

namespace lmrun::host {

std::string checksum_text(std::string_view bytes) {
  boost::crc_32_type crc;
  crc.process_bytes(bytes.data(), bytes.size());
  char buffer[16];
  std::snprintf(buffer, sizeof buffer, "%08x", static_cast<unsigned>(crc.checksum()));
  return std::string("crc32:") + buffer;
}

}  // namespace lmrun::host
