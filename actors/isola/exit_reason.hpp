// isola/exit_reason.hpp — why an actor process ended, as its monitors, its
// links, its supervisor and failed requests see it.
//
// The root reaps every actor process and decides the reason: the process's
// exit status, refined by what the actor said on its way out (an unhandled
// exception's what(), or that it stopped because its supervisor asked) and by
// what the root itself did to it (killed it because a linked actor died).
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>

namespace isola {

struct exit_reason {
  enum class kind : std::uint8_t {
    normal,     ///< returned, or isola::exit(0)
    exit_code,  ///< isola::exit(N) / a non-zero exit status: code
    signal,     ///< killed by signal `code` (SIGSEGV, SIGKILL, ...)
    exception,  ///< an unhandled exception; text is its what()
    linked,     ///< killed because a linked actor exited abnormally; text says which and why
    shutdown,   ///< stopped on request (supervisor shutdown, actor::stop)
    unknown,    ///< the exit status could not be learnt
    sandbox_violation,  ///< a system call its sandbox forbids; text is its name, code its number
    limit,  ///< a sandbox limit ended it; text: "cpu", "file_size", "address_space", "open_files", "memory"
  };

  kind what = kind::normal;
  int code = 0;
  std::string text;

  /// Erlang's "normal" (and "shutdown"): not a failure. transient children
  /// are restarted only after an abnormal exit, and links propagate only
  /// abnormal exits.
  bool abnormal() const noexcept { return what != kind::normal && what != kind::shutdown; }

  /// "normal", "exit code 3", "signal 11 (Segmentation fault)", "exception: ...", ...
  std::string to_string() const;

  friend bool operator==(const exit_reason&, const exit_reason&) = default;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(what, code, text);
  }
};

std::ostream& operator<<(std::ostream& os, const exit_reason& r);
std::ostream& operator<<(std::ostream& os, exit_reason::kind k);

}  // namespace isola
