// isola/logging.hpp — multiprocessing's logger: one line per record, tagged
// with level and process name, e.g. "[INFO/process-1] child process calling
// self.run()". Each line reaches stderr in a single write(), so lines from
// different processes never interleave mid-line. The level a parent set is
// the level its children start with, under every start method.
#pragma once

#include <string>
#include <string_view>

namespace isola {

/// Python's logging levels, with multiprocessing's SUBDEBUG and SUBWARNING.
enum class log_level : int {
  notset = 0,
  subdebug = 5,
  debug = 10,
  info = 20,
  subwarning = 25,
  warning = 30,
  error = 40,
  critical = 50,
};

class logger {
 public:
  /// Records below this level are dropped. A logger with no handler (before
  /// log_to_stderr) drops everything, as multiprocessing's does.
  void set_level(log_level l) noexcept;
  log_level level() const noexcept;
  bool enabled_for(log_level l) const noexcept;

  /// Whether records go to stderr.
  void set_stderr_handler(bool on) noexcept;
  bool has_handler() const noexcept;

  void log(log_level l, std::string_view msg) const;
  void subdebug(std::string_view msg) const { log(log_level::subdebug, msg); }
  void debug(std::string_view msg) const { log(log_level::debug, msg); }
  void info(std::string_view msg) const { log(log_level::info, msg); }
  void subwarning(std::string_view msg) const { log(log_level::subwarning, msg); }
  void warning(std::string_view msg) const { log(log_level::warning, msg); }
  void error(std::string_view msg) const { log(log_level::error, msg); }
  void critical(std::string_view msg) const { log(log_level::critical, msg); }

 private:
  int level_ = static_cast<int>(log_level::notset);
  bool handler_ = false;
};

/// multiprocessing.get_logger(): the library's logger.
logger& get_logger();

/// multiprocessing.log_to_stderr(level): attach the stderr handler and set the
/// level; returns the logger.
logger& log_to_stderr(log_level level = log_level::notset);

/// "INFO", "DEBUG", ... as Python prints them.
std::string_view to_string(log_level l) noexcept;

}  // namespace isola
