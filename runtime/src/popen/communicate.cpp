// popen::communicate: feeds the program its input and collects its stdout
// and stderr at the same time (poll on all three), so that neither side
// waits for the other with a pipe full: no deadlock however much either
// writes.
//
// After a timeout the program runs on and nothing is lost: what was read
// stays in the readers, what was not yet written is kept in the state
// (the caller's buffer may be gone by then), and communicate() again goes on
// from there. The program sees its stdin closed (EOF) once all input is
// written, or at once when there is none; its output can be returned only
// once.
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "isola/error.hpp"
#include "popen/popen_internal.hpp"

namespace isola {

using namespace popen_internal;
using detail::throw_errno;

popen::output popen::communicate(std::string_view input) {
  return *communicate_until(input, detail::deadline::forever());
}

popen::output popen::communicate(std::string_view input, duration timeout) {
  auto deadline = deadline_after(timeout);
  auto r = communicate_until(input, deadline);
  if (!r)
    throw timeout_error("popen: communicate() timed out after " + seconds_text(timeout) +
                        " (the program runs on; communicate() again goes on where this call "
                        "stopped): " +
                        st().command);
  return std::move(*r);
}

std::optional<popen::output> popen::try_communicate(std::string_view input) {
  return communicate_until(input, detail::deadline::now());
}

void popen::state::check_communicate(std::string_view input) const {
  require_owner();
  bool any_pipe = piped[0] || piped[1] || piped[2];
  if (communicated && any_pipe)
    throw value_error(
        "popen: communicate() already returned this program's output, which "
        "can be read only once: " +
        command);
  if (!input.empty()) {
    if (!piped[0]) throw value_error("popen: communicate(input) needs .in = isola::stdio::pipe");
    if (communication_started)
      throw value_error(
          "popen: cannot send input after starting communication; call "
          "communicate() without input to go on");
    if (in.closed()) throw value_error("popen: communicate(input) after stdin was closed");
  }
}

std::optional<popen::output> popen::communicate_until(std::string_view input,
                                                      const detail::deadline& deadline) {
  auto& s = st();
  s.check_communicate(input);
  bool first = !s.communication_started;
  s.communication_started = true;
  std::string_view todo = first ? input : std::string_view(s.saved_input).substr(s.saved_off);
  std::size_t off = 0;
  if (!s.in.closed() && todo.empty()) s.in.close();  // no input: the program reads EOF

  std::optional<nonblocking_scope> nb;
  if (!s.in.closed()) nb.emplace(s.in.fd_);
  for (;;) {
    pollfd fds[3];
    int who[3];
    nfds_t n = 0;
    if (!s.in.closed()) {
      fds[n] = {s.in.fd_, POLLOUT, 0};
      who[n++] = 0;
    }
    if (!s.out.closed() && !s.out.eof_) {
      fds[n] = {s.out.fd_, POLLIN, 0};
      who[n++] = 1;
    }
    if (!s.err.closed() && !s.err.eof_) {
      fds[n] = {s.err.fd_, POLLIN, 0};
      who[n++] = 2;
    }
    if (n == 0) break;
    if (poll_until(fds, n, deadline) == 0) {
      // Keep what is left of the input for the next call: the caller's
      // buffer may be gone by then.
      if (first) {
        s.saved_input.assign(todo.substr(off));
        s.saved_off = 0;
      } else {
        s.saved_off += off;
      }
      return std::nullopt;
    }
    for (nfds_t i = 0; i < n; ++i) {
      if (!fds[i].revents) continue;
      if (who[i] == 0) {
        ssize_t w =
            ::write(s.in.fd_, todo.data() + off, std::min<std::size_t>(todo.size() - off, 1 << 20));
        if (w > 0) {
          off += static_cast<std::size_t>(w);
        } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
          // EPIPE: the program stopped reading (or ended). As in Python the
          // rest of the input is dropped and its output still collected.
          if (errno != EPIPE) throw_errno("popen: write to the program's stdin");
          off = todo.size();
        }
        if (off == todo.size()) {
          nb.reset();
          s.in.close();
        }
      } else {
        (who[i] == 1 ? s.out : s.err).read_available();
      }
    }
  }
  s.saved_input.clear();
  s.saved_off = 0;

  if (!s.proc->wait(deadline)) return std::nullopt;
  output o;
  if (!s.out.closed()) o.out = s.out.take_all();
  if (!s.err.closed()) o.err = s.err.take_all();
  s.out.close();
  s.err.close();
  s.communicated = true;
  return o;
}

}  // namespace isola
