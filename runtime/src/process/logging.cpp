#include "isola/logging.hpp"

#include <string>

#include "isola/process.hpp"
#include "sys/os.hpp"

namespace isola {

namespace {
// The effective level of a logger left at NOTSET: Python's root logger level.
constexpr int default_effective = static_cast<int>(log_level::warning);
}  // namespace

void logger::set_level(log_level l) noexcept { level_ = static_cast<int>(l); }
log_level logger::level() const noexcept { return static_cast<log_level>(level_); }
bool logger::enabled_for(log_level l) const noexcept {
  int eff = level_ == 0 ? default_effective : level_;
  return handler_ && static_cast<int>(l) >= eff;
}
void logger::set_stderr_handler(bool on) noexcept { handler_ = on; }
bool logger::has_handler() const noexcept { return handler_; }

void logger::log(log_level l, std::string_view msg) const {
  if (!enabled_for(l)) return;
  std::string line;
  line.reserve(msg.size() + 48);
  line += '[';
  line += to_string(l);
  line += '/';
  line += current_process().name;
  line += "] ";
  line += msg;
  line += '\n';
  try {
    detail::write_full(2, line.data(), line.size());  // one write: lines never interleave
  } catch (...) {}
}

logger& get_logger() {
  static auto* l = new logger;  // outlives every static destructor and atexit handler
  return *l;
}

logger& log_to_stderr(log_level level) {
  auto& l = get_logger();
  l.set_stderr_handler(true);
  if (level != log_level::notset) l.set_level(level);
  return l;
}

std::string_view to_string(log_level l) noexcept {
  switch (l) {
    case log_level::notset: return "NOTSET";
    case log_level::subdebug: return "SUBDEBUG";
    case log_level::debug: return "DEBUG";
    case log_level::info: return "INFO";
    case log_level::subwarning: return "SUBWARNING";
    case log_level::warning: return "WARNING";
    case log_level::error: return "ERROR";
    case log_level::critical: return "CRITICAL";
  }
  return "LEVEL";
}

}  // namespace isola
