// CAF's own remote actors as a baseline: a second process (the benchmark
// re-executed with `--caf-server POLICY`) publishes an actor on 127.0.0.1,
// and the benchmark reaches it with remote_actor. Shared by bench/actors and
// bench/nodes.
#pragma once

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>

#include "support.hpp"

extern char** environ;

namespace isola_bench {

/// "CAF x.y.z", for the banner line.
inline std::string caf_version() {
  return "CAF " + std::to_string(CAF_VERSION / 10000) + "." +
         std::to_string(CAF_VERSION / 100 % 100) + "." + std::to_string(CAF_VERSION % 100);
}

inline void caf_configure(caf::actor_system_config& cfg, const std::string& policy) {
  cfg.load<caf::io::middleman>();
  cfg.set("scheduler.policy", caf::atom_from_string(policy));
}

/// The server process's main: publishes the actor make(sys) returns on
/// 127.0.0.1 (any port), writes the port to stdout, and serves until stdin
/// closes (or its parent dies).
template <class Make>
int caf_server_main(const char* who, const std::string& policy, Make make) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() == 1) return 1;
  caf::actor_system_config cfg;
  caf_configure(cfg, policy);
  caf::actor_system sys{cfg};
  caf::actor peer = make(sys);
  auto port = sys.middleman().publish(peer, 0, "127.0.0.1");
  if (!port) {
    std::fprintf(stderr, "%s --caf-server: publish failed: %s\n", who,
                 sys.render(port.error()).c_str());
    std::_Exit(1);
  }
  std::printf("%u\n", static_cast<unsigned>(*port));
  std::fflush(stdout);
  char c;
  while (::read(0, &c, 1) > 0) {}
  std::_Exit(0);  // ~actor_system would wait for the remote side
}

/// A running `--caf-server` process and a local actor system connected to
/// its published actor (`peer`), with a scoped actor to make requests.
struct caf_remote_peer {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  caf::actor peer;
  std::unique_ptr<caf::scoped_actor> self;
  pid_t server = -1;
  int to_server = -1;  // closing it ends the server

  caf_remote_peer(const std::string& argv0, const std::string& policy) {
    int in[2], out[2];
    if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) die("pipe");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    std::string a0 = argv0, flag = "--caf-server", pol = policy;
    char* args[] = {a0.data(), flag.data(), pol.data(), nullptr};
    int rc = ::posix_spawn(&server, "/proc/self/exe", &fa, nullptr, args, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
      errno = rc;
      die("posix_spawn (caf server)");
    }
    ::close(in[0]);
    ::close(out[1]);
    to_server = in[1];
    std::string line;
    char c;
    while (::read(out[0], &c, 1) == 1 && c != '\n') line += c;
    ::close(out[0]);
    int port = std::atoi(line.c_str());
    if (port <= 0) throw std::runtime_error("the CAF server did not publish its actor");
    caf_configure(cfg, policy);
    sys = std::make_unique<caf::actor_system>(cfg);
    auto r = sys->middleman().remote_actor("127.0.0.1", static_cast<std::uint16_t>(port));
    if (!r) throw std::runtime_error("caf remote_actor: " + sys->render(r.error()));
    peer = *r;
    self = std::make_unique<caf::scoped_actor>(*sys);
  }
  ~caf_remote_peer() {
    self.reset();
    peer = nullptr;
    if (to_server >= 0) ::close(to_server);
    if (server > 0) {
      ::kill(server, SIGKILL);
      wait_pid(server);
    }
    // ~actor_system waits for the (now disconnected) remote proxies: let it.
  }
  caf_remote_peer(const caf_remote_peer&) = delete;
  caf_remote_peer& operator=(const caf_remote_peer&) = delete;

  /// One blocking request round trip of v to the remote echo.
  std::int32_t echo(std::int32_t v) {
    std::int32_t got = -1;
    bool failed = false;
    (*self)
        ->request(peer, caf::infinite, v)
        .receive([&](std::int32_t r) { got = r; }, [&](caf::error&) { failed = true; });
    if (failed || got != v) throw std::runtime_error("caf echo: bad reply");
    return got;
  }
};

}  // namespace isola_bench
