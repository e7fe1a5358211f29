#include "process/forkserver.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <new>
#include <unordered_map>

#include "isola/detail/handle_transfer.hpp"
#include "process/registry.hpp"

namespace isola::detail {

namespace {

// The signal the zygote gets when the root dies (PDEATHSIG): caught through
// the signalfd, so that the zygote can take its children with it.
constexpr int root_died_signal = SIGUSR1;

[[noreturn]] void zygote_main(int sock, pid_t root) {
  reset_signals_as_exec_would();
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGCHLD);
  sigaddset(&sigs, root_died_signal);
  ::sigprocmask(SIG_BLOCK, &sigs, nullptr);
  ::prctl(PR_SET_PDEATHSIG, root_died_signal);
  if (::getppid() != root) ::_exit(0);  // the root died before the prctl: no children yet
  // As Python's forkserver: a Ctrl-C meant for the program does not end the
  // zygote (its children get theirs as the root left it).
  struct sigaction root_sigint {};
  ::sigaction(SIGINT, nullptr, &root_sigint);
  ::signal(SIGINT, SIG_IGN);
  ::prctl(PR_SET_NAME, "isola-forkserver");
  int keep[] = {sock};
  close_fds_except(3, keep);
  forget_parent_state_after_fork(false);
  forget_handles();

  int sfd = ::signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) ::_exit(70);

  std::unordered_map<pid_t, int> status_fds;
  auto reap = [&](int flags) {
    for (;;) {
      int st = 0;
      pid_t p = ::waitpid(-1, &st, flags);
      if (p <= 0) return;
      if (auto it = status_fds.find(p); it != status_fds.end()) {
        try {
          write_full(it->second, &st, sizeof st);
        } catch (...) {}
        ::close(it->second);
        status_fds.erase(it);
      }
    }
  };

  // The root is dead (SIGKILLed, say): its children die with it under every
  // start method, so the zygote's go too. (A zygote that is itself killed
  // leaves its children running, as Python's forkserver does.)
  auto root_gone = [&] {
    for (auto& [p, fd] : status_fds) ::kill(p, SIGKILL);
    ::_exit(0);
  };

  bool open = true;
  while (open) {
    pollfd fds[2] = {{sock, POLLIN, 0}, {sfd, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      ::_exit(71);
    }
    if (fds[1].revents & POLLIN) {
      signalfd_siginfo si;
      bool root_died = false;
      while (::read(sfd, &si, sizeof si) > 0)
        if (static_cast<int>(si.ssi_signo) == root_died_signal) root_died = true;
      reap(WNOHANG);
      if (root_died || ::getppid() != root) root_gone();
    }
    if (!(fds[0].revents & (POLLIN | POLLHUP | POLLERR))) continue;

    std::uint64_t len = 0;
    std::vector<int> fds_in;
    std::size_t got = 0;
    try {
      got = recv_with_fds(sock, std::as_writable_bytes(std::span(&len, 1)), fds_in, 253);
    } catch (...) {
      got = 0;
    }
    if (got != sizeof len || fds_in.size() < 4) {
      for (int fd : fds_in) ::close(fd);
      if (::getppid() != root) root_gone();
      open = false;  // the root closed the socket (or broke the protocol)
      break;
    }
    bytes payload(len);
    if (read_full(sock, payload.data(), len) != len) {
      for (int fd : fds_in) ::close(fd);
      break;
    }
    pid_t pid = ::fork();
    if (pid == 0) {
      ::close(sock);
      ::close(sfd);
      for (auto& [p, fd] : status_fds) ::close(fd);
      ::sigaction(SIGINT, &root_sigint, nullptr);
      // No PDEATHSIG on the zygote: a child outlives a zygote that is
      // killed, as Python's do; the zygote kills them itself when the root
      // dies. The root still holds a pidfd of this child to join and signal it.
      for (int i = 0; i < 3; ++i) ::dup2(fds_in[i], i);
      for (int i = 0; i < 4; ++i) ::close(fds_in[i]);
      std::vector<int> handles(fds_in.begin() + 4, fds_in.end());
      ::prctl(PR_SET_NAME, "isola-child");
      child_payload p;
      try {
        p = decode<child_payload>(payload);
      } catch (const std::exception& e) {
        ::_exit(72);
      }
      run_payload_child(p, std::move(handles));
    }
    for (std::size_t i = 0; i < fds_in.size(); ++i)
      if (i != 3) ::close(fds_in[i]);
    std::int32_t reply = pid > 0 ? pid : -errno;
    int pidfd = -1;
    if (pid > 0) {
      status_fds[pid] = fds_in[3];
      try {
        pidfd = pidfd_open(pid);
      } catch (...) {
        pidfd = -1;
      }
    } else {
      ::close(fds_in[3]);
    }
    try {
      if (pidfd >= 0)
        send_with_fds(sock, std::as_bytes(std::span(&reply, 1)), std::span(&pidfd, 1));
      else
        write_full(sock, &reply, sizeof reply);
    } catch (...) {
      open = false;
    }
    if (pidfd >= 0) ::close(pidfd);
  }
  // The root is done with us: outlive our children, then go. Not in a
  // blocking waitpid: a SIGKILLed root closes our socket before its death
  // is signalled, so the root's death may still come, and then the children
  // must go too.
  while (!status_fds.empty()) {
    if (::getppid() != root) root_gone();
    pollfd p{sfd, POLLIN, 0};
    if (::poll(&p, 1, -1) < 0 && errno != EINTR) ::_exit(71);
    signalfd_siginfo si;
    while (::read(sfd, &si, sizeof si) > 0)
      if (static_cast<int>(si.ssi_signo) == root_died_signal) root_gone();
    reap(WNOHANG);
  }
  reap(WNOHANG);
  ::_exit(0);
}

}  // namespace

