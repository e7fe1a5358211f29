// bench/support.hpp — what every benchmark under bench/ shares: finding
// python3, reading the flat JSON the generated Python scripts print, medians.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace isola_bench {

inline std::optional<std::string> find_in_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  if (!path) return std::nullopt;
  std::stringstream ss(path);
  for (std::string dir; std::getline(ss, dir, ':');) {
    auto full = std::filesystem::path(dir.empty() ? "." : dir) / name;
    if (::access(full.c_str(), X_OK) == 0) return full.string();
  }
  return std::nullopt;
}

// Flat JSON from our own script: "key": number or "key": "string".
inline std::map<std::string, double> parse_numbers(const std::string& json, std::string& version) {
  std::map<std::string, double> out;
  std::size_t i = 0;
  while ((i = json.find('"', i)) != std::string::npos) {
    auto j = json.find('"', i + 1);
    if (j == std::string::npos) break;
    auto key = json.substr(i + 1, j - i - 1);
    auto colon = json.find(':', j);
    if (colon == std::string::npos) break;
    auto v = colon + 1;
    while (v < json.size() && json[v] == ' ') ++v;
    if (v < json.size() && json[v] == '"') {
      auto e = json.find('"', v + 1);
      if (key == "version") version = json.substr(v + 1, e - v - 1);
      i = e + 1;
      continue;
    }
    char* end = nullptr;
    double d = std::strtod(json.c_str() + v, &end);
    if (end != json.c_str() + v) out[key] = d;
    i = static_cast<std::size_t>(end - json.c_str());
  }
  return out;
}

inline std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

inline std::string fmt(double v, int prec = 1) {
  if (std::isnan(v)) return "n/a";
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", prec, v);
  return b;
}

struct stats {
  double median = NAN;
  double p90 = NAN;
  std::size_t n = 0;
};

inline stats summarize(std::vector<double> xs) {
  stats s;
  s.n = xs.size();
  if (xs.empty()) return s;
  std::sort(xs.begin(), xs.end());
  auto n = xs.size();
  s.median = n % 2 ? xs[n / 2] : (xs[n / 2 - 1] + xs[n / 2]) / 2;
  auto k = static_cast<std::size_t>(std::ceil(0.9 * static_cast<double>(n)));
  s.p90 = xs[std::max<std::size_t>(k, 1) - 1];
  return s;
}

}  // namespace isola_bench
