// The gateway never waits on one mailbox, and the root's tables stay bounded
// (issue 16, finding 7). Two roots on loopback: this test (node A) and a copy
// of it started as node B (`--node-b KEY`), which answers "tables" on stdin
// with the sizes of its gateway's and registry's tables. An actor of B is
// stopped (SIGSTOP) or stuck in a handler with a full mailbox while A floods
// it; A's traffic to B's other actors must flow meanwhile.
//
// The notice and registry cases run in this root alone: they count its
// threads (/proc/self/task) and read its registry's tables directly.
#define BOOST_TEST_NO_MAIN
#include <boost/test/unit_test.hpp>

#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <isola/actor.hpp>
#include <isola/function_registry.hpp>
#include <isola/error.hpp>
#include <isola/node.hpp>
#include <isola/popen.hpp>
#include <isola/runtime.hpp>

#include "../../support/peer_program.hpp"
#include "../../support/test_util.hpp"
#include "core/mailbox.hpp"
#include "remote/gateway.hpp"
#include "root/registry.hpp"

namespace utf = boost::unit_test;
using namespace std::chrono_literals;
using clk = std::chrono::steady_clock;

namespace {

struct add {
  int x = 0, y = 0;
  template <class A>
  void serialize(A& ar) {
    ar(x, y);
  }
};
struct blob {
  std::string s;
  template <class A>
  void serialize(A& ar) {
    ar(s);
  }
};
struct hang {
  template <class A>
  void serialize(A&) {}
};
struct watch_all {
  std::vector<isola::actor> targets;
  template <class A>
  void serialize(A& ar) {
    ar(targets);
  }
};
struct downs_q {
  template <class A>
  void serialize(A&) {}
};
struct link_to {
  isola::actor target;
  template <class A>
  void serialize(A& ar) {
    ar(target);
  }
};

// An actor that answers, swallows blobs, and on `hang` stops reading its
// mailbox for good (alive, never reading).
isola::behavior worker() {
  return {
      [](const add& a) { return a.x + a.y; },
      [](const blob&) {},
      [](const hang&) {
        for (;;) ::pause();
      },
  };
}
// Another node asks to spawn it: registered at start-up.
ISOLA_REGISTER_FUNCTION(worker);

// Monitors the actors it is given and counts their down notices.
int g_downs = 0;
isola::behavior watcher() {
  return {
      [](const watch_all& w) {
        for (auto& a : w.targets) isola::this_actor::monitor(a);
        return static_cast<int>(w.targets.size());
      },
      [](const isola::down&) { ++g_downs; },
      [](const blob&) {},
      [](const downs_q&) { return g_downs; },
      [](const link_to& l) {
        isola::this_actor::link(l.target);
        return true;
      },
  };
}

const std::string key = "gateway-key-0123456789";


struct b_tables {
  std::size_t in_flight = 0, parked = 0, dead = 0, parked_notices = 0;
};

/// Node B: a copy of this program listening on loopback.
struct node_b : isola_test::peer_program {
  node_b() : peer_program({"--node-b", key}) {}
  b_tables tables() {
    auto line = ask("tables");
    b_tables t;
    BOOST_REQUIRE_EQUAL(std::sscanf(line.c_str(), "TABLES %zu %zu %zu %zu", &t.in_flight,
                                    &t.parked, &t.dead, &t.parked_notices),
                        4);
    return t;
  }
};

double seconds_since(clk::time_point t0) {
  return std::chrono::duration<double>(clk::now() - t0).count();
}

std::size_t threads_of_this_process() {
  std::size_t n = 0;
  DIR* d = ::opendir("/proc/self/task");
  BOOST_REQUIRE(d);
  while (auto* e = ::readdir(d))
    if (e->d_name[0] != '.') ++n;
  ::closedir(d);
  return n;
}

enum class stuck { stopped, never_reading };

/// The victim on B (a 4 KiB mailbox) is stopped or stuck; A floods it with
/// more than its mailbox and its parking hold. Requests to another actor of
/// B are answered within their deadlines all the while, a request to the
/// victim fails with queue_full at once, and B's parking stays bounded.
void stuck_actor_case(stuck how) {
  node_b b;
  auto n = isola::node::connect("127.0.0.1", b.port(), key);
  isola::spawn_options small;
  small.mailbox_bytes = 4096;
  auto victim = n.spawn(small, worker);
  auto other = n.spawn(worker);
  BOOST_TEST(victim.request<int>(add{1, 2}).get(10s) == 3);
  BOOST_TEST(other.request<int>(add{3, 4}).get(10s) == 7);
  if (how == stuck::stopped)
    BOOST_REQUIRE_EQUAL(::kill(victim.pid(), SIGSTOP), 0);
  else
    victim.send(hang{});

  const std::size_t flood = 2 * isola::detail::gateway_parking_per_target + 50;
  for (std::size_t i = 0; i < flood; ++i) victim.send(blob{std::string(1024, 'x')});

  // The parking for the victim is full by the time this arrives (messages
  // from one sender arrive in order): refused at once, not after 5 s.
  auto t0 = clk::now();
  BOOST_CHECK_THROW(victim.request<int>(add{1, 1}, 5s).get(10s), isola::queue_full);
  BOOST_TEST(seconds_since(t0) < 4.0);

  // The victim's neighbour is served on time, every time.
  double slowest = 0;
  for (int i = 0; i < 20; ++i) {
    auto t = clk::now();
    int r = -1;
    try {
      r = other.request<int>(add{i, 1}, 2s).get(5s);
    } catch (const std::exception& e) {
      BOOST_ERROR("request " << i << " to the other actor failed: " << e.what());
      break;
    }
    BOOST_TEST(r == i + 1);
    slowest = std::max(slowest, seconds_since(t));
  }
  BOOST_TEST_MESSAGE("the slowest of 20 requests to the other actor took " << slowest << " s");
  BOOST_TEST(slowest < 2.0);
  BOOST_TEST(n.connected());

  BOOST_TEST(b.tables().parked == isola::detail::gateway_parking_per_target);
  // (B's relay forgets an answered request just after answering it.)
  BOOST_TEST(isola_test::wait_until([&] { return b.tables().in_flight == 0; }, 5s));

  if (how == stuck::stopped) {
    // Resumed, it reads its mailbox and the parked messages follow; then it
    // answers again.
    BOOST_REQUIRE_EQUAL(::kill(victim.pid(), SIGCONT), 0);
    BOOST_TEST(isola_test::wait_until([&] { return b.tables().parked == 0; }, 10s));
    BOOST_TEST(victim.request<int>(add{2, 2}, 10s).get(15s) == 4);
  } else {
    // Killed, the messages parked for it are dropped once B has reaped it.
    BOOST_REQUIRE_EQUAL(::kill(victim.pid(), SIGKILL), 0);
    BOOST_TEST(isola_test::wait_until([&] { return !victim.alive(); }, 10s));
    BOOST_CHECK_THROW(victim.request<int>(add{2, 2}, 10s).get(15s), isola::actor_exited);
    BOOST_TEST(isola_test::wait_until([&] { return b.tables().parked == 0; }, 10s));
  }
  BOOST_TEST(other.request<int>(add{40, 2}, 5s).get(10s) == 42);
  BOOST_TEST(b.tables().in_flight <= 1u);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(gateway)

BOOST_AUTO_TEST_CASE(a_stopped_actor_does_not_stall_requests_to_other_actors_of_its_node,
                     *utf::timeout(90)) {
  stuck_actor_case(stuck::stopped);
}

BOOST_AUTO_TEST_CASE(an_actor_that_never_reads_does_not_stall_requests_to_other_actors_of_its_node,
                     *utf::timeout(90)) {
  stuck_actor_case(stuck::never_reading);
}

BOOST_AUTO_TEST_CASE(the_records_of_requests_that_timed_out_are_freed_on_the_serving_node,
                     *utf::timeout(60)) {
  node_b b;
  auto n = isola::node::connect("127.0.0.1", b.port(), key);
  auto victim = n.spawn(worker);
  victim.send(hang{});
  constexpr int count = 200;
  std::vector<isola::future<int>> fs;
  for (int i = 0; i < count; ++i) fs.push_back(victim.request<int>(add{i, 0}, 300ms));
  int timed_out = 0;
  for (auto& f : fs) {
    try {
      f.get(10s);
    } catch (const isola::timeout_error&) {
      ++timed_out;
    }
  }
  BOOST_TEST(timed_out == count);
  // B forgets them too (they were in the victim's mailbox, never answered).
  BOOST_TEST(isola_test::wait_until([&] { return b.tables().in_flight == 0; }, 10s));
  BOOST_TEST(b.tables().parked == 0u);
}

BOOST_AUTO_TEST_CASE(down_notices_to_a_full_mailbox_take_no_thread_each_and_arrive_later,
                     *utf::timeout(60)) {
  isola::spawn_options small;
  small.mailbox_bytes = 4096;
  auto w = isola::spawn(small, watcher);
  constexpr int count = 40;
  watch_all job;
  for (int i = 0; i < count; ++i) job.targets.push_back(isola::spawn(worker));
  BOOST_TEST(w.request<int>(job).get(20s) == count);

  // Stopped, with a full mailbox.
  BOOST_REQUIRE_EQUAL(::kill(w.pid(), SIGSTOP), 0);
  // Large messages, then empty ones, until not even an empty one fits (a
  // down notice is larger).
  int put = 0;
  for (std::size_t size : {512, 0}) {
    auto filler = isola::encode(blob{std::string(size, 'x')});
    while (isola::detail::try_post(w.id(), isola::detail::env_kind::send, 0,
                                   isola::type_tag<blob>(), filler) ==
           isola::detail::post_result::ok)
      ++put;
  }
  BOOST_TEST_MESSAGE("the watcher's mailbox took " << put << " messages");

  auto before = threads_of_this_process();
  std::vector<isola::future<isola::down>> downs;
  for (auto& a : job.targets) downs.push_back(a.monitor());
  for (auto& a : job.targets) a.stop();
  // Our downs come after the watcher's notices (its monitors came first).
  for (auto& d : downs) d.get(20s);
  auto after = threads_of_this_process();
  BOOST_TEST_MESSAGE("threads: " << before << " before, " << after << " after " << count
                                 << " notices to a full mailbox");
  BOOST_TEST(after <= before + 1);  // at most the one worker for all notices
  // The watcher's 40 are parked (ours may be too, for a moment: a put that
  // does not wait also fails while another producer holds the ring's lock).
  BOOST_TEST(isola::detail::node_tables().parked_notices >= static_cast<std::size_t>(count));

  // Resumed, it gets every one of them.
  BOOST_REQUIRE_EQUAL(::kill(w.pid(), SIGCONT), 0);
  BOOST_TEST(isola_test::wait_until([] { return isola::detail::node_tables().parked_notices == 0; }, 10s));
  BOOST_TEST(w.request<int>(downs_q{}).get(20s) == count);
  w.stop();
}

BOOST_AUTO_TEST_CASE(exit_records_are_capped_and_a_forgotten_actor_still_reads_as_ended,
                     *utf::timeout(60)) {
  isola::detail::node_set_dead_records_cap(4);
  std::vector<isola::actor> gone;
  for (int i = 0; i < 10; ++i) {
    auto a = isola::spawn(worker);
    auto d = a.monitor();
    a.stop();
    d.get(10s);
    gone.push_back(a);
  }
  BOOST_TEST(isola::detail::node_tables().dead <= 4u);
  // The oldest one's record is gone: it still reads as ended.
  BOOST_TEST(!gone.front().alive());
  BOOST_CHECK_THROW(gone.front().request<int>(add{1, 1}).get(10s), isola::actor_exited);
  auto dn = gone.front().monitor().get(10s);
  BOOST_TEST(dn.reason.what == isola::exit_reason::kind::unknown);
  // The newest one's is kept.
  BOOST_TEST(gone.back().monitor().get(10s).reason.what == isola::exit_reason::kind::shutdown);
  isola::detail::node_set_dead_records_cap(isola::detail::default_dead_records);
}

BOOST_AUTO_TEST_CASE(a_link_to_a_root_thread_goes_when_the_thread_ends, *utf::timeout(60)) {
  auto w = isola::spawn(watcher);
  auto before = isola::detail::node_tables().links;
  bool linked = false;
  std::size_t during = 0;
  // A root thread's inbox ends with the thread, without an exit to handle.
  std::thread([&] {
    linked = w.request<bool>(link_to{isola::this_actor::self()}).get(10s);
    during = isola::detail::node_tables().links;
  }).join();
  BOOST_TEST(linked);
  BOOST_TEST(during == before + 2);  // both ends
  BOOST_TEST(isola::detail::node_tables().links == before);
  w.stop();
}

BOOST_AUTO_TEST_SUITE_END()

namespace {

int node_b_main(const std::string& k) {
  auto port = isola::node::listen(0, k, {"127.0.0.1"});
  std::cout << "PORT " << port << std::endl;
  // Commands on stdin, read with read(2) (see node_test.cpp).
  std::string buf;
  for (;;) {
    char c[256];
    ssize_t r = ::read(0, c, sizeof c);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    buf.append(c, static_cast<std::size_t>(r));
    std::size_t nl;
    while ((nl = buf.find('\n')) != std::string::npos) {
      std::string line = buf.substr(0, nl);
      buf.erase(0, nl + 1);
      if (line == "tables") {
        auto g = isola::detail::gateway_table_sizes();
        auto r = isola::detail::node_tables();
        std::cout << "TABLES " << g.in_flight << " " << g.parked << " " << r.dead << " "
                  << r.parked_notices << std::endl;
      }
    }
  }
  return 0;
}

bool init_unit_test() { return true; }

}  // namespace

int main(int argc, char** argv) {
  isola::runtime rt{argc, argv};
  if (argc > 2 && std::string(argv[1]) == "--node-b") return node_b_main(argv[2]);
  return boost::unit_test::unit_test_main(&init_unit_test, argc, argv);
}
