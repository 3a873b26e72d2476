// Statistics and text histograms of tensors (lmrun inspect).
#include "util/tensor_stats.h"

#include <ATen/ops/histc.h>

#include <algorithm>
#include <cstdio>

namespace lmrun::host {

std::string shape_text(c10::IntArrayRef shape) {
  std::string out = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

std::string format_number(double v) {
  char text[32];
  std::snprintf(text, sizeof text, " %10.4g", v);
  return text;
}

std::string histogram(const at::Tensor& values, double lo, double hi) {
  static const char* const kLevels[] = {"▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};
  constexpr int kBins = 16;
  if (!(hi > lo)) return "(all " + format_number(lo) + ")";
  const at::Tensor counts = at::histc(values, kBins, lo, hi).to(at::kDouble).contiguous();
  const double* c = counts.data_ptr<double>();
  const double fullest = *std::max_element(c, c + kBins);
  std::string out;
  for (int i = 0; i < kBins; ++i) {
    if (c[i] <= 0) {
      out += ' ';
      continue;
    }
    const int level = std::clamp(static_cast<int>(c[i] / fullest * 8.0 + 0.999) - 1, 0, 7);
    out += kLevels[level];
  }
  return out;
}

std::string statistics(const at::Tensor& tensor) {
  const at::Tensor all = tensor.detach().to(at::kCPU, at::kFloat).reshape({-1});
  if (all.numel() == 0) return "(empty)";
  // The statistics of the finite values; NaN and infinities are counted apart, so that one of
  // them neither hides the rest nor breaks the histogram's range.
  const at::Tensor finite = all.isfinite();
  const at::Tensor x = all.masked_select(finite);
  const auto nans = all.isnan().sum().item<std::int64_t>();
  const auto infs = all.numel() - x.numel() - nans;
  std::string tail;
  if (nans + infs > 0) {
    tail = "  (+" + std::to_string(nans) + " nan, " + std::to_string(infs) + " inf)";
  }
  if (x.numel() == 0) return "(no finite values)" + tail;
  const double lo = x.min().item<double>(), hi = x.max().item<double>();
  const double zeros = x.eq(0).sum().item<double>() / static_cast<double>(all.numel());
  char share[16];
  std::snprintf(share, sizeof share, "%6.1f%%", 100.0 * zeros);
  return format_number(x.mean().item<double>()) +
         format_number(x.numel() > 1 ? x.std().item<double>() : 0.0) + format_number(lo) +
         format_number(hi) + "  " + share + "  " + histogram(x, lo, hi) + tail;
}

}  // namespace lmrun::host
