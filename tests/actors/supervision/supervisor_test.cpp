// Supervisors, modelled on Erlang's supervisor_SUITE: every strategy x every
// restart type x normal / abnormal / killed exits; intensity and escalation;
// shutdown escalation; children added and removed at run time; a child
// killed in the middle of requests.
#include <signal.h>

#include <boost/test/unit_test.hpp>

#include <chrono>
#include <fstream>
#include <iterator>
#include <sstream>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <isola/actor.hpp>
#include <isola/error.hpp>
#include <isola/process.hpp>
#include <isola/supervisor.hpp>

#include "test_util.hpp"

namespace utf = boost::unit_test;
using namespace std::chrono_literals;
using isola::child_spec;
using isola::restart;
using isola::strategy;

namespace {

struct ping {
  int x = 0;
  template <class A>
  void serialize(A& ar) {
    ar(x);
  }
};
struct die {
  int how = 0;  // 0: normal, 1: exit code 3, 2: SIGKILL itself, 3: SIGSEGV
  template <class A>
  void serialize(A& ar) {
    ar(how);
  }
};
struct sleep_for {
  int ms = 0;
  bool ignore_term = false;
  template <class A>
  void serialize(A& ar) {
    ar(ms, ignore_term);
  }
};

// A real SIGSEGV (UBSan would turn the null store into an exit).
__attribute__((no_sanitize("undefined"))) void segfault_now() {
  volatile int* p = nullptr;
  *p = 1;
}

isola::behavior worker() {
  return {
      [](const ping& p) { return p.x + 1; },
      [](const die& d) {
        switch (d.how) {
          case 0: isola::exit(0);
          case 1: isola::exit(3);
          case 2: ::raise(SIGKILL); break;
          default: segfault_now();
        }
      },
      [](const sleep_for& s) {
        if (s.ignore_term) ::signal(SIGTERM, SIG_IGN);
        std::this_thread::sleep_for(std::chrono::milliseconds(s.ms));
        return s.ms;
      },
  };
}

isola::behavior broken_start() { throw std::runtime_error("cannot initialise"); }

std::map<std::string, int> pids(const isola::supervisor& s) {
  std::map<std::string, int> out;
  for (auto& c : s.which_children()) out[c.name] = c.running ? c.actor.pid() : 0;
  return out;
}

/// Waits until every child that should run is running with a pid that
/// differs from (or equals) the one before, per `changed`.
bool settle(const isola::supervisor& s, const std::map<std::string, int>& before,
            const std::map<std::string, bool>& changed) {
  return isola_test::wait_until([&] {
    auto now = pids(s);
    for (auto& [name, ch] : changed) {
      auto it = now.find(name);
      if (it == now.end() || it->second == 0) return false;
      if (ch != (it->second != before.at(name))) return false;
    }
    return true;
  });
}

void kill_child(const isola::actor& a, int how) {
  auto mon = a.monitor();
  if (how == 2)
    ::kill(a.pid(), SIGKILL);
  else
    a.send(die{how});
  mon.get(10s);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(supervisor)

BOOST_AUTO_TEST_CASE(every_strategy_restart_type_and_exit_kind_behaves_as_in_otp,
                     *utf::timeout(300)) {
  for (auto strat : {strategy::one_for_one, strategy::one_for_all, strategy::rest_for_one}) {
    for (auto type : {restart::permanent, restart::transient, restart::temporary}) {
      for (int how : {0, 1, 2}) {  // normal, exit code, killed
        BOOST_TEST_CONTEXT("strategy " << int(strat) << " restart " << int(type) << " exit "
                                       << how) {
          isola::supervisor sup(
              {.strategy = strat, .intensity = 10, .period = 10s},
              {child_spec::actor("a", worker), child_spec::actor("b", worker).restart_type(type),
               child_spec::actor("c", worker)});
          auto before = pids(sup);
          kill_child(*sup.find("b"), how);
          bool abnormal = how != 0;
          bool again = type == restart::permanent || (type == restart::transient && abnormal);
          if (again) {
            std::map<std::string, bool> changed{{"b", true}};
            changed["a"] = strat == strategy::one_for_all;
            changed["c"] = strat != strategy::one_for_one;
            BOOST_TEST(settle(sup, before, changed));
            BOOST_TEST(sup.restarts() >= 1u);
            BOOST_TEST(sup.find("b")->request<int>(ping{1}).get(10s) == 2);
          } else {
            // The exit was applied (which_children goes through the
            // supervisor's queue), and nothing else moved.
            auto now = pids(sup);
            if (type == restart::temporary)
              BOOST_TEST(now.count("b") == 0u);
            else
              BOOST_TEST(now["b"] == 0);
            BOOST_TEST(now["a"] == before["a"]);
            BOOST_TEST(now["c"] == before["c"]);
            BOOST_TEST(sup.restarts() == 0u);
            BOOST_TEST(!sup.find("b"));
          }
          BOOST_TEST(sup.running());
        }
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(children_started_by_spawn_are_supervised_alike, *utf::timeout(120)) {
  isola::supervisor sup({.strategy = strategy::rest_for_one, .intensity = 10, .period = 10s},
                        {child_spec::actor("a", worker).method(isola::start_method::spawn),
                         child_spec::actor("b", worker).method(isola::start_method::spawn)});
  auto before = pids(sup);
  kill_child(*sup.find("a"), 3);
  BOOST_TEST(settle(sup, before, {{"a", true}, {"b", true}}));
  BOOST_TEST(sup.find("b")->request<int>(ping{2}).get(10s) == 3);
}

BOOST_AUTO_TEST_CASE(exceeding_the_intensity_shuts_the_supervisor_down, *utf::timeout(120)) {
  isola::supervisor sup(
      {.strategy = strategy::one_for_one, .intensity = 2, .period = 30s, .name = "top"},
      {child_spec::actor("w", worker)});
  std::vector<int> seen;
  for (int i = 0; i < 3; ++i) {
    std::optional<isola::actor> w;
    BOOST_TEST(isola_test::wait_until([&] {
      w = sup.find("w");
      return w && std::find(seen.begin(), seen.end(), w->pid()) == seen.end();
    }));
    seen.push_back(w->pid());
    kill_child(*w, 3);
  }
  auto r = sup.wait(10s);
  BOOST_REQUIRE(r);
  BOOST_TEST(r->what == isola::exit_reason::kind::shutdown);
  BOOST_TEST(r->text.find("max restart intensity") != std::string::npos);
  BOOST_TEST(!sup.running());
  BOOST_TEST(sup.restarts() == 2u);
  BOOST_CHECK_THROW(sup.start_child(child_spec::actor("late", worker)), isola::value_error);
}

BOOST_AUTO_TEST_CASE(a_nested_supervisor_that_gives_up_escalates_to_its_parent,
                     *utf::timeout(120)) {
  isola::supervisor top(
      {.strategy = strategy::one_for_one, .intensity = 1, .period = 30s, .name = "top"},
      {child_spec::supervisor(
           "mid", {.strategy = strategy::one_for_one, .intensity = 1, .period = 30s, .name = "mid"},
           {child_spec::actor("leaf", worker)}),
       child_spec::actor("sibling", worker)});
  int sibling = top.find("sibling")->pid();
  // Each round: the leaf crashes twice, "mid" gives up, "top" restarts it
  // (round 1) or gives up itself (round 2).
  for (int round = 0; round < 2; ++round) {
    for (int crash = 0; crash < 2; ++crash) {
      std::optional<isola::actor> leaf;
      BOOST_TEST(isola_test::wait_until([&] {
        try {
          leaf = top.child_supervisor("mid").find("leaf");
        } catch (const isola::value_error&) {
          leaf.reset();
        }
        return leaf.has_value();
      }));
      kill_child(*leaf, 1);
    }
  }
  auto r = top.wait(20s);
  BOOST_REQUIRE(r);
  BOOST_TEST(r->what == isola::exit_reason::kind::shutdown);
  BOOST_TEST(r->text.find("mid") != std::string::npos);
  BOOST_TEST(isola_test::wait_until([&] { return isola_test::pid_dead(sibling); }));
}

BOOST_AUTO_TEST_CASE(stopping_a_child_escalates_from_stop_to_terminate_to_kill,
                     *utf::timeout(120)) {
  isola::supervisor sup({}, {child_spec::actor("polite", worker).shutdown(200ms),
                             child_spec::actor("busy", worker).shutdown(200ms),
                             child_spec::actor("stubborn", worker).shutdown(200ms)});
  auto polite = *sup.find("polite");
  auto mp = polite.monitor();
  auto t0 = std::chrono::steady_clock::now();
  sup.terminate_child("polite");
  BOOST_TEST(mp.get(5s).reason.to_string() == "shutdown");
  BOOST_TEST((std::chrono::steady_clock::now() - t0 < 200ms));

  auto busy = *sup.find("busy");
  auto mb = busy.monitor();
  auto fb = busy.request<int>(sleep_for{30'000, false});
  t0 = std::chrono::steady_clock::now();
  sup.terminate_child("busy");  // stop is not read in time; SIGTERM ends it
  auto took = std::chrono::steady_clock::now() - t0;
  BOOST_TEST((took >= 200ms));
  BOOST_TEST((took < 5s));
  BOOST_TEST(mb.get(5s).reason.to_string() == "shutdown");
  BOOST_CHECK_THROW(fb.get(5s), isola::actor_exited);

  auto stubborn = *sup.find("stubborn");
  auto ms = stubborn.monitor();
  auto fs = stubborn.request<int>(sleep_for{30'000, true});
  BOOST_TEST(!fs.wait(50ms));  // the handler is running (and ignores SIGTERM now)
  t0 = std::chrono::steady_clock::now();
  sup.terminate_child("stubborn");
  took = std::chrono::steady_clock::now() - t0;
  BOOST_TEST((took >= 400ms));
  BOOST_TEST((took < 5s));
  BOOST_TEST(ms.get(5s).reason.to_string() == "shutdown");
  BOOST_TEST(sup.restarts() == 0u);
  // Terminated children keep their specs and can be restarted or deleted.
  auto again = sup.restart_child("polite");
  BOOST_TEST(again.request<int>(ping{4}).get(10s) == 5);
  BOOST_CHECK_THROW(sup.delete_child("polite"), isola::value_error);  // running
  sup.delete_child("busy");
  BOOST_TEST(sup.which_children().size() == 2u);
}

BOOST_AUTO_TEST_CASE(children_are_added_found_and_removed_at_run_time, *utf::timeout(120)) {
  isola::supervisor sup({});
  BOOST_TEST(sup.which_children().empty());
  auto a = sup.start_child(child_spec::actor("a", worker));
  BOOST_TEST(sup.find("a") == a);
  BOOST_CHECK_THROW(sup.start_child(child_spec::actor("a", worker)), isola::value_error);
  BOOST_TEST(!sup.find("nobody"));
  // A child whose start function throws: an error from start_child, the tree unharmed.
  BOOST_CHECK_EXCEPTION(sup.start_child(child_spec::actor("broken", broken_start)),
                        isola::process_error, [](const isola::process_error& e) {
                          return std::string(e.what()).find("cannot initialise") !=
                                 std::string::npos;
                        });
  BOOST_TEST(sup.which_children().size() == 1u);
  BOOST_TEST(a.request<int>(ping{1}).get(10s) == 2);
  sup.terminate_child("a");
  sup.delete_child("a");
  BOOST_TEST(sup.which_children().empty());
  BOOST_CHECK_THROW(sup.terminate_child("a"), isola::value_error);
}

BOOST_AUTO_TEST_CASE(a_supervisor_that_cannot_start_its_children_is_an_error, *utf::timeout(60)) {
  BOOST_CHECK_THROW(isola::supervisor({}, {child_spec::actor("ok", worker),
                                           child_spec::actor("broken", broken_start)}),
                    isola::process_error);
}

BOOST_AUTO_TEST_CASE(stop_ends_every_child_before_it_returns, *utf::timeout(60)) {
  isola::supervisor sup({},
                        {child_spec::actor("first", worker), child_spec::actor("second", worker)});
  auto first = *sup.find("first");
  auto second = *sup.find("second");
  auto m1 = first.monitor();
  sup.stop();
  BOOST_TEST(!sup.running());
  BOOST_TEST(!first.alive());
  BOOST_TEST(!second.alive());
  BOOST_TEST(m1.get(5s).reason.to_string() == "shutdown");
  BOOST_TEST(sup.wait().to_string() == "shutdown");
  sup.stop();  // idempotent
}

BOOST_AUTO_TEST_CASE(a_child_killed_in_the_middle_of_a_request_fails_it_and_is_restarted,
                     *utf::timeout(120)) {
  isola::supervisor sup({.intensity = 100, .period = 10s}, {child_spec::actor("w", worker)});
  auto w = *sup.find("w");
  auto f = w.request<int>(sleep_for{10'000, false});
  BOOST_TEST(!f.wait(20ms));
  ::kill(w.pid(), SIGKILL);
  BOOST_CHECK_THROW(f.get(5s), isola::actor_exited);
  std::optional<isola::actor> w2;
  BOOST_TEST(isola_test::wait_until([&] {
    w2 = sup.find("w");
    return w2 && *w2 != w;
  }));
  BOOST_TEST(w2->request<int>(ping{9}).get(10s) == 10);
}

// The parent pid of pid (from /proc/pid/stat), 0 if unknown.
int parent_pid_of(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto p = s.rfind(')');
  if (p == std::string::npos) return 0;
  std::istringstream rest(s.substr(p + 2));
  char state = 0;
  int ppid = 0;
  rest >> state >> ppid;
  return ppid;
}

// OTP: between a child's crash and its restart, which_children shows it as
// `restarting` (no pid). find() never returns the incarnation that crashed,
// even before the root has handled its exit: here the child's forkserver is
// stopped, so the dead child stays unreaped and its exit cannot reach the
// root until the forkserver goes on.
BOOST_AUTO_TEST_CASE(find_right_after_a_crash_never_returns_the_dead_incarnation,
                     *utf::timeout(120)) {
  isola::supervisor sup({.intensity = 100, .period = 10s}, {child_spec::actor("w", worker)});
  for (int round = 0; round < 3; ++round) {
    BOOST_TEST_CONTEXT("round " << round) {
      std::optional<isola::actor> w;
      BOOST_REQUIRE(isola_test::wait_until([&] { return (w = sup.find("w")).has_value(); }));
      const int zygote = parent_pid_of(w->pid());
      BOOST_REQUIRE(zygote > 1);
      BOOST_REQUIRE(zygote != ::getpid());  // a forkserver child (the actors' default)
      ::kill(zygote, SIGSTOP);
      struct resume {
        int pid;
        ~resume() { ::kill(pid, SIGCONT); }
      } resume_it{zygote};
      ::kill(w->pid(), SIGKILL);
      BOOST_REQUIRE(isola_test::wait_until([&] { return isola_test::pid_dead(w->pid()); }));
      auto now = sup.find("w");
      BOOST_TEST((!now || *now != *w), "find returned the dead incarnation");
      for (auto& c : sup.which_children())
        if (c.name == "w") BOOST_TEST(!c.running, "which_children says the dead one runs");
      ::kill(zygote, SIGCONT);
      BOOST_REQUIRE(isola_test::wait_until([&] {
        auto n = sup.find("w");
        return n && *n != *w;
      }));
    }
  }
  BOOST_TEST(sup.find("w")->request<int>(ping{1}).get(10s) == 2);
}

BOOST_AUTO_TEST_CASE(ten_thousand_requests_while_children_are_killed_at_random,
                     *utf::timeout(300)) {
  isola::supervisor sup({.intensity = 1000, .period = 10s},
                        {child_spec::actor("w0", worker), child_spec::actor("w1", worker),
                         child_spec::actor("w2", worker)});
  std::atomic<bool> done{false};
  std::atomic<int> kills{0};
  std::thread killer([&] {
    std::mt19937 rng(42);
    while (!done) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5 + rng() % 20));
      auto w = sup.find("w" + std::to_string(rng() % 3));
      if (w && ::kill(w->pid(), SIGKILL) == 0) ++kills;
    }
  });
  int answered = 0, exited = 0, other = 0;
  const int n = 10'000;
  std::vector<isola::future<int>> window;
  for (int i = 0; i < n; ++i) {
    std::optional<isola::actor> w;
    while (!(w = sup.find("w" + std::to_string(i % 3)))) std::this_thread::yield();
    window.push_back(w->request<int>(ping{i}));
    if (window.size() == 32 || i == n - 1) {
      for (auto& f : window) {
        try {
          f.get(10s);  // never hangs: a value or actor_exited
          ++answered;
        } catch (const isola::actor_exited&) {
          ++exited;
        } catch (...) {
          ++other;
        }
      }
      window.clear();
    }
  }
  done = true;
  killer.join();
  BOOST_TEST(answered + exited == n);
  BOOST_TEST(other == 0);
  BOOST_TEST(kills.load() > 0);
  BOOST_TEST(answered > n / 2);
  BOOST_TEST_MESSAGE(answered << " answered, " << exited << " actor_exited, " << kills.load()
                              << " kills");
  BOOST_TEST(sup.running());
}

BOOST_AUTO_TEST_SUITE_END()
