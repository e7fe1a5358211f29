// spawn: a fresh exec of this very program (/proc/self/exe, the same argv).
// The child's `isola::runtime` constructor finds ISOLA_SPAWN=<fd>,<parent pid>
// in its environment, checks that the descriptor is the socket its parent
// made for it (the secret a forged environment lacks), reads the payload
// from that socket and runs it.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "process/registry.hpp"

extern char** environ;

namespace isola::detail {

namespace {
constexpr const char* spawn_env = "ISOLA_SPAWN";
constexpr int spawn_fd = 3;
constexpr std::uint64_t max_start_request = std::uint64_t{1} << 30;

bool is_parent_socket(int fd, pid_t parent) {
  if (fd != spawn_fd || parent <= 0 || ::getppid() != parent) return false;
  int type = 0, domain = 0;
  socklen_t len = sizeof type;
  if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM) return false;
  len = sizeof domain;
  if (::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0 || domain != AF_UNIX)
    return false;
  ucred peer{};
  len = sizeof peer;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &len) != 0) return false;
  return peer.pid == parent && peer.uid == ::getuid();
}

struct spawn_attrs {
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  spawn_attrs() {
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
  }
  ~spawn_attrs() {
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
  }
};
}  // namespace

void launch_spawn(process_state& st, const child_payload& payload, const std::vector<int>& fds) {
  auto& gl = g();
  std::vector<std::string> argv_s;
  {
    std::lock_guard lk(gl.m);
    if (!gl.runtime_present || gl.argv.empty())
      throw start_method_error(
          "the spawn start method re-executes this program, which needs "
          "`isola::runtime rt{argc, argv};` as the first line of main()");
    argv_s = gl.argv;
  }
  auto data = encode(payload);

  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) throw_errno("socketpair");
  unique_fd ours(sv[0]), theirs(sv[1]);
  if (theirs.get() == spawn_fd) {  // dup2 onto itself would keep O_CLOEXEC
    int d = ::fcntl(theirs.get(), F_DUPFD_CLOEXEC, spawn_fd + 1);
    if (d < 0) throw_errno("fcntl");
    theirs.reset(d);
  }

  spawn_attrs a;
  posix_spawn_file_actions_adddup2(&a.fa, theirs.get(), spawn_fd);
  posix_spawn_file_actions_addclosefrom_np(&a.fa, spawn_fd + 1);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&a.attr, &none);
  posix_spawnattr_setflags(&a.attr, POSIX_SPAWN_SETSIGMASK);

  std::vector<char*> argv;
  for (auto& s : argv_s) argv.push_back(s.data());
  argv.push_back(nullptr);
  std::string marker =
      std::string(spawn_env) + "=" + std::to_string(spawn_fd) + "," + std::to_string(::getpid());
  std::vector<char*> envp;
  for (char** e = environ; e && *e; ++e)
    if (std::strncmp(*e, "ISOLA_SPAWN=", 12) != 0) envp.push_back(*e);
  envp.push_back(marker.data());
  envp.push_back(nullptr);

  pid_t pid = 0;
  int rc = ::posix_spawn(&pid, "/proc/self/exe", &a.fa, &a.attr, argv.data(), envp.data());
  if (rc != 0) throw_errno("posix_spawn", rc);
  st.pid = pid;
  st.pidfd.reset(pidfd_open(pid));
  theirs.reset();

  bytes msg(sizeof(std::uint64_t) + data.size());
  std::uint64_t len = data.size();
  std::memcpy(msg.data(), &len, sizeof len);
  std::memcpy(msg.data() + sizeof len, data.data(), data.size());
  try {
    send_with_fds(ours.get(), msg, fds);  // handles among the arguments ride along
  } catch (const os_error&) {
    // The child died before reading (EPIPE): its exit code will tell why.
  }
}

void maybe_run_spawn_child() {
  const char* v = std::getenv(spawn_env);
  if (!v) return;
  int fd = -1;
  long parent = 0;
  if (std::sscanf(v, "%d,%ld", &fd, &parent) != 2 || fd < 0) {
    ::unsetenv(spawn_env);
    return;
  }
  ::unsetenv(spawn_env);
  // The environment alone must not make this program run a start request:
  // the descriptor it names has to be the socket our parent made for us
  // (its other end held by that very process, our parent, as our user).
  // Anything else (a forged environment, or a parent that died before we
  // got here) ends this process at once with the code for a failed start,
  // running nothing of the program.
  if (!is_parent_socket(fd, static_cast<pid_t>(parent))) {
    const char msg[] =
        "isola: ISOLA_SPAWN names no socket from this process's parent; not starting\n";
    (void)!::write(2, msg, sizeof msg - 1);
    ::_exit(72);
  }
  die_with_parent(static_cast<pid_t>(parent));
  std::uint64_t len = 0;
  child_payload p;
  std::vector<int> fds;
  // The parent died or sent garbage before we could run anything: say so,
  // and exit with the code documented for it.
  auto give_up = [](const char* why) {
    std::string msg =
        std::string("isola: spawn child could not read its start request: ") + why + "\n";
    (void)!::write(2, msg.data(), msg.size());
    ::_exit(72);
  };
  try {
    if (recv_with_fds(fd, std::as_writable_bytes(std::span(&len, 1)), fds, 253) != sizeof len)
      give_up("the parent closed the socket");
    if (len > max_start_request) give_up("a start request over 1 GiB");
    bytes data(len);
    if (read_full(fd, data.data(), len) != len) give_up("truncated request");
    ::close(fd);
    p = decode<child_payload>(data);
  } catch (const std::exception& e) {
    give_up(e.what());
  }
  run_payload_child(p, std::move(fds));
}

}  // namespace isola::detail
