#include "sys/os.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace isola::detail {

void throw_errno(const std::string& what, int err) {
  throw os_error(err, what + ": " + std::strerror(err));
}
void throw_errno(const std::string& what) { throw_errno(what, errno); }

void unique_fd::reset(int fd) noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

int pidfd_open(pid_t pid) {
  int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) throw_errno("pidfd_open(" + std::to_string(pid) + ")");
  return fd;  // pidfds are always close-on-exec
}

bool pidfd_signal(int pidfd, int sig) {
  if (::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0) == 0) return true;
  if (errno == ESRCH) return false;
  throw_errno("pidfd_send_signal");
}

bool wait_readable(int fd, std::optional<std::chrono::steady_clock::time_point> deadline) {
  using namespace std::chrono;
  for (;;) {
    int ms = -1;
    if (deadline) {
      // A deadline already passed (deadline::now() is the clock's minimum)
      // polls once; the subtraction is only done when it cannot overflow.
      const auto now = steady_clock::now();
      ms = 0;
      if (*deadline > now) {
        auto left = duration_cast<milliseconds>(*deadline - now + 999us);
        ms = static_cast<int>(std::min<long long>(left.count(), 1 << 30));
      }
    }
    pollfd p{fd, POLLIN, 0};
    int r = ::poll(&p, 1, ms);
    if (r > 0) return true;
    if (r == 0) {
      if (!deadline || steady_clock::now() >= *deadline) return false;
      continue;
    }
    if (errno != EINTR) throw_errno("poll");
  }
}

std::size_t read_full(int fd, void* buf, std::size_t n) {
  auto p = static_cast<char*>(buf);
  std::size_t got = 0;
  while (got < n) {
    ssize_t r = ::read(fd, p + got, n - got);
    if (r > 0) {
      got += static_cast<std::size_t>(r);
    } else if (r == 0) {
      break;
    } else if (errno != EINTR) {
      throw_errno("read");
    }
  }
  return got;
}

void write_full(int fd, const void* buf, std::size_t n) {
  auto p = static_cast<const char*>(buf);
  while (n > 0) {
    ssize_t r = ::send(fd, p, n, MSG_NOSIGNAL);
    if (r < 0 && errno == ENOTSOCK) r = ::write(fd, p, n);
    if (r > 0) {
      p += r;
      n -= static_cast<std::size_t>(r);
    } else if (r < 0 && errno != EINTR) {
      throw_errno("write");
    }
  }
}

ssize_t send_fds_once(int sock, std::span<const iovec> iov, std::span<const int> fds, int flags) {
  msghdr msg{};
  msg.msg_iov = const_cast<iovec*>(iov.data());
  msg.msg_iovlen = iov.size();
  // On the stack for the usual few descriptors (a pipe's data path); the
  // forkserver's launch messages may carry hundreds.
  alignas(cmsghdr) char small[CMSG_SPACE(sizeof(int) * max_fds_per_message)];
  std::vector<cmsghdr> large;
  char* control = small;
  if (fds.size() > max_fds_per_message) {
    large.resize(CMSG_SPACE(sizeof(int) * fds.size()) / sizeof(cmsghdr) + 1);
    control = reinterpret_cast<char*>(large.data());
  }
  if (!fds.empty()) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  ssize_t r;
  do r = ::sendmsg(sock, &msg, flags | MSG_NOSIGNAL);
  while (r < 0 && errno == EINTR);
  return r < 0 ? -errno : r;
}

ssize_t recv_fds_once(int sock, std::span<std::byte> data, std::vector<int>& fds, int flags,
                      bool* truncated, std::size_t max_fds) {
  msghdr msg{};
  iovec iov{data.data(), data.size()};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char small[CMSG_SPACE(sizeof(int) * max_fds_per_message)];
  std::vector<cmsghdr> large;
  msg.msg_control = small;
  msg.msg_controllen = sizeof small;
  if (max_fds > max_fds_per_message) {
    large.resize(CMSG_SPACE(sizeof(int) * max_fds) / sizeof(cmsghdr) + 1);
    msg.msg_control = large.data();
    msg.msg_controllen = large.size() * sizeof(cmsghdr);
  }
  ssize_t r;
  do r = ::recvmsg(sock, &msg, flags | MSG_CMSG_CLOEXEC);
  while (r < 0 && errno == EINTR);
  if (r < 0) return -errno;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    std::size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < n; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      fds.push_back(fd);
    }
  }
  if (truncated) *truncated = (msg.msg_flags & MSG_TRUNC) != 0;
  return r;
}

void send_with_fds(int sock, std::span<const std::byte> data, std::span<const int> fds) {
  iovec iov{const_cast<std::byte*>(data.data()), data.size()};
  ssize_t r = send_fds_once(sock, std::span(&iov, 1), fds);
  if (r < 0) throw_errno("sendmsg", static_cast<int>(-r));
  auto sent = static_cast<std::size_t>(r);
  if (sent < data.size()) write_full(sock, data.data() + sent, data.size() - sent);
}

std::size_t recv_with_fds(int sock, std::span<std::byte> data, std::vector<int>& fds,
                          std::size_t max_fds) {
  ssize_t r = recv_fds_once(sock, data, fds, 0, nullptr, max_fds);
  if (r < 0) throw_errno("recvmsg", static_cast<int>(-r));
  auto got = static_cast<std::size_t>(r);
  if (got > 0 && got < data.size()) got += read_full(sock, data.data() + got, data.size() - got);
  return got;
}

int exitcode_from_siginfo(int code, int status) {
  if (code == CLD_EXITED) return status;
  return -status;  // CLD_KILLED, CLD_DUMPED
}

int exitcode_from_wait_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return -WTERMSIG(status);
  return -SIGKILL;
}

void reset_signals_as_exec_would() {
  // The standard signals only: real-time ones are left as inherited, which
  // halves the cost of this loop (one sigaction per signal) on the fork path.
  for (int s = 1; s < SIGRTMIN; ++s) {
    if (s == SIGKILL || s == SIGSTOP) continue;
    struct sigaction old {};
    if (::sigaction(s, nullptr, &old) != 0) continue;
    bool caught = (old.sa_flags & SA_SIGINFO)
                      ? true
                      : (old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN);
    if (caught) ::signal(s, SIG_DFL);
  }
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  stack_t ss{};
  ss.ss_flags = SS_DISABLE;
  ::sigaltstack(&ss, nullptr);
}

void ignore_sigpipe() noexcept {
  struct sigaction old {};
  if (::sigaction(SIGPIPE, nullptr, &old) != 0) return;
  if (!(old.sa_flags & SA_SIGINFO) && old.sa_handler == SIG_DFL) ::signal(SIGPIPE, SIG_IGN);
}

void die_with_parent(pid_t expected_parent) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != expected_parent) ::raise(SIGKILL);
}

void close_fds_except(int lowest, std::span<const int> keep) {
  std::vector<int> k(keep.begin(), keep.end());
  std::sort(k.begin(), k.end());
  int from = lowest;
  for (int fd : k) {
    if (fd < from) continue;
    if (fd > from) ::syscall(SYS_close_range, from, fd - 1, 0);
    from = fd + 1;
  }
  ::syscall(SYS_close_range, from, ~0u, 0);
}

}  // namespace isola::detail
