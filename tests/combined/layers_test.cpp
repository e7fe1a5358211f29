// The layers used together (issue 17, item 1): each pair of process (each
// start method), queue, pipe, pool, executor, supervisor, actor, manager,
// node and popen runs in one real program (programs/layers_program.cpp),
// which must do a round trip through both and end by itself, leaving no
// process behind. Before the fix a program with a supervisor and a fork
// child hung: the child ran the parent's actor-layer shutdown hooks on exit.
#include <boost/test/data/monomorphic.hpp>
#include <boost/test/data/test_case.hpp>
#include <boost/test/unit_test.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <vector>

#include <isola/actor.hpp>
#include <isola/process.hpp>

#include "test_util.hpp"

namespace utf = boost::unit_test;
namespace bdata = boost::unit_test::data;
using namespace std::chrono_literals;

namespace {

const std::vector<std::string> layers = {"fork",  "forkserver", "spawn",    "queue",
                                         "pipe",  "pool",       "executor", "supervisor",
                                         "actor", "manager",    "node",     "popen"};

// Ordered: the one set up first is there when the other starts (a fork
// child made while a supervisor runs is the reported hang).
std::vector<std::string> all_pairs() {
  std::vector<std::string> v;
  for (std::size_t i = 0; i < layers.size(); ++i)
    for (std::size_t j = 0; j < layers.size(); ++j)
      if (i != j) v.push_back(layers[i] + "+" + layers[j]);
  return v;
}

std::string program_path() {
  // The program is built next to this test.
  char buf[4096];
  auto n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  std::string self(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
  return self.substr(0, self.rfind('/') + 1) + "combined_layers_program";
}

/// The processes whose parent is ppid (from /proc).
std::vector<int> children_of(int ppid) {
  std::vector<int> v;
  DIR* d = ::opendir("/proc");
  if (!d) return v;
  while (auto* e = ::readdir(d)) {
    int pid = std::atoi(e->d_name);
    if (pid <= 0) continue;
    std::string s;
    char buf[512];
    int fd = ::open(("/proc/" + std::string(e->d_name) + "/stat").c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    auto n = ::read(fd, buf, sizeof buf - 1);
    ::close(fd);
    if (n <= 0) continue;
    s.assign(buf, static_cast<std::size_t>(n));
    auto p = s.rfind(')');  // "pid (comm) state ppid ..."
    if (p == std::string::npos || p + 4 >= s.size()) continue;
    if (std::atoi(s.c_str() + p + 4) == ppid) v.push_back(pid);
  }
  ::closedir(d);
  return v;
}

/// A sanitizer's report in the program's output (its children's included).
bool sanitizer_report(const std::string& out) {
  for (const char* what :
       {"ThreadSanitizer", "AddressSanitizer", "LeakSanitizer", "runtime error:"})
    if (out.find(what) != std::string::npos) return true;
  return false;
}

/// What became of one run of the program.
struct outcome {
  int program_status = -1;  // its wait status; -1: it did not end in time (killed)
  int leftovers = 0;        // its descendants still alive after it ended, past the grace
  std::string output;
};

// The harness is a fork child of the test made a child subreaper, so that
// every process the program leaves behind is re-parented to it and can be
// counted; it reports through its exit code and the output file.
enum harness_code { harness_ok = 0, harness_hung = 10, harness_leftovers = 11, harness_error = 12 };

outcome run_program(const std::string& a, const std::string& b, std::chrono::seconds limit) {
  isola_test::temp_file out, status;
  std::string prog = program_path();
  pid_t h = ::fork();
  BOOST_REQUIRE(h >= 0);
  if (h == 0) {
    ::prctl(PR_SET_CHILD_SUBREAPER, 1);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // the test timed out: nothing outlives it
    int fd = ::open(out.path().c_str(), O_WRONLY | O_TRUNC);
    pid_t p = ::fork();
    if (p == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      ::dup2(fd, 1);
      ::dup2(fd, 2);  // a sanitizer's report too
      ::execl(prog.c_str(), prog.c_str(), a.c_str(), b.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    if (p < 0) ::_exit(harness_error);
    auto deadline = std::chrono::steady_clock::now() + limit;
    int st = 0;
    bool ended = false;
    while (std::chrono::steady_clock::now() < deadline) {
      pid_t r = ::waitpid(p, &st, WNOHANG);
      if (r == p) {
        ended = true;
        break;
      }
      ::usleep(2000);
    }
    if (!ended) {
      ::kill(p, SIGKILL);
      ::waitpid(p, &st, 0);
    }
    // Every descendant now is an orphan of ours: it has a short while to end
    // (they die with their parents), then it counts as left behind.
    int left = 0;
    auto grace = std::chrono::steady_clock::now() + 3s;
    for (;;) {
      pid_t r = ::waitpid(-1, nullptr, WNOHANG);
      if (r < 0) break;  // ECHILD: none left
      if (r > 0) continue;
      if (std::chrono::steady_clock::now() >= grace) {
        left = 1;
        for (int pid : children_of(::getpid())) ::kill(pid, SIGKILL);
        while (::waitpid(-1, nullptr, 0) > 0) {}
        break;
      }
      ::usleep(2000);
    }
    FILE* f = std::fopen(status.path().c_str(), "w");
    if (f) {
      std::fprintf(f, "%d", ended ? st : -1);
      std::fclose(f);
    }
    ::_exit(!ended ? harness_hung : left ? harness_leftovers : harness_ok);
  }
  int hs = 0;
  ::waitpid(h, &hs, 0);
  outcome o;
  o.output = out.read();
  auto st = status.read();
  o.program_status = st.empty() ? -2 : std::stoi(st);
  o.leftovers = WIFEXITED(hs) && WEXITSTATUS(hs) == harness_leftovers;
  if (WIFEXITED(hs) && WEXITSTATUS(hs) == harness_hung) o.program_status = -1;
  return o;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(layers_together)

BOOST_TEST_DECORATOR(*utf::timeout(60))
BOOST_DATA_TEST_CASE(every_pair_of_layers_does_its_round_trips_and_the_program_ends,
                     bdata::make(all_pairs()), pair) {
  auto plus = pair.find('+');
  auto a = pair.substr(0, plus), b = pair.substr(plus + 1);
#if defined(__SANITIZE_ADDRESS__)
  // gcc 12's AddressSanitizer takes no lock around fork(): a fork child made
  // while another thread is inside ASan's allocator can wait on its lock for
  // ever (seen once in CI for pool+fork). That is the sanitizer's, not
  // isola's (the plain and TSan builds run these pairs; docs/decisions.md,
  // "fork from a threaded program"), so under ASan a fork child after a
  // layer that runs threads is not tried.
  if (b == "fork" && (a == "pool" || a == "executor" || a == "supervisor" || a == "actor" ||
                      a == "node" || a == "popen")) {
    BOOST_TEST_MESSAGE(pair << ": not run under ASan (its allocator is not fork-safe)");
    return;
  }
#endif
  auto o = run_program(a, b, 20s);
  BOOST_TEST_INFO("layers " << pair << ", output:\n" << o.output);
  BOOST_TEST(o.program_status != -1, "the program did not end within 20 s");
  BOOST_TEST(o.output.find("round trips done") != std::string::npos);
  BOOST_TEST(o.program_status == 0);
  BOOST_TEST(o.leftovers == 0, "processes left behind after the program ended");
  BOOST_TEST(!sanitizer_report(o.output));
}

// The harness's checks can fail: a program that leaves a process behind is
// caught (the grandchild sleeps longer than the harness's grace).
BOOST_AUTO_TEST_CASE(the_harness_catches_a_process_left_behind_by_the_program, *utf::timeout(30)) {
  auto o = run_program("--leave-behind", "20", 20s);
  BOOST_TEST(o.program_status == 0);
  BOOST_TEST(o.leftovers == 1);
}

// A fork child of a program whose actor layer runs (CAF threads, a
// supervisor, a pool, an actor) gets none of it: using the copies is a
// start_method_error naming the fix, and the parent's layer goes on.
BOOST_TEST_DECORATOR(*utf::timeout(60))
BOOST_DATA_TEST_CASE(a_fork_child_is_refused_the_parents_actor_layer_instead_of_hanging,
                     bdata::make(std::vector<std::string>{"supervisor", "pool", "spawn", "actor",
                                                          "actor-process"}),
                     what) {
  auto o = run_program("--fork-child-uses", what, 30s);
  BOOST_TEST_INFO("case " << what << ", output:\n" << o.output);
  BOOST_TEST(o.program_status != -1, "the program did not end within 30 s");
  BOOST_TEST(o.output.find("refused: ") != std::string::npos);
  BOOST_TEST(o.output.find("round trips done") != std::string::npos);
  BOOST_TEST(o.program_status == 0);
  BOOST_TEST(o.leftovers == 0, "processes left behind after the program ended");
  BOOST_TEST(!sanitizer_report(o.output));
}

BOOST_AUTO_TEST_SUITE_END()
