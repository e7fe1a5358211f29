// What the examples' command lines share: the start method as a positional
// argument (fork, forkserver or spawn), so each example states its arguments
// with CLI11 in a few lines instead of parsing argv by hand.
#pragma once

#include <string>

#include <CLI/CLI.hpp>
#include <isola/start_method.hpp>

namespace isola_example {

// Adds the positional argument [fork|forkserver|spawn]; the method is set as
// soon as it is parsed, before main() starts any process.
inline CLI::Option* add_start_method(CLI::App& app) {
  return app
      .add_option_function<std::string>(
          "method",
          [](const std::string& name) {
            isola::set_start_method(*isola::start_method_from_string(name));
          },
          "start method: fork (the default), forkserver or spawn")
      ->check(CLI::IsMember({"fork", "forkserver", "spawn"}));
}

}  // namespace isola_example
