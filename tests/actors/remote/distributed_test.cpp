// Coordinated sync and queues (isola/distributed/): an event, condition,
// barrier or queue whose state lives in a coordinator actor, and the
// response_promise they are built on. Every party is a real process: the
// root's threads and actor processes started by forkserver or spawn.
#include <signal.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>

#include <chrono>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <isola/actor.hpp>
#include <isola/distributed/barrier.hpp>
#include <isola/distributed/condition.hpp>
#include <isola/distributed/event.hpp>
#include <isola/distributed/queue.hpp>
#include <isola/error.hpp>
#include <isola/response_promise.hpp>
#include <isola/value.hpp>

namespace utf = boost::unit_test;
using namespace std::chrono_literals;
using clk = std::chrono::steady_clock;
using isola::start_method;
namespace dist = isola::distributed;

namespace {

#define MSG0(name)        \
  struct name {           \
    template <class A>    \
    void serialize(A&) {} \
  };
MSG0(hold)
MSG0(release_all)
MSG0(ask_pid)
MSG0(do_wait)
MSG0(do_acquire)
MSG0(drop_it)
#undef MSG0
struct do_wait_for {
  int ms = 0;
  template <class A>
  void serialize(A& ar) {
    ar(ms);
  }
};
struct produce {
  int from = 0, n = 0;
  int pause_every = 0;  // > 0: a 20 ms pause after that many items (a slow producer)
  template <class A>
  void serialize(A& ar) {
    ar(from, n, pause_every);
  }
};

// ---------------------------------------------------------- response_promise

// Holds requests and answers them all, with how many were held, later.
isola::behavior gate() {
  struct st {
    std::vector<isola::response_promise<int>> held;
  };
  auto s = std::make_shared<st>();
  return {
      [s](const hold&) {
        s->held.push_back(isola::this_actor::make_response_promise<int>());
        return -1;  // not sent: the promise answers
      },
      [s](const release_all&) {
        int n = static_cast<int>(s->held.size());
        for (auto& p : s->held) p.deliver(n);
        s->held.clear();
        return n;
      },
      [](const drop_it&) {
        auto p = isola::this_actor::make_response_promise<int>();
        return 0;  // p goes out of scope unanswered
      },
      [](const ask_pid&) { return static_cast<int>(::getpid()); },
  };
}

BOOST_AUTO_TEST_CASE(a_deferred_request_is_answered_when_the_promise_delivers, *utf::timeout(60)) {
  auto g = isola::spawn(gate);
  auto a = g.request<int>(hold{});
  auto b = g.request<int>(hold{});
  // The gate keeps serving while they wait: a later request is answered first.
  BOOST_TEST(g.request<int>(ask_pid{}).get(10s) == g.pid());
  BOOST_TEST(!a.ready());
  BOOST_TEST(!b.ready());
  BOOST_TEST(g.request<int>(release_all{}).get(10s) == 2);
  BOOST_TEST(a.get(10s) == 2);
  BOOST_TEST(b.get(10s) == 2);
  g.stop();
}

BOOST_AUTO_TEST_CASE(a_promise_dropped_unanswered_fails_its_request, *utf::timeout(60)) {
  auto g = isola::spawn(gate);
  try {
    g.request<int>(drop_it{}).get(10s);
    BOOST_FAIL("expected remote_error");
  } catch (const isola::remote_error& e) {
    BOOST_TEST(e.type_name() == "isola.broken_promise");
  }
  BOOST_TEST(g.alive());
  g.stop();
}

BOOST_AUTO_TEST_CASE(held_requests_fail_with_actor_exited_when_the_actor_dies, *utf::timeout(60)) {
  auto g = isola::spawn(gate);
  auto a = g.request<int>(hold{});
  BOOST_TEST(g.request<int>(ask_pid{}).get(10s) == g.pid());  // a is held now
  g.kill();
  BOOST_CHECK_THROW(a.get(10s), isola::actor_exited);
}

BOOST_AUTO_TEST_CASE(make_response_promise_outside_a_request_is_a_value_error, *utf::timeout(30)) {
  BOOST_CHECK_THROW(isola::this_actor::make_response_promise<int>(), isola::value_error);
}

// -------------------------------------------------------------------- event

isola::behavior event_waiter(dist::event ev) {
  return {
      [ev](const do_wait&) {
        ev.wait();
        return ev.is_set();
      },
      [ev](const do_wait_for& w) { return ev.wait(std::chrono::milliseconds(w.ms)); },
  };
}

BOOST_AUTO_TEST_CASE(waiters_in_other_processes_wake_when_the_event_is_set, *utf::timeout(90)) {
  for (auto m : {start_method::forkserver, start_method::spawn}) {
    BOOST_TEST_CONTEXT("start method " << isola::to_string(m)) {
      auto ev = dist::event::create();
      isola::spawn_options o;
      o.method = m;
      auto w1 = isola::spawn(o, event_waiter, ev);
      auto w2 = isola::spawn(o, event_waiter, ev);
      auto f1 = w1.request<bool>(do_wait{});
      auto f2 = w2.request<bool>(do_wait{});
      BOOST_TEST(!ev.is_set());
      BOOST_TEST(!f1.wait(50ms));  // bounded check that nothing woke early
      ev.set();
      BOOST_TEST(f1.get(10s));
      BOOST_TEST(f2.get(10s));
      BOOST_TEST(ev.is_set());
      // Set before the wait: it returns at once.
      BOOST_TEST(w1.request<bool>(do_wait{}).get(10s));
      ev.clear();
      BOOST_TEST(!ev.is_set());
      w1.stop();
      w2.stop();
      ev.coordinator().stop();
    }
  }
}

BOOST_AUTO_TEST_CASE(event_wait_with_a_timeout_returns_false_when_nobody_sets_it,
                     *utf::timeout(60)) {
  auto ev = dist::event::create();
  auto t0 = clk::now();
  BOOST_TEST(!ev.wait(200ms));
  auto took = clk::now() - t0;
  BOOST_TEST((took >= 190ms));
  BOOST_TEST((took < 5s));
  BOOST_TEST(ev.wait(0s) == false);
  ev.set();
  BOOST_TEST(ev.wait(0s));
  // An actor's timed wait, then a set after it gave up, then a new wait.
  auto w = isola::spawn(event_waiter, ev);
  ev.clear();
  BOOST_TEST(!w.request<bool>(do_wait_for{100}).get(10s));
  ev.set();
  BOOST_TEST(w.request<bool>(do_wait_for{5000}).get(10s));
  w.stop();
  ev.coordinator().stop();
}

BOOST_AUTO_TEST_CASE(a_waiter_fails_with_actor_exited_when_the_coordinator_dies,
                     *utf::timeout(60)) {
  auto ev = dist::event::create();
  auto w = isola::spawn(event_waiter, ev);
  auto f = w.request<bool>(do_wait{});
  BOOST_TEST(!f.wait(50ms));
  ev.coordinator().kill();
  // The waiter's handler throws actor_exited: its request fails with it.
  try {
    f.get(10s);
    BOOST_FAIL("expected the wait to fail");
  } catch (const isola::remote_error& e) {
    BOOST_TEST(e.type_name().find("actor_exited") != std::string::npos);
  }
  BOOST_CHECK_THROW(ev.set(), isola::actor_exited);
}

BOOST_AUTO_TEST_CASE(an_empty_distributed_handle_is_a_value_error, *utf::timeout(30)) {
  dist::event ev;
  BOOST_CHECK_THROW(ev.set(), isola::value_error);
  dist::barrier b;
  BOOST_CHECK_THROW(b.wait(), isola::value_error);
  BOOST_CHECK_THROW(dist::barrier::create(0), isola::value_error);
  BOOST_CHECK_THROW(dist::queue<int>::create(-1), isola::value_error);
}

// ---------------------------------------------------------------- condition

// Each waiter counts itself in `waiting` (under the condition's lock) and
// waits; once woken it counts itself out, still holding the lock.
isola::behavior cv_waiter(dist::condition cv, isola::value<int> waiting) {
  return {
      [cv, waiting](const do_wait&) mutable {
        std::unique_lock lk(cv);
        waiting.store(waiting.load() + 1);
        cv.wait();
        waiting.store(waiting.load() - 1);
        return true;
      },
      [cv](const do_acquire&) {
        cv.acquire();  // and keep it: the test kills us holding it
        return true;
      },
  };
}

int locked_read(const dist::condition& cv, const isola::value<int>& v) {
  std::unique_lock lk(cv);
  return v.load();
}

BOOST_AUTO_TEST_CASE(notify_wakes_one_waiter_and_notify_all_wakes_the_rest, *utf::timeout(90)) {
  auto cv = dist::condition::create();
  isola::value<int> waiting(0);
  std::vector<isola::actor> ws;
  std::vector<isola::future<bool>> fs;
  for (int i = 0; i < 3; ++i) {
    ws.push_back(isola::spawn(cv_waiter, cv, waiting));
    fs.push_back(ws.back().request<bool>(do_wait{}));
  }
  // All three are parked in wait() once the count reads 3 under the lock.
  auto until = clk::now() + 20s;
  while (locked_read(cv, waiting) != 3) BOOST_REQUIRE((clk::now() < until));
  {
    std::unique_lock lk(cv);
    cv.notify();
  }
  // The notified waiter held the lock before our next acquire was queued.
  BOOST_TEST(locked_read(cv, waiting) == 2);
  // Its reply follows its release; the other two cannot leave wait() unnotified.
  auto ready = [&] {
    int n = 0;
    for (auto& f : fs) n += f.ready() ? 1 : 0;
    return n;
  };
  until = clk::now() + 20s;
  while (ready() == 0) BOOST_REQUIRE((clk::now() < until));
  BOOST_TEST(ready() == 1);
  {
    std::unique_lock lk(cv);
    cv.notify_all();
  }
  for (auto& f : fs) BOOST_TEST(f.get(10s));
  BOOST_TEST(locked_read(cv, waiting) == 0);
  for (auto& w : ws) w.stop();
  cv.coordinator().stop();
}

BOOST_AUTO_TEST_CASE(condition_wait_with_a_timeout_returns_false_holding_the_lock,
                     *utf::timeout(60)) {
  auto cv = dist::condition::create();
  cv.acquire();
  auto t0 = clk::now();
  BOOST_TEST(!cv.wait(150ms));
  BOOST_TEST((clk::now() - t0 >= 140ms));
  cv.release();  // held again: releasing it is no error
  BOOST_CHECK_THROW(cv.release(), isola::value_error);
  int calls = 0;
  {
    std::unique_lock lk(cv);
    BOOST_TEST(!cv.wait_for([&] { return ++calls > 1000; }, 100ms));
  }
  BOOST_TEST(calls >= 2);
  cv.coordinator().stop();
}

BOOST_AUTO_TEST_CASE(condition_misuse_is_a_value_error, *utf::timeout(60)) {
  auto cv = dist::condition::create();
  BOOST_CHECK_THROW(cv.wait(), isola::value_error);
  BOOST_CHECK_THROW(cv.wait(100ms), isola::value_error);
  BOOST_CHECK_THROW(cv.notify(), isola::value_error);
  BOOST_CHECK_THROW(cv.notify_all(), isola::value_error);
  BOOST_CHECK_THROW(cv.release(), isola::value_error);
  // Re-entrant, as Python's default RLock.
  cv.acquire();
  BOOST_TEST(cv.try_acquire());
  cv.release();
  cv.release();
  BOOST_CHECK_THROW(cv.release(), isola::value_error);
  cv.coordinator().stop();
}

BOOST_AUTO_TEST_CASE(the_lock_of_a_holder_that_dies_passes_to_the_next, *utf::timeout(60)) {
  auto cv = dist::condition::create();
  isola::value<int> unused(0);
  auto w = isola::spawn(cv_waiter, cv, unused);
  BOOST_TEST(w.request<bool>(do_acquire{}).get(10s));
  BOOST_TEST(!cv.try_acquire());
  auto d = w.monitor();
  w.kill();
  d.get(10s);
  BOOST_TEST(cv.acquire(10s));
  cv.release();
  cv.coordinator().stop();
}

// ------------------------------------------------------------------ barrier

int actions_here = 0;
void count_action() { ++actions_here; }
void throwing_action() { throw std::runtime_error("the action failed"); }

struct cycle_result {
  int index = -1;
  int actions = 0;
  int st = 0;  // 0 passed, 1 broken, 2 other error
  template <class A>
  void serialize(A& ar) {
    ar(index, actions, st);
  }
};

isola::behavior party(dist::barrier b) {
  return {
      [b](const do_wait&) {
        cycle_result r;
        try {
          r.index = b.wait();
        } catch (const isola::broken_barrier_error&) {
          r.st = 1;
        } catch (const std::exception&) {
          r.st = 2;
        }
        r.actions = actions_here;
        return r;
      },
  };
}

BOOST_AUTO_TEST_CASE(parties_in_three_processes_meet_and_one_runs_the_action, *utf::timeout(120)) {
  for (auto m : {start_method::forkserver, start_method::spawn}) {
    BOOST_TEST_CONTEXT("start method " << isola::to_string(m)) {
      actions_here = 0;
      auto b = dist::barrier::create(3, &count_action);
      isola::spawn_options o;
      o.method = m;
      auto p1 = isola::spawn(o, party, b);
      auto p2 = isola::spawn(o, party, b);
      const int cycles = 20;
      int last1 = 0, last2 = 0;
      for (int c = 0; c < cycles; ++c) {
        auto f1 = p1.request<cycle_result>(do_wait{});
        auto f2 = p2.request<cycle_result>(do_wait{});
        int mine = b.wait(10s);
        auto r1 = f1.get(10s), r2 = f2.get(10s);
        BOOST_REQUIRE(r1.st == 0);
        BOOST_REQUIRE(r2.st == 0);
        std::set<int> idx{mine, r1.index, r2.index};
        BOOST_TEST((idx == std::set<int>{0, 1, 2}));
        last1 = r1.actions;
        last2 = r2.actions;
      }
      // Exactly one action per cycle, whichever process ran it.
      BOOST_TEST(actions_here + last1 + last2 == cycles);
      BOOST_TEST(b.n_waiting() == 0);
      BOOST_TEST(!b.broken());
      p1.stop();
      p2.stop();
      b.coordinator().stop();
    }
  }
}

BOOST_AUTO_TEST_CASE(a_waiter_that_times_out_breaks_the_barrier_for_the_others, *utf::timeout(60)) {
  auto b = dist::barrier::create(3);
  auto p = isola::spawn(party, b);
  auto f = p.request<cycle_result>(do_wait{});
  auto until = clk::now() + 20s;
  while (b.n_waiting() != 1) BOOST_REQUIRE((clk::now() < until));
  BOOST_CHECK_THROW(b.wait(100ms), isola::broken_barrier_error);
  BOOST_TEST(f.get(10s).st == 1);
  BOOST_TEST(b.broken());
  BOOST_CHECK_THROW(b.wait(), isola::broken_barrier_error);  // until reset
  b.reset();
  BOOST_TEST(!b.broken());
  p.stop();
  b.coordinator().stop();
}

BOOST_AUTO_TEST_CASE(a_party_that_dies_while_waiting_breaks_the_barrier, *utf::timeout(60)) {
  auto b = dist::barrier::create(3);
  auto p1 = isola::spawn(party, b);
  auto p2 = isola::spawn(party, b);
  auto f1 = p1.request<cycle_result>(do_wait{});
  auto f2 = p2.request<cycle_result>(do_wait{});
  auto until = clk::now() + 20s;
  while (b.n_waiting() != 2) BOOST_REQUIRE((clk::now() < until));
  p1.kill();
  BOOST_CHECK_THROW(f1.get(10s), isola::actor_exited);
  BOOST_TEST(f2.get(10s).st == 1);  // no hang: broken
  BOOST_CHECK_THROW(b.wait(10s), isola::broken_barrier_error);
  p2.stop();
  b.coordinator().stop();
}

BOOST_AUTO_TEST_CASE(abort_breaks_waiters_and_a_throwing_action_breaks_the_others,
                     *utf::timeout(60)) {
  auto b = dist::barrier::create(2);
  auto p = isola::spawn(party, b);
  auto f = p.request<cycle_result>(do_wait{});
  auto until = clk::now() + 20s;
  while (b.n_waiting() != 1) BOOST_REQUIRE((clk::now() < until));
  b.abort();
  BOOST_TEST(f.get(10s).st == 1);
  BOOST_TEST(b.broken());
  b.reset();

  auto t = dist::barrier::create(2, &throwing_action);
  auto q = isola::spawn(party, t);
  auto g = q.request<cycle_result>(do_wait{});
  while (t.n_waiting() != 1) BOOST_REQUIRE((clk::now() < until));
  // We arrive last: the action runs here, throws, and the other party is broken.
  BOOST_CHECK_THROW(t.wait(10s), std::runtime_error);
  BOOST_TEST(g.get(10s).st == 1);
  p.stop();
  q.stop();
  b.coordinator().stop();
  t.coordinator().stop();
}

// -------------------------------------------------------------------- queue

isola::behavior producer(dist::queue<int> q) {
  return {
      [q](const produce& p) {
        for (int i = 0; i < p.n; ++i) {
          q.put(p.from + i);
          if (p.pause_every > 0 && i % p.pause_every == 0) std::this_thread::sleep_for(20ms);
        }
        return p.n;
      },
  };
}

BOOST_AUTO_TEST_CASE(items_from_producer_processes_arrive_once_in_order, *utf::timeout(90)) {
  auto q = dist::queue<int>::create(16);  // bounded: producers block on a full queue
  auto a = isola::spawn(producer, q);
  auto b = isola::spawn(producer, q);
  const int n = 2000;
  auto fa = a.request<int>(produce{0, n});
  auto fb = b.request<int>(produce{100000, n});
  int next_a = 0, next_b = 100000;
  for (int i = 0; i < 2 * n; ++i) {
    int v = q.get(10s);
    if (v < 100000) {
      BOOST_REQUIRE(v == next_a);
      ++next_a;
    } else {
      BOOST_REQUIRE(v == next_b);
      ++next_b;
    }
  }
  BOOST_TEST(fa.get(10s) == n);
  BOOST_TEST(fb.get(10s) == n);
  BOOST_TEST(q.empty());
  BOOST_TEST(!q.try_get());
  a.stop();
  b.stop();
  q.coordinator().stop();
}

BOOST_AUTO_TEST_CASE(queue_timeouts_raise_full_and_empty_and_lose_nothing, *utf::timeout(90)) {
  auto q = dist::queue<std::string>::create(1);
  BOOST_CHECK_THROW(q.get(50ms), isola::queue_empty);
  BOOST_CHECK_THROW(q.get_nowait(), isola::queue_empty);
  q.put("one");
  BOOST_TEST(q.full());
  BOOST_CHECK_THROW(q.put("two", 50ms), isola::queue_full);
  BOOST_CHECK_THROW(q.put_nowait("two"), isola::queue_full);
  BOOST_TEST(!q.try_put("two"));
  BOOST_TEST(q.qsize() == 1u);
  BOOST_TEST(q.get() == "one");
  q.coordinator().stop();

  // A consumer whose gets keep timing out while a producer puts: every item
  // arrives exactly once, in order.
  auto iq = dist::queue<int>::create();
  auto p = isola::spawn(producer, iq);
  const int n = 3000;
  auto f = p.request<int>(produce{0, n, 300});
  int expect = 0, timeouts = 0;
  auto until = clk::now() + 60s;
  while (expect < n) {
    BOOST_REQUIRE((clk::now() < until));
    try {
      int v = iq.get(200us);
      BOOST_REQUIRE(v == expect);
      ++expect;
    } catch (const isola::queue_empty&) {
      ++timeouts;
    }
  }
  BOOST_TEST(f.get(10s) == n);
  BOOST_TEST(!iq.try_get());
  BOOST_TEST_MESSAGE("gets that timed out: " << timeouts);
  BOOST_TEST(timeouts > 0);  // the slow producer made the consumer time out
  p.stop();
  iq.coordinator().stop();
}

BOOST_AUTO_TEST_CASE(a_get_fails_with_actor_exited_when_the_coordinator_dies, *utf::timeout(60)) {
  // The coordinator is killed from another thread while (or, if that thread
  // is quicker, before) the get waits: both must fail, neither may hang.
  auto q = dist::queue<int>::create();
  auto coordinator = q.coordinator();
  std::thread killer([coordinator] { coordinator.kill(); });
  BOOST_CHECK_THROW(q.get(30s), isola::actor_exited);
  killer.join();
  BOOST_CHECK_THROW(q.put(1), isola::actor_exited);
}

}  // namespace
