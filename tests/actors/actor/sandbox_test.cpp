// Sandboxed actors (isola/sandbox.hpp): each forbidden system call ends the
// actor with sandbox_violation naming it (seen by a monitor, a failed
// request and a restarting supervisor), each limit with `limit`, the allowed
// workload runs, the actor cannot loosen its sandbox, network = false, a
// sandboxed pool worker; under forkserver and spawn. Real processes.
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include <isola/actor.hpp>
#include <isola/error.hpp>
#include <isola/function_registry.hpp>
#include <isola/pool.hpp>
#include <isola/sandbox.hpp>
#include <isola/supervisor.hpp>

#include "test_util.hpp"

namespace utf = boost::unit_test;
using namespace std::chrono_literals;
using isola::exit_reason;
using isola::start_method;
using isola::syscall_policy;

namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr bool asan = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool asan = true;
#else
constexpr bool asan = false;
#endif
#else
constexpr bool asan = false;
#endif

struct add {
  int x = 0, y = 0;
  template <class A>
  void serialize(A& ar) {
    ar(x, y);
  }
};
/// Do the named thing; the answer is 0 or the errno it failed with (if the
/// process survives it at all).
struct try_it {
  try_it() = default;
  explicit try_it(std::string w, std::string a = {}, int p = 0)
      : what(std::move(w)), arg(std::move(a)), port(p) {}
  std::string what;
  std::string arg;
  int port = 0;
  template <class A>
  void serialize(A& ar) {
    ar(what, arg, port);
  }
};

int err(long rc) { return rc < 0 ? errno : 0; }

int connect_to(int port) {
  int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) return errno;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int rc = err(::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a));
  ::close(s);
  return rc;
}

