// Text scatter plots for the markdown report ("Speed vs Quality", "Memory vs
// Performance"): one marker character per measured point on a grid whose axes start at
// zero, so distances between variants read true.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

namespace smallcoder::bench {

struct ChartPoint {
  char marker;  // one printable character, distinct per point
  double x, y;
};

// The smallest of 1, 2, 2.5, 5 x 10^k that is >= v (1 when v is not positive).
inline double nice_axis_max(double v) {
  if (!(v > 0) || !std::isfinite(v)) return 1.0;
  const double decade = std::pow(10.0, std::floor(std::log10(v)));
  for (double step : {1.0, 2.0, 2.5, 5.0, 10.0}) {
    if (step * decade >= v * (1 - 1e-12)) return step * decade;
  }
  return 10 * decade;
}

inline std::string axis_label(double v) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%g", v);
  return buffer;
}

// Grid cell of a value on an axis of `cells` cells from 0 to `max`.
inline int chart_cell(double v, double max, int cells) {
  const long cell = std::lround(std::max(0.0, v) / max * (cells - 1));
  return static_cast<int>(std::min<long>(cell, cells - 1));
}

// Draws the points; `x_max` / `y_max` <= 0 pick a nice maximum from the data. A point
// whose cell is taken moves to the nearest free cell in its row (the legend under the
// chart gives the exact values). Odd sizes put the middle ticks exactly on a cell.
inline std::string text_scatter(const std::vector<ChartPoint>& points, const std::string& x_label,
                                const std::string& y_label, double x_max = 0, double y_max = 0, int width = 57,
                                int height = 15) {
  double data_x = 0, data_y = 0;
  for (const ChartPoint& p : points) {
    data_x = std::max(data_x, p.x);
    data_y = std::max(data_y, p.y);
  }
  if (x_max <= 0) x_max = nice_axis_max(data_x);
  if (y_max <= 0) y_max = nice_axis_max(data_y);
  std::vector<std::string> grid(static_cast<std::size_t>(height), std::string(static_cast<std::size_t>(width), ' '));
  for (const ChartPoint& p : points) {
    std::string& row = grid[static_cast<std::size_t>(height - 1 - chart_cell(p.y, y_max, height))];
    const int col = chart_cell(p.x, x_max, width);
    for (int offset = 0; offset < width; ++offset) {
      const int right = col + offset, left = col - offset;
      if (right < width && row[static_cast<std::size_t>(right)] == ' ') {
        row[static_cast<std::size_t>(right)] = p.marker;
        break;
      }
      if (left >= 0 && row[static_cast<std::size_t>(left)] == ' ') {
        row[static_cast<std::size_t>(left)] = p.marker;
        break;
      }
    }
  }
  const std::string top = axis_label(y_max), middle = axis_label(y_max / 2), bottom = "0";
  const std::size_t margin = std::max({top.size(), middle.size(), bottom.size()});
  auto pad = [&](const std::string& s) { return std::string(margin - s.size(), ' ') + s; };
  std::string out = y_label + "\n";
  for (int r = 0; r < height; ++r) {
    std::string tick;
    if (r == 0) tick = top;
    if (r == (height - 1) / 2) tick = middle;
    std::string line = pad(tick) + " |" + grid[static_cast<std::size_t>(r)];
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  }
  out += pad(bottom) + " +" + std::string(static_cast<std::size_t>(width), '-') + "\n";
  // x ticks: 0 under the first column, the middle value centred, the maximum ending at the last column.
  std::string ticks(margin + 2 + static_cast<std::size_t>(width), ' ');
  auto place = [&](const std::string& s, std::size_t end_column) {
    const std::size_t start = margin + 2 + end_column + 1 - std::min(end_column + 1, s.size());
    ticks.replace(start, s.size(), s);
  };
  place("0", 0);
  const std::string mid = axis_label(x_max / 2);
  place(mid, static_cast<std::size_t>((width - 1) / 2) + mid.size() / 2);
  place(axis_label(x_max), static_cast<std::size_t>(width - 1));
  while (!ticks.empty() && ticks.back() == ' ') ticks.pop_back();
  out += ticks + "\n";
  const std::size_t centre = margin + 2 + static_cast<std::size_t>(width) / 2;
  out += std::string(centre > x_label.size() / 2 ? centre - x_label.size() / 2 : 0, ' ') + x_label + "\n";
  return out;
}

}  // namespace smallcoder::bench
