// Helpers shared by the test suites: temporary files, stderr capture, waiting
// on a condition with a deadline (tests never sleep to "let things settle").
#pragma once

#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <optional>
#include <ostream>
#include <sstream>
#include <string>
#include <thread>

namespace isola_test {

/// A file under /tmp, removed on destruction.
class temp_file {
 public:
  temp_file() {
    char tmpl[] = "/tmp/isola-test-XXXXXX";
    int fd = ::mkstemp(tmpl);
    if (fd >= 0) ::close(fd);
    path_ = tmpl;
  }
  ~temp_file() { ::unlink(path_.c_str()); }
  temp_file(const temp_file&) = delete;
  temp_file& operator=(const temp_file&) = delete;
  const std::string& path() const { return path_; }
  std::string read() const {
    std::ifstream f(path_);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }

 private:
  std::string path_;
};

inline void write_file(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::app);
  f << text;
}

/// Redirects fd 2 (or another) into a temp file for the object's lifetime.
class capture_fd {
 public:
  explicit capture_fd(int fd = 2) : fd_(fd) {
    ::fflush(nullptr);
    saved_ = ::dup(fd_);
    int f = ::open(file_.path().c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
    ::dup2(f, fd_);
    ::close(f);
  }
  ~capture_fd() { restore(); }
  std::string text() {
    restore();
    return file_.read();
  }

 private:
  void restore() {
    if (saved_ < 0) return;
    ::fflush(nullptr);
    ::dup2(saved_, fd_);
    ::close(saved_);
    saved_ = -1;
  }
  int fd_;
  int saved_ = -1;
  temp_file file_;
};

/// Polls pred until it holds or the deadline passes; returns pred's last value.
inline bool wait_until(const std::function<bool()>& pred,
                       std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (pred()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

/// True once pid is gone or every thread of it has exited (a zombie, reaped or
/// not). Asked through a pidfd, as the library asks: /proc's 'Z' shows as soon
/// as the main thread has exited, while another thread (TSan's background
/// thread, tearing down its shadow memory) may still be running, and a pidfd
/// is not readable until that one is gone too.
inline bool pid_dead(int pid) {
  int pfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pfd >= 0) {
    pollfd p{pfd, POLLIN, 0};
    const bool exited = ::poll(&p, 1, 0) > 0;
    ::close(pfd);
    return exited;
  }
  if (errno == ESRCH) return true;
  // No pidfds (old kernel): the main thread's state. Plain read(): a process
  // reaped while its stat file is being read makes read() fail with ESRCH,
  // which an ifstream would turn into an exception.
  std::string path = "/proc/" + std::to_string(pid) + "/stat";
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return true;
  char buf[512];
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return true;
  std::string s(buf, static_cast<std::size_t>(n));
  auto p = s.rfind(')');
  return p != std::string::npos && p + 2 < s.size() && (s[p + 2] == 'Z' || s[p + 2] == 'X');
}

/// True if pid no longer exists at all (not even as a zombie).
inline bool pid_gone(int pid) { return ::kill(pid, 0) != 0 && errno == ESRCH; }

}  // namespace isola_test

// Lets BOOST_TEST print the std::optional values isola returns (exitcode()).
namespace boost::test_tools::tt_detail {
template <class T>
struct print_log_value<std::optional<T>> {
  void operator()(std::ostream& os, const std::optional<T>& v) {
    if (v)
      os << *v;
    else
      os << "nullopt";
  }
};
}  // namespace boost::test_tools::tt_detail
