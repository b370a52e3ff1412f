#pragma once
// Small number formats shared by progress lines, benchmarks and reports.
#include <cstdio>
#include <string>

namespace gloss {

// v with `decimals` digits after the point: fixed(4.06, 1) == "4.1".
inline std::string fixed(double v, int decimals) {
  char buf[512];  // room for any double in %f
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

// v in exponent notation with `decimals` digits after the point: fixed_exp(0.001, 2) == "1.00e-03".
inline std::string fixed_exp(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*e", decimals, v);
  return buf;
}

// v in the shortest of fixed and exponent notation (printf's %g): fixed_g(9.0) == "9".
inline std::string fixed_g(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

// A duration as "6m25s" or "1h02m05s" (negative: 0).
inline std::string duration_text(double seconds) {
  const long s = seconds > 0 ? static_cast<long>(seconds + 0.5) : 0;
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%ldh%02ldm%02lds", s / 3600, s / 60 % 60, s % 60);
  else
    std::snprintf(buf, sizeof buf, "%ldm%02lds", s / 60, s % 60);
  return buf;
}

// n and a noun, plural unless n is 1: counted(1, "file") == "1 file", counted(2, "batch", "batches").
inline std::string counted(long long n, const std::string& noun, const std::string& plural = "") {
  return std::to_string(n) + " " + (n == 1 ? noun : plural.empty() ? noun + "s" : plural);
}

}  // namespace gloss
