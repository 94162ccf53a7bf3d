// SPDX-License-Identifier: Apache-2.0
#include "analysis/svg.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace moe {
namespace {

constexpr const char* kPalette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
constexpr double kLeft = 70, kRight = 170, kTop = 40, kBottom = 60;

const char* Colour(size_t i) { return kPalette[i % (sizeof(kPalette) / sizeof(kPalette[0]))]; }

std::string Header(double w, double h, const SvgChart& c) {
  std::string s = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{:.0f}\" height=\"{:.0f}\" "
      "font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" "
      "fill=\"white\"/>\n<text x=\"{:.0f}\" y=\"20\" font-size=\"14\" text-anchor=\"middle\">{}"
      "</text>\n",
      w, h, w / 2, SvgEscape(c.title));
  s += fmt::format("<text x=\"{:.0f}\" y=\"{:.0f}\" text-anchor=\"middle\">{}</text>\n",
                   kLeft + (w - kLeft - kRight) / 2, h - 10, SvgEscape(c.x_label));
  s += fmt::format(
      "<text x=\"14\" y=\"{:.0f}\" text-anchor=\"middle\" transform=\"rotate(-90 14 {:.0f})\">{}"
      "</text>\n",
      kTop + (h - kTop - kBottom) / 2, kTop + (h - kTop - kBottom) / 2, SvgEscape(c.y_label));
  return s;
}

double NiceMax(double v) {
  if (v <= 0) return 1;
  const double p = std::pow(10.0, std::floor(std::log10(v)));
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0}) {
    if (m * p >= v) return m * p;
  }
  return 10 * p;
}

// Y axis with 5 ticks from 0 to y_max; plot area [kLeft, w-kRight] × [kTop, h-kBottom].
std::string YAxis(double w, double h, double y_max) {
  std::string s;
  for (int i = 0; i <= 5; ++i) {
    const double v = y_max * i / 5, y = h - kBottom - (h - kTop - kBottom) * i / 5;
    s += fmt::format("<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" "
                     "stroke=\"#ddd\"/>\n<text x=\"{:.1f}\" y=\"{:.1f}\" "
                     "text-anchor=\"end\">{:.3g}</text>\n",
                     kLeft, y, w - kRight, y, kLeft - 4, y + 4, v);
  }
  return s;
}

std::string Legend(double w, const std::vector<SvgSeries>& series) {
  std::string s;
  for (size_t i = 0; i < series.size(); ++i) {
    const double y = kTop + 16.0 * static_cast<double>(i);
    s += fmt::format("<rect x=\"{:.0f}\" y=\"{:.0f}\" width=\"10\" height=\"10\" fill=\"{}\"/>"
                     "<text x=\"{:.0f}\" y=\"{:.0f}\">{}</text>\n",
                     w - kRight + 10, y, Colour(i), w - kRight + 24, y + 9,
                     SvgEscape(series[i].name));
  }
  return s;
}

}  // namespace

std::string SvgEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string SvgBarChart(const SvgChart& chart, const std::vector<std::string>& categories,
                        const std::vector<SvgSeries>& series) {
  const double group_w = std::max(24.0, 14.0 * static_cast<double>(series.size()) + 10);
  const double w = kLeft + kRight + group_w * static_cast<double>(categories.size()), h = 320;
  double vmax = 0;
  for (const SvgSeries& s : series) {
    for (double v : s.values) vmax = std::max(vmax, v);
  }
  const double y_max = NiceMax(vmax), plot_h = h - kTop - kBottom;
  std::string s = Header(w, h, chart) + YAxis(w, h, y_max);
  const double bar_w = (group_w - 8) / static_cast<double>(std::max<size_t>(1, series.size()));
  for (size_t c = 0; c < categories.size(); ++c) {
    const double x0 = kLeft + group_w * static_cast<double>(c) + 4;
    for (size_t k = 0; k < series.size(); ++k) {
      const double v = c < series[k].values.size() ? std::max(0.0, series[k].values[c]) : 0;
      const double bh = plot_h * v / y_max;
      s += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" "
                       "fill=\"{}\"><title>{} {}: {:.4g}</title></rect>\n",
                       x0 + bar_w * static_cast<double>(k), h - kBottom - bh, bar_w, bh, Colour(k),
                       SvgEscape(series[k].name), SvgEscape(categories[c]), v);
    }
    s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n",
                     x0 + (group_w - 8) / 2, h - kBottom + 14, SvgEscape(categories[c]));
  }
  return s + Legend(w, series) + "</svg>\n";
}

