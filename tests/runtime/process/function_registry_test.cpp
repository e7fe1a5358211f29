// The function registry (isola/function_registry.hpp) between real
// processes: a function reference from another process is called only if it
// names a function the receiver registered, with the type it is called as.
// Each case sends what an attacker holding the key would: unregistered
// functions, libc's abort, an address in the middle of a function, a
// registered function under another type, an unknown start method, a forged
// spawn environment.
#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include <isola/function_registry.hpp>
#include <isola/manager.hpp>
#include <isola/process.hpp>

#include "isola/detail/launch.hpp"
#include "process/registry.hpp"

namespace utf = boost::unit_test;
using namespace std::chrono_literals;
using isola::start_method;

namespace {

int increment(int v) { return v + 1; }
std::string shout(std::string s) { return s + "!"; }
ISOLA_REGISTER_FUNCTION(increment);
ISOLA_REGISTER_FUNCTION(shout);

// Never registered: no process may be made to run it.
int never_registered(int v) { return v * 1000; }

int exit_seven() { return 7; }
int exit_with(int code) { return code; }  // not registered statically either

const start_method all_methods[] = {start_method::fork, start_method::forkserver,
                                    start_method::spawn};

// Waits for pid with a deadline; its wait status, or -1 if it did not end.
int wait_for(pid_t pid, std::chrono::milliseconds limit) {
  auto until = std::chrono::steady_clock::now() + limit;
  for (;;) {
    int st = 0;
    pid_t r = ::waitpid(pid, &st, WNOHANG);
    if (r == pid) return st;
    if (std::chrono::steady_clock::now() > until) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &st, 0);
      return -1;
    }
    ::usleep(2000);  // polling a child's exit: there is no condition to wait on here
  }
}

