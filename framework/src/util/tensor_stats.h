// Summaries of a tensor's values for `lmrun inspect`: one line of statistics and a text
// histogram.
//
//   statistics(weight);   // "   0.01113     0.715    -3.301     4.392     0.0%  ▁▁▂▅██▄▂▁▁"
#pragma once

#include <string>

#include <ATen/core/Tensor.h>

namespace lmrun::host {

// "[65, 128]": a shape in messages.
std::string shape_text(c10::IntArrayRef shape);

// " %10.4g": a column of numbers of any magnitude, a space before each.
std::string format_number(double v);

// 16 bins from lo to hi (at::histc), each a block ▁..█ whose height is its count over the
// fullest bin's, rounded up, so any non-empty bin shows; an empty bin is a space. lo == hi: the
// one value, said in words.
std::string histogram(const at::Tensor& values, double lo, double hi);

// Mean, standard deviation, min and max (format_number each), the percentage of values that are
// exactly zero, and the histogram, of the finite values of `tensor` as float, then
// "(+N nan, M inf)" when it has others. "(empty)" for none.
std::string statistics(const at::Tensor& tensor);

}  // namespace lmrun::host
