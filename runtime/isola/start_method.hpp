// isola/start_method.hpp — how a child process comes to be.
//
// fork:       the child is a copy of the parent at start(): it sees every
//             global, closures work. The default, as in the seed tutorials.
// forkserver: the child is forked from a small zygote process that the
//             runtime starts before any thread exists, so it is safe in a
//             multi-threaded parent. The target must be a function or a
//             captureless lambda and the arguments cereal-serializable.
// spawn:      the child is a fresh exec of this program; `isola::runtime` at
//             the top of its main() runs the target and never returns. Same
//             restrictions as forkserver.
#pragma once

#include <iosfwd>
#include <optional>
#include <string_view>
#include <vector>

namespace isola {

enum class start_method { fork, forkserver, spawn };

/// The method a process uses when its options name none.
void set_start_method(start_method m);
start_method get_start_method();

/// Every method this platform supports, the default first.
std::vector<start_method> all_start_methods();

/// "fork", "forkserver" or "spawn".
std::string_view to_string(start_method m) noexcept;

/// The method named "fork", "forkserver" or "spawn"; nullopt for any other name.
std::optional<start_method> start_method_from_string(std::string_view name) noexcept;

/// Prints to_string(m); lets test frameworks and loggers show a method.
std::ostream& operator<<(std::ostream& os, start_method m);

}  // namespace isola