int do_it(const try_it& t) {
  const std::string& w = t.what;
  if (w == "open_write") return err(::open(t.arg.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
  if (w == "open_rdwr") return err(::open(t.arg.c_str(), O_RDWR | O_CLOEXEC));
  if (w == "read_file") {
    int fd = ::open(t.arg.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno;
    char buf[256];
    ssize_t n = ::read(fd, buf, sizeof buf);
    ::close(fd);
    return n > 0 ? 0 : EIO;
  }
  if (w == "socket") return err(::socket(AF_INET, SOCK_STREAM, 0));
  if (w == "connect") return connect_to(t.port);
  if (w == "execve") {
    char* argv[] = {const_cast<char*>("/bin/sh"), const_cast<char*>("-c"),
                    const_cast<char*>("true"), nullptr};
    ::execve("/bin/sh", argv, environ);
    return errno;
  }
  if (w == "fork") {
    pid_t p = ::fork();
    if (p == 0) ::_exit(0);
    if (p > 0) ::waitpid(p, nullptr, 0);
    return p < 0 ? errno : 0;
  }
  if (w == "ptrace") return err(::ptrace(PTRACE_TRACEME, 0, nullptr, nullptr));
  if (w == "kill_other") return err(::kill(t.port, 0));
  if (w == "kill_self") return err(::kill(::getpid(), 0));
  if (w == "burn_cpu") {
    volatile unsigned long x = 0;
    for (;;) x = x + 1;
  }
  if (w == "allocate") {
    std::vector<char> v(std::size_t{1} << 32);  // 4 GiB: bad_alloc under address_space
    v[12345] = 1;
    return v[12345] - 1;
  }
  if (w == "write_big") {
    int fd = ::open(t.arg.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
    if (fd < 0) return errno;
    // A write that crosses the limit is cut short; the next one, at the
    // limit, is the one that gets SIGXFSZ.
    std::string s(64 * 1024, 'x');
    ssize_t n = 0;
    for (int i = 0; i < 4 && n >= 0; ++i) n = ::write(fd, s.data(), s.size());
    ::close(fd);
    return n < 0 ? errno : 0;
  }
  if (w == "open_many") {
    // Runs out, gives the descriptors back (the sanitizers' runtime needs
    // one or two), then fails as a parser would.
    std::vector<int> fds;
    int e = 0;
    for (int i = 0; i < 100000 && !e; ++i) {
      int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
      if (fd < 0) e = errno;
      else fds.push_back(fd);
    }
    for (int fd : fds) ::close(fd);
    if (e) throw isola::os_error(e, std::string("open: ") + std::strerror(e));
    return 0;
  }
  // Ways to loosen the sandbox from inside; each must fail or change nothing.
  if (w == "raise_rlimit") {
    rlimit r{};
    ::getrlimit(RLIMIT_NOFILE, &r);
    r.rlim_cur = r.rlim_max = r.rlim_max + 1000;
    return err(::setrlimit(RLIMIT_NOFILE, &r));
  }
  if (w == "clear_no_new_privs") return err(::prctl(PR_SET_NO_NEW_PRIVS, 0, 0, 0, 0));
  if (w == "ignore_sigsys") return ::signal(SIGSYS, SIG_IGN) == SIG_ERR ? errno : 0;
  if (w == "allow_all_filter") {
    sock_filter allow_all[] = {BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)};
    sock_fprog prog{1, allow_all};
    return err(::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog));
  }
  return EINVAL;
}

isola::behavior poison() {
  return {
      [](const add& a) { return a.x + a.y; },
      [](const try_it& t) { return do_it(t); },
  };
}

const start_method methods[] = {start_method::forkserver, start_method::spawn};

isola::actor start(start_method m, isola::sandbox box) {
  isola::spawn_options o;
  o.method = m;
  o.sandbox = std::move(box);
  return isola::spawn(o, poison);
}

isola::sandbox compute() {
  isola::sandbox b;
  b.syscalls = syscall_policy::compute;
  return b;
}

/// The actor does `t`; it must die with `what`/`text`, seen by a monitor
/// and by the request itself (actor_exited with the reason; or, where the
/// limit showed as an exception in the handler, that exception).
void expect_death(isola::actor a, const try_it& t, exit_reason::kind what,
                  const std::string& text, bool as_exception = false) {
  auto mon = a.monitor();
  BOOST_TEST(a.request<int>(add{2, 3}).get(20s) == 5);  // serves first
  auto f = a.request<int>(t);
  if (as_exception) {
    BOOST_CHECK_THROW(f.get(20s), isola::remote_error);
  } else {
    BOOST_CHECK_EXCEPTION(f.get(20s), isola::actor_exited, [&](const isola::actor_exited& e) {
      BOOST_TEST_MESSAGE("request failed: " << e.what());
      return std::string(e.what()).find(exit_reason{what, 0, text}.to_string()) !=
             std::string::npos;
    });
  }
  auto d = mon.get(20s);
  BOOST_TEST(d.reason.what == what, "reason " << d.reason);
  BOOST_TEST(d.reason.text == text, "reason " << d.reason);
}

/// A listening socket on 127.0.0.1 in this (the root) process.
struct listening {
  int fd = -1;
  int port = 0;
  listening() {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(fd, 16);
    socklen_t n = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &n);
    port = ntohs(a.sin_port);
  }
  ~listening() { ::close(fd); }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(sandbox)

BOOST_AUTO_TEST_CASE(the_allowed_workload_is_served_under_compute, *utf::timeout(60)) {
  for (auto m : methods) {
    BOOST_TEST_CONTEXT("start method " << isola::to_string(m)) {
      auto a = start(m, compute());
      auto mon = a.monitor();
      for (int i = 0; i < 500; ++i) BOOST_REQUIRE(a.request<int>(add{i, 1}).get(20s) == i + 1);
      BOOST_TEST(a.request<int>(try_it("kill_self")).get(20s) == 0);
      a.stop();
      BOOST_TEST(mon.get(20s).reason.what == exit_reason::kind::shutdown);
    }
  }
}

BOOST_AUTO_TEST_CASE(each_forbidden_call_under_compute_ends_the_actor_with_its_name,
                     *utf::timeout(120)) {
  isola_test::temp_file f;
  struct kase {
    try_it t;
    std::vector<std::string> allow;
    std::string name;
  };
  const kase cases[] = {
      {try_it("open_write", f.path()), {}, "openat"},
      {try_it("socket"), {}, "socket"},
      {try_it("connect", "", 9), {"socket"}, "connect"},  // socket allowed: connect is refused
      {try_it("execve"), {}, "execve"},
      {try_it("fork"), {}, "clone"},  // glibc's fork() is clone(SIGCHLD), no CLONE_THREAD
      {try_it("ptrace"), {}, "ptrace"},
      {try_it("kill_other", "", 1), {}, "kill"},
  };
  for (auto m : methods) {
    for (auto& c : cases) {
      BOOST_TEST_CONTEXT("start method " << isola::to_string(m) << ", " << c.t.what) {
        auto box = compute();
        box.allow = c.allow;
        expect_death(start(m, box), c.t, exit_reason::kind::sandbox_violation, c.name);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(read_files_reads_but_does_not_write, *utf::timeout(60)) {
  isola_test::temp_file f;
  isola_test::write_file(f.path(), "hello");
  isola::sandbox box;
  box.syscalls = syscall_policy::read_files;
  auto a = start(start_method::forkserver, box);
  BOOST_TEST(a.request<int>(try_it("read_file", "/etc/hostname")).get(20s) == 0);
  BOOST_TEST(a.request<int>(try_it("read_file", f.path())).get(20s) == 0);
  expect_death(a, try_it("open_rdwr", f.path()), exit_reason::kind::sandbox_violation, "openat");
}

BOOST_AUTO_TEST_CASE(the_actor_cannot_loosen_its_sandbox, *utf::timeout(60)) {
  isola_test::temp_file f;
  isola::sandbox box = compute();
  box.open_files = 64;
  auto a = start(start_method::forkserver, box);
  BOOST_TEST(a.request<int>(try_it("raise_rlimit")).get(20s) == EPERM);
  BOOST_TEST(a.request<int>(try_it("clear_no_new_privs")).get(20s) != 0);
  BOOST_TEST(a.request<int>(try_it("ignore_sigsys")).get(20s) == EPERM);
  // A second filter that allows everything is accepted, and changes nothing:
  // the kernel runs every filter and the strictest answer wins.
  BOOST_TEST(a.request<int>(try_it("allow_all_filter")).get(20s) == 0);
  expect_death(a, try_it("open_write", f.path()), exit_reason::kind::sandbox_violation, "openat");
}

BOOST_AUTO_TEST_CASE(each_limit_ends_the_actor_with_its_name, *utf::timeout(120)) {
  isola_test::temp_file f;
  {
    isola::sandbox box;
    box.cpu = 1s;
    expect_death(start(start_method::forkserver, box), try_it("burn_cpu"), exit_reason::kind::limit,
                 "cpu");
  }
  {
    isola::sandbox box;
    box.file_size = 4096;
    expect_death(start(start_method::forkserver, box), try_it("write_big", f.path()),
                 exit_reason::kind::limit, "file_size");
  }
  {
    isola::sandbox box;
    box.open_files = 32;
    expect_death(start(start_method::spawn, box), try_it("open_many"), exit_reason::kind::limit,
                 "open_files", true);
  }
  if (asan) {
    // ASan reserves terabytes of shadow address space before main().
    BOOST_TEST_MESSAGE("address_space: skipped under AddressSanitizer");
  } else {
    isola::sandbox box;
    box.address_space = std::size_t{1} << 30;
    expect_death(start(start_method::forkserver, box), try_it("allocate"),
                 exit_reason::kind::limit, "address_space", true);
  }
}

BOOST_AUTO_TEST_CASE(network_false_cannot_reach_a_listening_socket_of_the_parent,
                     *utf::timeout(60)) {
  listening l;
  for (auto m : methods) {
    BOOST_TEST_CONTEXT("start method " << isola::to_string(m)) {
      isola::sandbox open;  // the control: the same call reaches it
      BOOST_TEST(start(m, open).request<int>(try_it("connect", "", l.port)).get(20s) == 0);
      isola::sandbox box;
      box.network = false;
      box.best_effort = true;  // where no namespace can be made, say so and skip
      isola::sandbox strict = box;
      strict.best_effort = false;
      try {
        (void)start(m, strict);
      } catch (const isola::os_error& e) {
        BOOST_TEST_MESSAGE("skipped: " << e.what());
        return;
      }
      auto a = start(m, box);
      BOOST_TEST(a.request<int>(try_it("connect", "", l.port)).get(20s) == ENETUNREACH);
    }
  }
}

BOOST_AUTO_TEST_CASE(memory_without_a_delegated_cgroup_is_an_error_unless_best_effort,
                     *utf::timeout(60)) {
  isola::sandbox box;
  box.memory = std::size_t{64} << 20;
  try {
    auto a = start(start_method::forkserver, box);
    BOOST_TEST_MESSAGE("a cgroup v2 is delegated here: memory.max is set");
    BOOST_TEST(a.request<int>(add{1, 2}).get(20s) == 3);
  } catch (const isola::os_error& e) {
    BOOST_TEST_MESSAGE("no delegated cgroup: " << e.what());
    BOOST_TEST(std::string(e.what()).find("cgroup") != std::string::npos);
    box.best_effort = true;
    BOOST_TEST(start(start_method::forkserver, box).request<int>(add{1, 2}).get(20s) == 3);
  }
}

BOOST_AUTO_TEST_CASE(an_unknown_syscall_name_is_a_value_error_at_spawn, *utf::timeout(30)) {
  isola::sandbox box = compute();
  box.allow = {"no_such_call"};
  BOOST_CHECK_THROW(start(start_method::forkserver, box), isola::value_error);
  box.allow.clear();
  box.deny = {"openat", "frobnicate"};
  BOOST_CHECK_THROW(start(start_method::forkserver, box), isola::value_error);
}

BOOST_AUTO_TEST_CASE(deny_by_name_forbids_a_call_under_unrestricted, *utf::timeout(60)) {
  isola_test::temp_file f;
  isola::sandbox box;
  box.deny = {"socket"};
  auto a = start(start_method::forkserver, box);
  BOOST_TEST(a.request<int>(try_it("read_file", "/etc/hostname")).get(20s) == 0);
  expect_death(a, try_it("socket"), exit_reason::kind::sandbox_violation, "socket");
}

BOOST_AUTO_TEST_CASE(a_supervisor_restarts_a_child_killed_by_its_sandbox, *utf::timeout(60)) {
  isola_test::temp_file f;
  isola::supervisor sup({.name = "sandboxed"},
                        {isola::child_spec::actor("parser", poison).sandbox(compute())});
  auto first = sup.which_children().at(0).actor;
  auto f1 = first.request<int>(try_it("open_write", f.path()));
  BOOST_CHECK_EXCEPTION(f1.get(20s), isola::actor_exited, [](const isola::actor_exited& e) {
    return std::string(e.what()).find("sandbox_violation: openat") != std::string::npos;
  });
  isola::actor next;
  BOOST_TEST(isola_test::wait_until(
      [&] {
        auto c = sup.which_children().at(0);
        if (!c.running || c.actor.pid() == first.pid()) return false;
        next = c.actor;
        return true;
      },
      20s));
  BOOST_TEST(next.request<int>(add{20, 22}).get(20s) == 42);
  // Still sandboxed after the restart.
  expect_death(next, try_it("socket"), exit_reason::kind::sandbox_violation, "socket");
}

int square(int x) { return x * x; }
int open_for_write(std::string path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd >= 0) ::close(fd);
  return fd;
}
ISOLA_REGISTER_FUNCTION(square);
ISOLA_REGISTER_FUNCTION(open_for_write);

BOOST_AUTO_TEST_CASE(a_sandboxed_pool_worker_dies_for_a_forbidden_call_and_the_pool_serves_on,
                     *utf::timeout(60)) {
  isola_test::temp_file f;
  isola::pool_options o;
  o.processes = 1;
  o.sandbox = compute();
  isola::pool p(o);
  BOOST_TEST(p.apply(square, 7) == 49);
  BOOST_CHECK_EXCEPTION(p.apply(open_for_write, f.path()), isola::worker_died,
                        [](const isola::worker_died& e) {
                          BOOST_TEST_MESSAGE(e.what());
                          return std::string(e.what()).find("sandbox_violation: openat") !=
                                 std::string::npos;
                        });
  BOOST_TEST(p.apply(square, 9) == 81);
}

BOOST_AUTO_TEST_SUITE_END()
