#include "gloss/report/plot.h"

#include <cairo.h>

#include <stdexcept>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>

#include "gloss/util/atomic_file.h"
#include "gloss/util/error.h"
#include "gloss/util/format.h"

namespace gloss::report {
namespace {

std::string num(double v, int decimals = 1) { return fixed(v, decimals); }

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '&')
      out += "&amp;";
    else if (c == '<')
      out += "&lt;";
    else if (c == '>')
      out += "&gt;";
    else if (c == '"')
      out += "&quot;";
    else
      out += c;
  }
  return out;
}

// A "nice" tick step (1, 2 or 5 times a power of ten) giving about `target` ticks over span.
double tick_step(double span, int target) {
  if (span <= 0) return 1;
  const double raw = span / target, p = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (raw <= m * p) return m * p;
  return 10 * p;
}

struct Series {
  std::string name, colour;
  std::vector<std::pair<double, double>> points;
};

// The names of the series that have points, side by side from x, text baseline at y.
void legend(std::ostringstream& svg, const std::vector<Series>& series, double x, double y) {
  for (const auto& s : series) {
    if (s.points.empty()) continue;
    svg << "<line x1='" << num(x) << "' y1='" << num(y - 4) << "' x2='" << num(x + 20) << "' y2='" << num(y - 4)
        << "' stroke='" << s.colour << "' stroke-width='3'/><text x='" << num(x + 25) << "' y='" << num(y) << "'>"
        << escape(s.name) << "</text>\n";
    x += 45 + 7.5 * static_cast<double>(s.name.size());  // ~7 px a character at 12 px
  }
}

// One panel: axes with ticks and grid, the series as polylines with dots, and a legend in a
// row above the frame (inside it, it would hide the curves where they end, top right).
void panel(std::ostringstream& svg, double x0, double y0, double w, double h, const std::string& y_label,
           const std::vector<Series>& series) {
  double xmin = 1e300, xmax = -1e300, ymin = 1e300, ymax = -1e300;
  for (const auto& s : series)
    for (auto [x, y] : s.points) {
      xmin = std::min(xmin, x), xmax = std::max(xmax, x);
      ymin = std::min(ymin, y), ymax = std::max(ymax, y);
    }
  if (xmin > xmax) xmin = 0, xmax = 1, ymin = 0, ymax = 1;
  xmin = std::min(xmin, 0.0);
  if (xmax == xmin) xmax = xmin + 1;
  if (ymax == ymin) ymax = ymin + 1;
  const double yt = tick_step(ymax - ymin, 5), xt = tick_step(xmax - xmin, 6);
  ymin = std::floor(ymin / yt) * yt, ymax = std::ceil(ymax / yt) * yt;
  xmax = std::ceil(xmax / xt) * xt;
  // R leaves room for half the last x label, T for the legend row.
  const double L = x0 + 60, R = x0 + w - 24, T = y0 + 26, B = y0 + h - 40;
  auto px = [&](double x) { return L + (x - xmin) / (xmax - xmin) * (R - L); };
  auto py = [&](double y) { return B - (y - ymin) / (ymax - ymin) * (B - T); };
  const int ydec = yt >= 1 ? 0 : yt >= 0.1 ? 1 : 2;
  // Ticks by index, never by adding a step that may vanish beside a huge value.
  const int yticks = static_cast<int>(std::min(50.0, std::round((ymax - ymin) / yt)));
  const int xticks = static_cast<int>(std::min(50.0, std::round((xmax - xmin) / xt)));
  for (int i = 0; i <= yticks; ++i) {
    const double y = ymin + i * yt;
    svg << "<line x1='" << num(L) << "' y1='" << num(py(y)) << "' x2='" << num(R) << "' y2='" << num(py(y))
        << "' stroke='#e3e3e3'/>\n<text x='" << num(L - 6) << "' y='" << num(py(y) + 4) << "' text-anchor='end'>"
        << num(y, ydec) << "</text>\n";
  }
  for (int i = 0; i <= xticks; ++i) {
    const double x = xmin + i * xt;
    svg << "<line x1='" << num(px(x)) << "' y1='" << num(T) << "' x2='" << num(px(x)) << "' y2='" << num(B)
        << "' stroke='#e3e3e3'/>\n<text x='" << num(px(x)) << "' y='" << num(B + 16) << "' text-anchor='middle'>"
        << num(x, 0) << "</text>\n";
  }
  svg << "<rect x='" << num(L) << "' y='" << num(T) << "' width='" << num(R - L) << "' height='" << num(B - T)
      << "' fill='none' stroke='#444'/>\n";
  svg << "<text x='" << num((L + R) / 2) << "' y='" << num(B + 34) << "' text-anchor='middle'>update step</text>\n";
  svg << "<text transform='translate(" << num(x0 + 14) << "," << num((T + B) / 2)
      << ") rotate(-90)' text-anchor='middle'>" << escape(y_label) << "</text>\n";
  for (const auto& s : series) {
    if (s.points.empty()) continue;
    svg << "<polyline fill='none' stroke='" << s.colour << "' stroke-width='2' points='";
    for (auto [x, y] : s.points) svg << num(px(x)) << "," << num(py(y)) << " ";
    svg << "'/>\n";
    for (auto [x, y] : s.points)
      svg << "<circle cx='" << num(px(x)) << "' cy='" << num(py(y)) << "' r='2.5' fill='" << s.colour << "'/>\n";
  }
  legend(svg, series, L, T - 10);
}

}  // namespace

