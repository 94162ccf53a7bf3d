// SPDX-License-Identifier: Apache-2.0
// Minimal hand-written SVG charts for the analysis reports (no plotting library): grouped bar
// charts, line charts and heatmaps. Output is a complete standalone SVG document.
#pragma once

#include <string>
#include <vector>

namespace moe {

struct SvgSeries {
  std::string name;
  std::vector<double> values;  // one per category / x value
};

struct SvgChart {
  std::string title;
  std::string x_label;
  std::string y_label;
};

// Grouped bars: one group per category, one bar per series. Values ≥ 0.
std::string SvgBarChart(const SvgChart& chart, const std::vector<std::string>& categories,
                        const std::vector<SvgSeries>& series);
// Lines with markers over shared x values (x drawn on a log2 axis when `log_x`).
std::string SvgLineChart(const SvgChart& chart, const std::vector<double>& x,
                         const std::vector<SvgSeries>& series, bool log_x);
// values[r * n_cols + c]; colour scale from white (min) to dark blue (max).
std::string SvgHeatmap(const SvgChart& chart, const std::vector<std::string>& row_labels,
                       const std::vector<std::string>& col_labels,
                       const std::vector<double>& values);
// Escapes &, <, >, " for SVG text.
std::string SvgEscape(const std::string& s);

}  // namespace moe
