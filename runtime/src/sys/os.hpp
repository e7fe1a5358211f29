// Thin, errno-translating wrappers over the system calls the runtime uses.
// The one place where errno becomes an isola exception (os_error, or the
// error type the caller names).
#pragma once

#include <sys/uio.h>

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "isola/error.hpp"

namespace isola::detail {

[[noreturn]] void throw_errno(const std::string& what, int err);
[[noreturn]] void throw_errno(const std::string& what);

/// An owned file descriptor, closed on destruction.
class unique_fd {
 public:
  unique_fd() = default;
  explicit unique_fd(int fd) noexcept : fd_(fd) {}
  unique_fd(unique_fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  unique_fd& operator=(unique_fd&& o) noexcept {
    if (this != &o) reset(std::exchange(o.fd_, -1));
    return *this;
  }
  ~unique_fd() { reset(); }
  int get() const noexcept { return fd_; }
  int release() noexcept { return std::exchange(fd_, -1); }
  void reset(int fd = -1) noexcept;
  explicit operator bool() const noexcept { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

int pidfd_open(pid_t pid);              // throws
bool pidfd_signal(int pidfd, int sig);  // false if the process has ended (ESRCH)

/// poll() one fd for readability; false on timeout. nullopt timeout = forever.
bool wait_readable(int fd, std::optional<std::chrono::steady_clock::time_point> deadline);

/// Full read/write with EINTR handling. read_full returns bytes read (short on EOF).
std::size_t read_full(int fd, void* buf, std::size_t n);
void write_full(int fd, const void* buf, std::size_t n);  // MSG_NOSIGNAL-safe for sockets

// --- descriptor passing (SCM_RIGHTS): the one place a message with
// descriptors is built or taken apart. Everything else (pipes, the
// forkserver, actors' control channels) calls these.

/// The most descriptors recv_fds_once takes from one message unless told
/// otherwise; the kernel closes any beyond what the receiver has room for.
inline constexpr std::size_t max_fds_per_message = 16;

/// One sendmsg of iov with fds attached to its first byte. Retries EINTR;
/// returns the bytes sent or -errno (never throws). MSG_NOSIGNAL is added.
ssize_t send_fds_once(int sock, std::span<const iovec> iov, std::span<const int> fds,
                      int flags = 0);
/// One recvmsg: the bytes received (0: the peer closed) or -errno. Retries
/// EINTR. Descriptors that came with it are made O_CLOEXEC and appended to
/// fds. truncated: the datagram did not fit in data (SOCK_SEQPACKET).
ssize_t recv_fds_once(int sock, std::span<std::byte> data, std::vector<int>& fds, int flags = 0,
                      bool* truncated = nullptr, std::size_t max_fds = max_fds_per_message);

/// sendmsg with file descriptors attached (SCM_RIGHTS); sends all of data.
void send_with_fds(int sock, std::span<const std::byte> data, std::span<const int> fds);
/// Receives data.size() bytes (short on EOF) and up to max_fds descriptors
/// that came with the first part.
std::size_t recv_with_fds(int sock, std::span<std::byte> data, std::vector<int>& fds,
                          std::size_t max_fds);

/// Python-style exit code from a waitid siginfo / wait status.
int exitcode_from_siginfo(int code, int status);
int exitcode_from_wait_status(int status);

/// Sets every caught standard signal (1..SIGRTMIN-1) to its default and
/// empties the signal mask: what an exec would do, done in a forked child.
void reset_signals_as_exec_would();

/// Sets SIGPIPE to SIG_IGN if it is at its default (a handler the program
/// installed is left alone), so that a write to a pipe whose reader is gone
/// fails with EPIPE instead of killing the process. Ignored signals stay
/// ignored in children under every start method (fork, and across exec).
void ignore_sigpipe() noexcept;

/// PR_SET_PDEATHSIG(SIGKILL), then kill ourselves if the expected parent is
/// already gone (the race between fork and prctl).
void die_with_parent(pid_t expected_parent);

/// Closes every descriptor >= lowest except those listed.
void close_fds_except(int lowest, std::span<const int> keep);

}  // namespace isola::detail
