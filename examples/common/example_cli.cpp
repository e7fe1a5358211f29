// command_line over CLI11, the one translation unit of the examples that
// includes it (see example_cli.hpp for why).
#include "example_cli.hpp"

#include <CLI/CLI.hpp>
#include <isola/start_method.hpp>

#include <vector>

namespace isola_example {

struct command_line::impl {
  explicit impl(std::string description) : app(std::move(description)) {}
  CLI::App app;
};

command_line::command_line(std::string description)
    : impl_(std::make_unique<impl>(std::move(description))) {}

command_line::~command_line() = default;

command_line& command_line::add_option(const std::string& name, int& value, const std::string& help) {
  impl_->app.add_option(name, value, help);
  return *this;
}
command_line& command_line::add_option(const std::string& name, long& value, const std::string& help) {
  impl_->app.add_option(name, value, help);
  return *this;
}
command_line& command_line::add_option(const std::string& name, unsigned& value,
                                       const std::string& help) {
  impl_->app.add_option(name, value, help);
  return *this;
}
command_line& command_line::add_option(const std::string& name, std::size_t& value,
                                       const std::string& help) {
  impl_->app.add_option(name, value, help);
  return *this;
}
command_line& command_line::add_option(const std::string& name, double& value,
                                       const std::string& help) {
  impl_->app.add_option(name, value, help);
  return *this;
}
command_line& command_line::add_option(const std::string& name, std::string& value,
                                       const std::string& help) {
  impl_->app.add_option(name, value, help);
  return *this;
}

command_line& command_line::add_choice(const std::string& name, std::string& value,
                                       std::initializer_list<const char*> allowed,
                                       const std::string& help) {
  std::vector<std::string> words(allowed.begin(), allowed.end());
  impl_->app.add_option(name, value, help)->check(CLI::IsMember(words));
  return *this;
}

std::optional<int> command_line::parse(int argc, char** argv) {
  try {
    impl_->app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return impl_->app.exit(e);
  }
  return std::nullopt;
}

void add_start_method(command_line& cli) {
  cli.impl_->app
      .add_option_function<std::string>(
          "method",
          [](const std::string& name) {
            isola::set_start_method(*isola::start_method_from_string(name));
          },
          "start method: fork (the default), forkserver or spawn")
      ->check(CLI::IsMember({"fork", "forkserver", "spawn"}));
}

}  // namespace isola_example