std::string SvgLineChart(const SvgChart& chart, const std::vector<double>& x,
                         const std::vector<SvgSeries>& series, bool log_x) {
  const double w = 640, h = 360, plot_w = w - kLeft - kRight, plot_h = h - kTop - kBottom;
  double vmax = 0;
  for (const SvgSeries& s : series) {
    for (double v : s.values) vmax = std::max(vmax, v);
  }
  const double y_max = NiceMax(vmax);
  auto tx = [&](double v) { return log_x ? std::log2(std::max(v, 1e-300)) : v; };
  double x_lo = x.empty() ? 0 : tx(x.front()), x_hi = x_lo;
  for (double v : x) x_lo = std::min(x_lo, tx(v)), x_hi = std::max(x_hi, tx(v));
  if (x_hi == x_lo) x_hi = x_lo + 1;
  auto px = [&](double v) { return kLeft + plot_w * (tx(v) - x_lo) / (x_hi - x_lo); };
  auto py = [&](double v) { return h - kBottom - plot_h * v / y_max; };
  std::string s = Header(w, h, chart) + YAxis(w, h, y_max);
  for (double v : x) {
    s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{:g}</text>\n", px(v),
                     h - kBottom + 14, v);
  }
  for (size_t k = 0; k < series.size(); ++k) {
    std::string pts;
    for (size_t i = 0; i < x.size() && i < series[k].values.size(); ++i) {
      pts += fmt::format("{:.1f},{:.1f} ", px(x[i]), py(series[k].values[i]));
      s += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3\" fill=\"{}\"><title>{} {:g}: "
                       "{:.4g}</title></circle>\n",
                       px(x[i]), py(series[k].values[i]), Colour(k), SvgEscape(series[k].name),
                       x[i], series[k].values[i]);
    }
    s += fmt::format("<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"/>\n",
                     pts, Colour(k));
  }
  return s + Legend(w, series) + "</svg>\n";
}

std::string SvgHeatmap(const SvgChart& chart, const std::vector<std::string>& row_labels,
                       const std::vector<std::string>& col_labels,
                       const std::vector<double>& values) {
  const double cell = 16, left = 110;
  const double w = left + cell * static_cast<double>(col_labels.size()) + 90;
  const double h = kTop + 20 + cell * static_cast<double>(row_labels.size()) + kBottom;
  double lo = values.empty() ? 0 : values[0], hi = lo;
  for (double v : values) lo = std::min(lo, v), hi = std::max(hi, v);
  const double span = hi > lo ? hi - lo : 1;
  std::string s = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{:.0f}\" height=\"{:.0f}\" "
      "font-family=\"sans-serif\" font-size=\"10\">\n<rect width=\"100%\" height=\"100%\" "
      "fill=\"white\"/>\n<text x=\"{:.0f}\" y=\"20\" font-size=\"14\" text-anchor=\"middle\">{}"
      "</text>\n<text x=\"{:.0f}\" y=\"{:.0f}\" text-anchor=\"middle\">{}</text>\n",
      w, h, w / 2, SvgEscape(chart.title), left + cell * col_labels.size() / 2.0, h - 10,
      SvgEscape(chart.x_label));
  const double top = kTop + 20;
  for (size_t c = 0; c < col_labels.size(); ++c) {
    s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n",
                     left + cell * (c + 0.5), top - 4, SvgEscape(col_labels[c]));
  }
  for (size_t r = 0; r < row_labels.size(); ++r) {
    s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\">{}</text>\n", left - 4,
                     top + cell * (r + 0.7), SvgEscape(row_labels[r]));
    for (size_t c = 0; c < col_labels.size(); ++c) {
      const size_t i = r * col_labels.size() + c;
      const double v = i < values.size() ? values[i] : 0, t = (v - lo) / span;
      const int red = static_cast<int>(255 - 247 * t), green = static_cast<int>(255 - 207 * t),
                blue = static_cast<int>(255 - 148 * t);
      s += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.0f}\" height=\"{:.0f}\" "
                       "fill=\"rgb({},{},{})\"><title>{} / {}: {:.4g}</title></rect>\n",
                       left + cell * c, top + cell * r, cell, cell, red, green, blue,
                       SvgEscape(row_labels[r]), SvgEscape(col_labels[c]), v);
    }
  }
  s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\">max {:.3g}</text>\n<text x=\"{:.1f}\" "
                   "y=\"{:.1f}\">min {:.3g}</text>\n<text x=\"{:.1f}\" y=\"{:.1f}\">{}</text>\n",
                   w - 85, top + 10, hi, w - 85, top + 24, lo, w - 85, top + 38,
                   SvgEscape(chart.y_label));
  return s + "</svg>\n";
}

}  // namespace moe