// A target a forged start request would run: it leaves a mark.
int leave_mark(std::string path) {
  std::ofstream(path) << "ran";
  return 0;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(function_registry)

BOOST_AUTO_TEST_CASE(a_manager_runs_only_registered_update_functions_and_lives_on,
                     *utf::timeout(120)) {
  // All three managers start before this process sends anything: a function
  // a process passes to isola is registered in it and handed down to the
  // children it starts afterwards (that is what lets a forkserver or spawn
  // child run its target), so a manager started after the forged calls below
  // would have inherited them from this very process.
  std::vector<std::unique_ptr<isola::manager>> managers;
  for (auto m : all_methods) {
    isola::manager_options o;
    o.method = m;
    managers.push_back(std::make_unique<isola::manager>(o));
  }
  for (std::size_t i = 0; i < managers.size(); ++i) {
    BOOST_TEST_CONTEXT("manager started with " << all_methods[i]) {
      auto& mgr = *managers[i];
      auto d = mgr.dict<std::string, int>();
      d.set("n", 1);
      // Registered: runs.
      BOOST_TEST(d.update("n", &increment) == 2);
      // Unregistered functions of the program, libc's abort (it killed the
      // manager before), the middle of a registered function: each a
      // value_error, and nothing changes.
      BOOST_CHECK_THROW(d.update("n", &never_registered), isola::value_error);
      BOOST_CHECK_THROW(d.update("n", reinterpret_cast<int (*)(int)>(reinterpret_cast<void (*)()>(&::abort))), isola::value_error);
      auto mid = reinterpret_cast<int (*)(int)>(reinterpret_cast<std::uintptr_t>(&increment) + 4);
      BOOST_CHECK_THROW(d.update("n", mid), isola::value_error);
      // A registered function called through another type.
      BOOST_CHECK_THROW(d.update("n", reinterpret_cast<int (*)(int)>(reinterpret_cast<void (*)()>(&shout))), isola::value_error);
      BOOST_TEST(d.get("n") == 2);
      BOOST_TEST(d.update("n", &increment) == 3);  // the manager serves on
      auto v = mgr.value<int>(5);
      BOOST_CHECK_THROW(v.update(&never_registered), isola::value_error);
      BOOST_TEST(v.fetch_add(1) == 5);
      BOOST_TEST(v.load() == 6);
    }
  }
}

BOOST_AUTO_TEST_CASE(start_with_an_unknown_method_is_a_value_error_and_later_starts_work,
                     *utf::timeout(60)) {
  // Before, method 7 registered a child with pid 0 and no pidfd, and every
  // later start failed with "waitid: Invalid argument".
  isola::process_options bad;
  bad.method = static_cast<start_method>(7);
  isola::process p(bad, &exit_seven);
  BOOST_CHECK_THROW(p.start(), isola::value_error);
  BOOST_TEST(!p.is_alive());
  BOOST_TEST(isola::active_children().empty());
  for (auto m : all_methods) {
    BOOST_TEST_CONTEXT("then " << m) {
      isola::process_options o;
      o.method = m;
      isola::process q(o, &exit_seven);
      q.start();
      BOOST_TEST(q.join(30s));
      BOOST_TEST(q.exitcode().value_or(-1) == 7);
    }
  }
}

BOOST_AUTO_TEST_CASE(the_environment_alone_cannot_make_a_program_run_a_start_request,
                     *utf::timeout(60)) {
  // A complete, valid start request for leave_mark(path), on a socket at fd
  // 3, and ISOLA_SPAWN naming it: everything a spawn child gets, except that
  // the socket is not one its parent made. The program must not run it.
  std::string mark = "/tmp/isola-forged-spawn-" + std::to_string(::getpid());
  ::unlink(mark.c_str());
  using Fp = int (*)(std::string);
  namespace d = isola::detail;
  (void)d::static_function_registered<&d::function_trampoline<Fp, std::string>>;
  d::child_payload p;
  p.who.name = "forged";
  p.functions.push_back({d::to_code_ref(reinterpret_cast<const void*>(&leave_mark)),
                         static_cast<std::uint64_t>(d::fn_type_of<Fp>())});
  p.has_call = true;
  p.trampoline =
      d::to_code_ref(reinterpret_cast<const void*>(&d::function_trampoline<Fp, std::string>));
  p.has_target = true;
  p.target = d::to_code_ref(reinterpret_cast<const void*>(&leave_mark));
  p.args = isola::encode(std::tuple<std::string>(mark));
  auto data = isola::encode(p);
  std::uint64_t len = data.size();

  int err[2];
  BOOST_REQUIRE(::pipe(err) == 0);
  pid_t pid = ::fork();
  BOOST_REQUIRE(pid >= 0);
  if (pid == 0) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) ::_exit(90);
    if (::write(sv[1], &len, sizeof len) != sizeof len) ::_exit(91);
    if (::write(sv[1], data.data(), data.size()) != static_cast<ssize_t>(data.size())) ::_exit(92);
    ::dup2(sv[0], 3);
    ::dup2(err[1], 2);
    std::string env = "ISOLA_SPAWN=3," + std::to_string(::getppid());
    char* argv[] = {const_cast<char*>("forged"), nullptr};
    char* envp[] = {env.data(), nullptr};
    ::execve("/proc/self/exe", argv, envp);
    ::_exit(93);
  }
  ::close(err[1]);
  int st = wait_for(pid, 30s);
  std::string said;
  char buf[512];
  for (ssize_t n; (n = ::read(err[0], buf, sizeof buf)) > 0;) said.append(buf, n);
  ::close(err[0]);
  struct stat sb {};
  bool ran = ::stat(mark.c_str(), &sb) == 0;
  ::unlink(mark.c_str());
  BOOST_TEST(!ran);
  BOOST_TEST(WIFEXITED(st));
  BOOST_TEST(WEXITSTATUS(st) == 72);
  BOOST_TEST(said.find("ISOLA_SPAWN names no socket") != std::string::npos, said);
}

BOOST_AUTO_TEST_CASE(a_spawn_child_runs_a_function_its_parent_registered_at_run_time,
                     *utf::timeout(60)) {
  // exit_with is not registered statically: starting it registers it in
  // this process, and the start request hands the registration down.
  for (auto m : {start_method::forkserver, start_method::spawn}) {
    BOOST_TEST_CONTEXT(m) {
      isola::process_options o;
      o.method = m;
      isola::process q(o, &exit_with, 5);
      q.start();
      BOOST_TEST(q.join(30s));
      BOOST_TEST(q.exitcode().value_or(-1) == 5);
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()