std::string training_curves_svg(const std::vector<train::MetricsRow>& rows, const std::string& title) {
  const double W = 960, H = 400;
  std::ostringstream svg;
  svg << "<?xml version='1.0' encoding='UTF-8'?>\n<svg xmlns='http://www.w3.org/2000/svg' width='" << W << "' height='"
      << H << "' viewBox='0 0 " << W << " " << H
      << "' font-family='DejaVu Sans, Arial, sans-serif' font-size='12'>\n<rect width='100%' height='100%' "
         "fill='white'/>\n";
  svg << "<text x='" << W / 2 << "' y='22' text-anchor='middle' font-size='15'>" << escape(title) << "</text>\n";
  Series loss{"train loss (per token)", "#1f77b4", {}}, ce{"valid cross-entropy", "#ff7f0e", {}};
  Series bleu{"valid BLEU", "#2ca02c", {}}, chrf{"valid chrF", "#9467bd", {}};
  for (const auto& r : rows) {
    const auto x = static_cast<double>(r.step);
    if (r.train_loss > 0) loss.points.emplace_back(x, r.train_loss);
    ce.points.emplace_back(x, r.valid_ce);
    bleu.points.emplace_back(x, r.valid_bleu);
    chrf.points.emplace_back(x, r.valid_chrf);
  }
  panel(svg, 0, 34, W / 2, H - 34, "nats per target token", {loss, ce});
  panel(svg, W / 2, 34, W / 2, H - 34, "score", {bleu, chrf});
  svg << "</svg>\n";
  return svg.str();
}

std::string attention_svg(const std::vector<std::string>& src_pieces, const std::vector<std::string>& tgt_pieces,
                          const std::vector<float>& weights) {
  const std::size_t cols = src_pieces.size(), rows = cols ? std::min(tgt_pieces.size(), weights.size() / cols) : 0;
  const double cell = 28, left = 130, top = 130;
  const double W = left + cell * static_cast<double>(cols) + 20, H = top + cell * static_cast<double>(rows) + 20;
  std::ostringstream svg;
  svg << "<?xml version='1.0' encoding='UTF-8'?>\n<svg xmlns='http://www.w3.org/2000/svg' width='" << num(W, 0)
      << "' height='" << num(H, 0) << "' font-family='DejaVu Sans, Arial, sans-serif' font-size='12'>\n"
      << "<rect width='100%' height='100%' fill='white'/>\n";
  for (std::size_t j = 0; j < cols; ++j) {
    const double x = left + cell * (static_cast<double>(j) + 0.5);
    svg << "<text transform='translate(" << num(x + 4) << "," << num(top - 6) << ") rotate(-60)'>"
        << escape(src_pieces[j]) << "</text>\n";
  }
  for (std::size_t i = 0; i < rows; ++i) {
    const double y = top + cell * static_cast<double>(i);
    svg << "<text x='" << num(left - 6) << "' y='" << num(y + cell / 2 + 4) << "' text-anchor='end'>"
        << escape(tgt_pieces[i]) << "</text>\n";
    for (std::size_t j = 0; j < cols; ++j) {
      const double v = std::clamp(static_cast<double>(weights[i * cols + j]), 0.0, 1.0);
      const int r = static_cast<int>(255 - v * 247), g = static_cast<int>(255 - v * 207),
                b = static_cast<int>(255 - v * 148);
      const double x = left + cell * static_cast<double>(j);
      svg << "<rect x='" << num(x) << "' y='" << num(y) << "' width='" << num(cell) << "' height='" << num(cell)
          << "' fill='rgb(" << r << "," << g << "," << b << ")' stroke='#ddd'><title>" << num(v, 3)
          << "</title></rect>\n";
      if (v >= 0.1)
        svg << "<text x='" << num(x + cell / 2) << "' y='" << num(y + cell / 2 + 4)
            << "' text-anchor='middle' font-size='9' fill='" << (v > 0.5 ? "white" : "black") << "'>" << num(v * 100, 0)
            << "</text>\n";
    }
  }
  svg << "</svg>\n";
  return svg.str();
}

