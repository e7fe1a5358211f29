// What the examples' command lines share, behind one small interface: each
// example states its positional arguments in a few lines, and CLI11 itself is
// compiled once (example_cli.cpp) instead of in every example, which made
// building the examples take minutes longer (its inline code is generated again
// in every program that includes it).
#pragma once

#include <cstddef>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>

namespace isola_example {

/// An example's command line: optional positional arguments, in the order they
/// are added, each with a default (the variable's value before parse()).
class command_line {
 public:
  explicit command_line(std::string description);
  ~command_line();
  command_line(const command_line&) = delete;
  command_line& operator=(const command_line&) = delete;

  command_line& add_option(const std::string& name, int& value, const std::string& help);
  command_line& add_option(const std::string& name, long& value, const std::string& help);
  command_line& add_option(const std::string& name, unsigned& value, const std::string& help);
  command_line& add_option(const std::string& name, std::size_t& value, const std::string& help);
  command_line& add_option(const std::string& name, double& value, const std::string& help);
  command_line& add_option(const std::string& name, std::string& value, const std::string& help);
  /// A word that must be one of `allowed`.
  command_line& add_choice(const std::string& name, std::string& value,
                           std::initializer_list<const char*> allowed, const std::string& help);

  /// Parses argv. Returns the status main() should return with (after --help,
  /// or after printing what is wrong with the arguments), or nothing to go on.
  std::optional<int> parse(int argc, char** argv);

 private:
  friend void add_start_method(command_line& cli);
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// Adds the positional argument [fork|forkserver|spawn]; the method is set as
/// soon as it is parsed, before main() starts any process.
void add_start_method(command_line& cli);

}  // namespace isola_example
