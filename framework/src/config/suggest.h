// "did you mean n_layer?": the nearest candidate by edit distance, for unknown keys and names.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace lmrun::host {

// Optimal-string-alignment distance: insertions, deletions, substitutions, adjacent swaps.
std::size_t edit_distance(std::string_view a, std::string_view b);

// The closest candidate if it is close enough to be a likely typo, else "".
std::string nearest(std::string_view word, const std::vector<std::string>& candidates);

// " (did you mean X?)" or "".
std::string did_you_mean(std::string_view word, const std::vector<std::string>& candidates);

// "a, b, c"
std::string join(const std::vector<std::string>& items, std::string_view separator = ", ");

}  // namespace lmrun::host