namespace {

// t at (x, y) in `size` points, rotated by `angle` radians; align < 0 ends the text at x, 0
// centres it, > 0 starts it there; gray 0 is black, 1 white.
void draw_text(cairo_t* cr, const std::string& t, double x, double y, double size, double angle, int align,
               double gray) {
  cairo_save(cr);
  cairo_set_font_size(cr, size);
  cairo_text_extents_t e;
  cairo_text_extents(cr, t.c_str(), &e);
  cairo_translate(cr, x, y);
  cairo_rotate(cr, angle);
  cairo_move_to(cr, align < 0 ? -e.x_advance : align == 0 ? -e.x_advance / 2 : 0, 0);
  cairo_set_source_rgb(cr, gray, gray, gray);
  cairo_show_text(cr, t.c_str());
  cairo_restore(cr);
}

// One square of the heat map at (x, y): shaded by weight v in [0, 1], outlined, and labelled
// with its percentage from 10 % on (as the SVG draws it).
void draw_weight(cairo_t* cr, double x, double y, double cell, double v) {
  cairo_rectangle(cr, x, y, cell, cell);
  cairo_set_source_rgb(cr, (255 - v * 247) / 255, (255 - v * 207) / 255, (255 - v * 148) / 255);
  cairo_fill_preserve(cr);
  cairo_set_source_rgb(cr, 0xdd / 255.0, 0xdd / 255.0, 0xdd / 255.0);
  cairo_set_line_width(cr, 1);
  cairo_stroke(cr);
  if (v >= 0.1) draw_text(cr, num(v * 100, 0), x + cell / 2, y + cell / 2 + 4, 9, 0, 0, v > 0.5 ? 1 : 0);
}

// The surface as PNG file bytes; a cairo error is a runtime_error.
std::string png_bytes(cairo_surface_t* surface) {
  std::string png;
  const auto status = cairo_surface_write_to_png_stream(
      surface,
      [](void* closure, const unsigned char* data, unsigned int length) {
        static_cast<std::string*>(closure)->append(reinterpret_cast<const char*>(data), length);
        return CAIRO_STATUS_SUCCESS;
      },
      &png);
  if (status != CAIRO_STATUS_SUCCESS) throw std::runtime_error(std::string("cairo: ") + cairo_status_to_string(status));
  return png;
}

}  // namespace

std::string attention_png(const std::vector<std::string>& src_pieces, const std::vector<std::string>& tgt_pieces,
                          const std::vector<float>& weights) {
  const std::size_t cols = src_pieces.size(), rows = cols ? std::min(tgt_pieces.size(), weights.size() / cols) : 0;
  const double cell = 28, left = 130, top = 130;  // the SVG's layout
  const int W = static_cast<int>(left + cell * static_cast<double>(cols) + 20);
  const int H = static_cast<int>(top + cell * static_cast<double>(rows) + 20);
  const std::unique_ptr<cairo_surface_t, decltype(&cairo_surface_destroy)> surface(
      cairo_image_surface_create(CAIRO_FORMAT_RGB24, W, H), cairo_surface_destroy);
  cairo_t* cr = cairo_create(surface.get());
  cairo_set_source_rgb(cr, 1, 1, 1);
  cairo_paint(cr);
  cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
  for (std::size_t j = 0; j < cols; ++j)
    draw_text(cr, src_pieces[j], left + cell * (static_cast<double>(j) + 0.5) + 4, top - 6, 12,
              -60 * 3.14159265358979 / 180, 1, 0);
  for (std::size_t i = 0; i < rows; ++i) {
    const double y = top + cell * static_cast<double>(i);
    draw_text(cr, tgt_pieces[i], left - 6, y + cell / 2 + 4, 12, 0, -1, 0);
    for (std::size_t j = 0; j < cols; ++j)
      draw_weight(cr, left + cell * static_cast<double>(j), y, cell,
                  std::clamp(static_cast<double>(weights[i * cols + j]), 0.0, 1.0));
  }
  cairo_destroy(cr);
  return png_bytes(surface.get());
}

}  // namespace gloss::report