forkserver::forkserver() {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) throw_errno("socketpair");
  unique_fd root_end(sv[0]), zygote_end(sv[1]);
  pid_t root = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) throw_errno("fork (forkserver)");
  if (pid == 0) {
    root_end.reset();
    zygote_main(zygote_end.release(), root);
  }
  pid_ = pid;
  pidfd_.reset(pidfd_open(pid));
  sock_ = std::move(root_end);
}

forkserver::~forkserver() {
  if (!sock_) return;
  sock_.reset();  // EOF: the zygote waits for its children, then exits
  if (pid_ > 0) {
    int st;
    while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {}
  }
}

void forkserver::abandon(bool close_fds) noexcept {
  int a = sock_.release(), b = pidfd_.release();
  if (close_fds) {
    ::close(a);
    ::close(b);
  }
  pid_ = 0;
}

bool forkserver::alive() const {
  if (!pidfd_) return false;
  pollfd p{pidfd_.get(), POLLIN, 0};
  return ::poll(&p, 1, 0) == 0;
}

forkserver::launched forkserver::launch(const bytes& payload, const std::vector<int>& handle_fds) {
  int sp[2];
  if (::pipe2(sp, O_CLOEXEC) != 0) throw_errno("pipe2");
  unique_fd status_r(sp[0]), status_w(sp[1]);
  bytes msg(sizeof(std::uint64_t) + payload.size());
  std::uint64_t len = payload.size();
  std::memcpy(msg.data(), &len, sizeof len);
  std::memcpy(msg.data() + sizeof len, payload.data(), payload.size());
  std::vector<int> fds = {0, 1, 2, status_w.get()};
  fds.insert(fds.end(), handle_fds.begin(), handle_fds.end());
  try {
    send_with_fds(sock_.get(), msg, fds);
  } catch (const os_error& e) {
    throw process_error(std::string("the forkserver is gone: ") + e.what());
  }
  status_w.reset();
  std::int32_t reply = 0;
  std::vector<int> got_fds;
  std::size_t n = 0;
  try {
    n = recv_with_fds(sock_.get(), std::as_writable_bytes(std::span(&reply, 1)), got_fds, 1);
  } catch (const os_error& e) {  // ECONNRESET: it died with our request unread
    throw process_error(std::string("the forkserver is gone: ") + e.what());
  }
  if (n != sizeof reply) {
    for (int fd : got_fds) ::close(fd);
    throw process_error("the forkserver is gone (it closed its socket)");
  }
  if (reply < 0) {
    for (int fd : got_fds) ::close(fd);
    throw_errno("fork (in the forkserver)", -reply);
  }
  launched l{reply, unique_fd(got_fds.empty() ? -1 : got_fds[0]), std::move(status_r)};
  if (!l.pidfd) l.pidfd.reset(pidfd_open(reply));
  return l;
}

void ensure_forkserver() {
  auto& gl = g();
  std::lock_guard lk(gl.zygote_m);
  if (!gl.zygote || !gl.zygote->alive()) {
    gl.zygote.reset();
    gl.zygote = std::make_unique<forkserver>();
  }
}

void launch_forkserver(process_state& st, const child_payload& payload,
                       const std::vector<int>& fds) {
  auto bytes_out = encode(payload);
  auto& gl = g();
  std::lock_guard lk(gl.zygote_m);
  for (int attempt = 0;; ++attempt) {
    if (!gl.zygote || !gl.zygote->alive()) {
      gl.zygote.reset();
      gl.zygote = std::make_unique<forkserver>();
    }
    try {
      auto l = gl.zygote->launch(bytes_out, fds);
      st.pid = l.pid;
      st.pidfd = std::move(l.pidfd);
      st.status_fd = std::move(l.status);
      return;
    } catch (const process_error&) {
      if (attempt > 0) throw;
      gl.zygote.reset();  // died under us: start a fresh one, once
    }
  }
}

void stop_forkserver() noexcept {
  auto& gl = g();
  std::lock_guard lk(gl.zygote_m);
  gl.zygote.reset();
}

void forget_forkserver_after_fork(bool close_fds) {
  auto& gl = g();
  new (&gl.zygote_m) std::mutex;  // whoever held it is not in this process
  if (gl.zygote) {
    gl.zygote->abandon(close_fds);
    gl.zygote.reset();
  }
}

}  // namespace isola::detail
