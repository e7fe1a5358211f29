// The manager's set, condition, barrier, joinable_queue, array and
// registered user types between real processes: one suite per CPython class
// ported (Lib/test/_test_multiprocessing.py run through a manager), each
// case naming the CPython case it ports, plus the nasty cases: a holder or
// waiter SIGSTOPped or SIGKILLed mid-call, wrong types, forged requests on
// the raw wire. Every case has a deadline; nothing sleeps to let things
// settle (the manager's waiter count, or holding the condition's lock, says
// where the others are).
#include <boost/test/unit_test.hpp>

#include <signal.h>
#include <unistd.h>

#include <isola/manager.hpp>
#include <isola/process.hpp>
#include <isola/queue.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "test_util.hpp"

using namespace std::chrono_literals;
namespace utf = boost::unit_test;
using clk = std::chrono::steady_clock;
using isola::detail::mgr_op;
using isola::detail::mgr_status;

namespace {

double seconds_since(clk::time_point t0) {
  return std::chrono::duration<double>(clk::now() - t0).count();
}

/// The raw address and id behind a proxy, to forge requests with.
template <class P>
std::pair<isola::detail::manager_address, std::uint64_t> raw(const P& p) {
  return isola::decode<std::pair<isola::detail::manager_address, std::uint64_t>>(isola::encode(p));
}

mgr_status raw_call(const isola::detail::manager_address& a, int op, std::uint64_t id,
                    std::span<const std::byte> x = {}, std::span<const std::byte> y = {}) {
  mgr_status st{};
  isola::detail::manager_call(a, static_cast<mgr_op>(op), id, -1, x, y, st);
  return st;
}

std::span<const std::byte> text(const std::string& s) {
  return std::as_bytes(std::span(s.data(), s.size()));
}

// ---- set ----

void add_elements(isola::managed::set<int> s) {
  for (int i = 0; i < 5; ++i) s.add(i);
  s.add(3);  // already there
  s.discard(0);
}

// ---- condition ----

/// CPython's _TestCondition.f: take the lock, say so, wait, say woken.
void cond_waiter(isola::managed::condition c, isola::managed::semaphore sleeping,
                 isola::managed::semaphore woken) {
  c.acquire();
  sleeping.release();
  c.wait();
  woken.release();
  c.release();
}

void cond_hold_and_report(isola::managed::condition c, isola::queue<int> out) {
  c.acquire();
  c.acquire();  // reentrant
  out.put(1);
  for (;;) ::pause();
}

void cond_notify_after(isola::managed::condition c, isola::managed::value<int> state, int n) {
  for (int i = 0; i < n; ++i) {
    c.acquire();
    state.store(state.load() + 1);
    c.notify();
    c.release();
  }
}

// ---- barrier ----

void barrier_rounds(isola::managed::barrier b, int rounds, isola::managed::list<long> out) {
  for (int i = 0; i < rounds; ++i) out.append(static_cast<long>(b.wait(60s)));
}

void barrier_expect_broken(isola::managed::barrier b, isola::managed::list<long> out) {
  try {
    b.wait(60s);
    out.append(1);
  } catch (const isola::broken_barrier_error&) {
    out.append(-1);
  }
}

void barrier_wait_forever(isola::managed::barrier b) {
  try {
    b.wait();
  } catch (...) {}
  for (;;) ::pause();
}

// ---- joinable_queue ----

void queue_worker(isola::managed::joinable_queue<int> q, isola::managed::value<long> sum) {
  for (;;) {
    int v = q.get(60s);
    if (v < 0) {
      q.task_done();
      return;
    }
    sum.fetch_add(v);
    q.task_done();
  }
}

void join_forever(isola::managed::joinable_queue<int> q) { q.join(); }

// ---- array ----

void fill_array(isola::managed::array<int> a) {
  for (std::int64_t i = 0; i < static_cast<std::int64_t>(a.size()); ++i)
    a.set(i, static_cast<int>(i * i));
}

// ---- the manager killed under a blocked call ----

void blocked_in_new_kind(isola::managed::condition c, isola::managed::barrier b,
                         isola::managed::joinable_queue<int> q, int what,
                         isola::queue<std::string> out) {
  try {
    if (what == 0) {
      c.acquire();
      c.wait();
    }
    if (what == 1) b.wait();
    if (what == 2) q.join();
    out.put("returned");
  } catch (const isola::manager_error& x) {
    out.put(std::string("manager_error ") + x.what());
  } catch (const std::exception& x) {
    out.put(std::string("other ") + x.what());
  }
}

// ---- registered types ----

class counter {
 public:
  explicit counter(int start) : n_(start) {}
  int inc(int by) { return n_ += by; }
  int get() const { return n_; }
  std::string describe(const std::string& prefix) const { return prefix + std::to_string(n_); }
  void fail() { throw std::runtime_error("counter: asked to fail"); }
  void reset() noexcept { n_ = 0; }

 private:
  int n_;
};

class never_registered {
 public:
  int f() { return 1; }
};

void register_counter() {
  isola::manager::register_type<counter, int>("counter")
      .method<&counter::inc>("inc")
      .method<&counter::get>("get")
      .method<&counter::describe>("describe")
      .method<&counter::fail>("fail")
      .method<&counter::reset>("reset");
}

void increment(isola::managed::object<counter> c, int n) {
  for (int i = 0; i < n; ++i) c.call<int>("inc", 1);
}

}  // namespace

// CPython 3.14: _TestContainers.test_set, test_set_init, test_set_contain_all_method
// (the operations C++ can have: add, discard, remove, in, len, iteration).
BOOST_AUTO_TEST_SUITE(test_manager_set)

BOOST_AUTO_TEST_CASE(a_set_holds_each_element_once_and_remove_of_a_missing_one_is_a_key_error,
                     *utf::timeout(120)) {
  for (auto method : isola::all_start_methods()) {
    BOOST_TEST_CONTEXT("start method " << method) {
      isola::manager m;
      auto s = m.set<int>();
      isola::process c(isola::process_options{.method = method}, add_elements, s);
      c.start();
      c.join();
      BOOST_TEST(s.size() == 4u);
      auto items = s.items();
      std::sort(items.begin(), items.end());
      BOOST_TEST(items == (std::vector<int>{1, 2, 3, 4}));
      BOOST_TEST(s.contains(3));
      BOOST_TEST(!s.contains(0));
      s.remove(3);
      BOOST_CHECK_THROW(s.remove(3), isola::key_error);
      BOOST_TEST(!s.discard(3));
      BOOST_TEST(s.discard(4));
      s.clear();
      BOOST_TEST(s.empty());
    }
  }
}

BOOST_AUTO_TEST_CASE(a_named_set_opened_as_another_type_or_as_a_dict_is_a_type_error,
                     *utf::timeout(30)) {
  isola::manager m;
  auto s = m.set<int>("s");
  s.add(1);
  BOOST_TEST(m.set<int>("s").contains(1));
  BOOST_CHECK_THROW(m.set<long>("s"), isola::type_error);
  BOOST_CHECK_THROW((m.dict<int, int>("s")), isola::type_error);
}

BOOST_AUTO_TEST_SUITE_END()

// CPython: _TestCondition, through a manager.
BOOST_AUTO_TEST_SUITE(test_manager_condition)

// CPython: _TestCondition.test_notify.
BOOST_AUTO_TEST_CASE(notify_wakes_one_waiter_at_a_time, *utf::timeout(120)) {
  isola::manager m;
  auto c = m.condition();
  auto sleeping = m.semaphore(0), woken = m.semaphore(0);
  std::vector<std::unique_ptr<isola::process>> ps;
  for (int i = 0; i < 2; ++i) {
    ps.push_back(std::make_unique<isola::process>(cond_waiter, c, sleeping, woken));
    ps.back()->start();
  }
  for (int i = 0; i < 2; ++i) BOOST_REQUIRE(sleeping.acquire(60s));
  // Taking the lock proves both gave it up in wait().
  c.acquire();
  BOOST_TEST(!woken.try_acquire());
  c.notify();
  c.release();
  BOOST_TEST(woken.acquire(60s));
  BOOST_TEST(isola_test::wait_until([&] { return m.stats().waiters == 1; }, 60s));
  BOOST_TEST(!woken.try_acquire());
  c.acquire();
  c.notify();
  c.release();
  BOOST_TEST(woken.acquire(60s));
  for (auto& p : ps) p->join();
}

// CPython: _TestCondition.test_notify_all and test_notify_n.
BOOST_AUTO_TEST_CASE(notify_n_wakes_n_and_notify_all_the_rest, *utf::timeout(120)) {
  isola::manager m;
  auto c = m.condition();
  auto sleeping = m.semaphore(0), woken = m.semaphore(0);
  std::vector<std::unique_ptr<isola::process>> ps;
  for (int i = 0; i < 4; ++i) {
    ps.push_back(std::make_unique<isola::process>(cond_waiter, c, sleeping, woken));
    ps.back()->start();
  }
  for (int i = 0; i < 4; ++i) BOOST_REQUIRE(sleeping.acquire(60s));
  c.acquire();
  c.notify(2);
  c.release();
  for (int i = 0; i < 2; ++i) BOOST_TEST(woken.acquire(60s));
  // Two still sleep in the condition, and only they wait in the manager.
  BOOST_TEST(isola_test::wait_until([&] { return m.stats().waiters == 2; }, 60s));
  BOOST_TEST(!woken.try_acquire());
  c.acquire();
  c.notify_all();
  c.release();
  for (int i = 0; i < 2; ++i) BOOST_TEST(woken.acquire(60s));
  for (auto& p : ps) p->join();
  BOOST_TEST(m.stats().waiters == 0u);
}

// CPython: _TestCondition.test_timeout and test_wait_result.
BOOST_AUTO_TEST_CASE(a_timed_wait_returns_false_after_the_timeout_holding_the_lock_again,
                     *utf::timeout(60)) {
  isola::manager m;
  auto c = m.condition();
  c.acquire();
  c.acquire();  // depth 2: wait gives up both and takes both back
  auto t0 = clk::now();
  BOOST_TEST(!c.wait(200ms));
  double waited = seconds_since(t0);
  BOOST_TEST(waited >= 0.19);
  BOOST_TEST(waited < 10.0);
  BOOST_TEST(!c.wait(0s));
  BOOST_TEST(c.locked());
  c.release();
  BOOST_TEST(c.locked());
  c.release();
  BOOST_TEST(!c.locked());
  // test_wait_result: a notified wait returns true.
  auto state = m.value<int>(0);
  c.acquire();
  isola::process p(cond_notify_after, c, state, 1);
  p.start();
  BOOST_TEST(c.wait(60s));
  BOOST_TEST(state.load() == 1);
  c.release();
  p.join();
}

// CPython: _TestCondition.test_waitfor and test_waitfor_timeout.
BOOST_AUTO_TEST_CASE(wait_for_returns_when_the_predicate_holds_or_false_at_the_timeout,
                     *utf::timeout(60)) {
  isola::manager m;
  auto c = m.condition();
  auto state = m.value<int>(0);
  c.acquire();
  isola::process p(cond_notify_after, c, state, 4);
  p.start();
  BOOST_TEST(c.wait_for([&] { return state.load() == 4; }));
  c.release();
  p.join();
  c.acquire();
  auto t0 = clk::now();
  BOOST_TEST(!c.wait_for([&] { return state.load() == 5; }, 200ms));
  BOOST_TEST(seconds_since(t0) >= 0.19);
  c.release();
}

BOOST_AUTO_TEST_CASE(waiting_or_notifying_without_the_lock_is_a_value_error, *utf::timeout(30)) {
  isola::manager m;
  auto c = m.condition();
  BOOST_CHECK_THROW(c.wait(1s), isola::value_error);
  BOOST_CHECK_THROW(c.notify(), isola::value_error);
  BOOST_CHECK_THROW(c.release(), isola::value_error);
  BOOST_TEST(m.stats().waiters == 0u);
}

BOOST_AUTO_TEST_CASE(a_waiter_killed_mid_wait_is_dropped_and_the_notify_goes_to_a_live_one,
                     *utf::timeout(120)) {
  isola::manager m;
  auto c = m.condition();
  auto sleeping = m.semaphore(0), woken = m.semaphore(0);
  isola::process doomed(cond_waiter, c, sleeping, woken);
  doomed.start();
  BOOST_REQUIRE(sleeping.acquire(60s));
  c.acquire();  // doomed sleeps in wait()
  c.release();
  isola::process live(cond_waiter, c, sleeping, woken);
  live.start();
  BOOST_REQUIRE(sleeping.acquire(60s));
  c.acquire();  // both sleep; doomed is the longest
  c.release();
  doomed.kill();
  doomed.join();
  BOOST_TEST(isola_test::wait_until([&] { return m.stats().waiters == 1; }, 60s));
  c.acquire();
  c.notify(1);
  c.release();
  BOOST_TEST(woken.acquire(60s));
  live.join();
  BOOST_TEST(live.exitcode() == 0);
}

BOOST_AUTO_TEST_CASE(a_stopped_holder_times_others_out_and_its_death_hands_the_lock_on,
                     *utf::timeout(120)) {
  for (auto method : isola::all_start_methods()) {
    BOOST_TEST_CONTEXT("start method " << method) {
      isola::manager m;
      auto c = m.condition();
      isola::queue<int> out;
      isola::process p(isola::process_options{.method = method}, cond_hold_and_report, c, out);
      p.start();
      BOOST_TEST(out.get(60s) == 1);
      BOOST_REQUIRE(::kill(p.pid(), SIGSTOP) == 0);
      auto t0 = clk::now();
      BOOST_TEST(!c.acquire(200ms));
      BOOST_TEST(seconds_since(t0) < 5.0);
      p.kill();
      p.join();
      BOOST_CHECK_THROW(c.acquire(), isola::lock_owner_died);
      BOOST_TEST(c.locked());  // taken, at depth 1 whatever the dead one's
      c.release();
      BOOST_TEST(!c.locked());
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()

// CPython: _TestBarrier, through a manager.
BOOST_AUTO_TEST_SUITE(test_manager_barrier)

// CPython: _TestBarrier.test_barrier and test_wait_return.
BOOST_AUTO_TEST_CASE(each_round_gives_every_party_a_distinct_arrival_index, *utf::timeout(120)) {
  isola::manager m;
  constexpr int parties = 4, rounds = 3;
  auto b = m.barrier(parties);
  auto out = m.list<long>();
  std::vector<std::unique_ptr<isola::process>> ps;
  for (int i = 0; i < parties - 1; ++i) {
    ps.push_back(std::make_unique<isola::process>(barrier_rounds, b, rounds, out));
    ps.back()->start();
  }
  for (int r = 0; r < rounds; ++r) out.append(static_cast<long>(b.wait(60s)));
  for (auto& p : ps) p->join();
  auto got = out.items();
  BOOST_TEST(got.size() == std::size_t(parties * rounds));
  std::sort(got.begin(), got.end());
  for (int i = 0; i < parties * rounds; ++i) BOOST_TEST(got[i] == i / rounds);
  BOOST_TEST(b.n_waiting() == 0u);
  BOOST_TEST(b.parties() == std::size_t(parties));
  BOOST_TEST(!b.broken());
}

// CPython: _TestBarrier.test_single_thread.
BOOST_AUTO_TEST_CASE(a_barrier_of_one_party_never_waits, *utf::timeout(30)) {
  isola::manager m;
  auto b = m.barrier(1);
  BOOST_TEST(b.wait() == 0u);
  BOOST_TEST(b.wait(0s) == 0u);
  BOOST_CHECK_THROW(m.barrier(0), isola::value_error);
}

BOOST_AUTO_TEST_CASE(the_count_is_zero_as_soon_as_a_round_is_released, *utf::timeout(60)) {
  isola::manager m;
  auto b = m.barrier(2);
  auto out = m.list<long>();
  for (int i = 0; i < 3; ++i) {
    isola::process p(barrier_rounds, b, 1, out);
    p.start();
    BOOST_TEST(isola_test::wait_until([&] { return b.n_waiting() == 1; }, 60s));
    b.wait(60s);
    BOOST_TEST(b.n_waiting() == 0u);
    p.join();
  }
}

// CPython: _TestBarrier.test_abort.
BOOST_AUTO_TEST_CASE(abort_breaks_the_waiters_and_later_waits, *utf::timeout(60)) {
  isola::manager m;
  auto b = m.barrier(3);
  auto out = m.list<long>();
  isola::process p1(barrier_expect_broken, b, out), p2(barrier_expect_broken, b, out);
  p1.start();
  p2.start();
  BOOST_TEST(isola_test::wait_until([&] { return b.n_waiting() == 2; }, 60s));
  b.abort();
  p1.join();
  p2.join();
  BOOST_TEST((out.items() == std::vector<long>{-1, -1}));
  BOOST_TEST(b.broken());
  BOOST_CHECK_THROW(b.wait(10s), isola::broken_barrier_error);
}

// CPython: _TestBarrier.test_reset and test_abort_and_reset.
BOOST_AUTO_TEST_CASE(reset_breaks_the_round_and_leaves_the_barrier_usable, *utf::timeout(60)) {
  isola::manager m;
  auto b = m.barrier(2);
  auto out = m.list<long>();
  isola::process p(barrier_expect_broken, b, out);
  p.start();
  BOOST_TEST(isola_test::wait_until([&] { return b.n_waiting() == 1; }, 60s));
  b.reset();
  p.join();
  BOOST_TEST((out.items() == std::vector<long>{-1}));
  BOOST_TEST(!b.broken());
  b.abort();
  b.reset();
  BOOST_TEST(!b.broken());
  isola::process q(barrier_rounds, b, 1, out);
  q.start();
  BOOST_TEST(b.wait(60s) <= 1u);
  q.join();
}

// CPython: _TestBarrier.test_timeout and test_default_timeout.
BOOST_AUTO_TEST_CASE(a_wait_that_times_out_breaks_the_barrier, *utf::timeout(60)) {
  isola::manager m;
  auto b = m.barrier(2);
  auto t0 = clk::now();
  BOOST_CHECK_THROW(b.wait(200ms), isola::broken_barrier_error);
  BOOST_TEST(seconds_since(t0) >= 0.19);
  BOOST_TEST(b.broken());
  auto d = m.barrier(2, 200ms);
  t0 = clk::now();
  BOOST_CHECK_THROW(d.wait(), isola::broken_barrier_error);
  BOOST_TEST(seconds_since(t0) >= 0.19);
  BOOST_TEST(seconds_since(t0) < 10.0);
  BOOST_TEST(d.broken());
}

BOOST_AUTO_TEST_CASE(a_waiter_killed_mid_wait_breaks_the_barrier_for_the_others,
                     *utf::timeout(120)) {
  isola::manager m;
  auto b = m.barrier(3);
  auto out = m.list<long>();
  isola::process doomed(barrier_wait_forever, b), other(barrier_expect_broken, b, out);
  doomed.start();
  other.start();
  BOOST_TEST(isola_test::wait_until([&] { return b.n_waiting() == 2; }, 60s));
  doomed.kill();
  doomed.join();
  // The other waiter hears at once, not at its 60 s timeout.
  other.join(30s);
  BOOST_TEST(!other.is_alive());
  BOOST_TEST((out.items() == std::vector<long>{-1}));
  BOOST_TEST(b.broken());
  BOOST_TEST(b.n_waiting() == 0u);
}

BOOST_AUTO_TEST_CASE(a_stopped_waiter_does_not_keep_the_others_past_their_deadline,
                     *utf::timeout(60)) {
  isola::manager m;
  auto b = m.barrier(3);
  isola::process stopped(barrier_wait_forever, b);
  stopped.start();
  BOOST_TEST(isola_test::wait_until([&] { return b.n_waiting() == 1; }, 60s));
  BOOST_REQUIRE(::kill(stopped.pid(), SIGSTOP) == 0);
  auto t0 = clk::now();
  BOOST_CHECK_THROW(b.wait(200ms), isola::broken_barrier_error);
  BOOST_TEST(seconds_since(t0) < 5.0);
  ::kill(stopped.pid(), SIGCONT);
  stopped.kill();
  stopped.join();
}

BOOST_AUTO_TEST_SUITE_END()

// CPython: _TestQueue.test_task_done (a JoinableQueue), through a manager.
BOOST_AUTO_TEST_SUITE(test_manager_joinable_queue)

BOOST_AUTO_TEST_CASE(join_returns_once_workers_marked_every_item_done, *utf::timeout(120)) {
  for (auto method : isola::all_start_methods()) {
    BOOST_TEST_CONTEXT("start method " << method) {
      isola::manager m;
      auto q = m.joinable_queue<int>();
      auto sum = m.value<long>(0);
      std::vector<std::unique_ptr<isola::process>> ps;
      for (int i = 0; i < 2; ++i) {
        ps.push_back(std::make_unique<isola::process>(isola::process_options{.method = method},
                                                      queue_worker, q, sum));
        ps.back()->start();
      }
      for (int i = 1; i <= 10; ++i) q.put(i);
      BOOST_TEST(q.join(60s));
      BOOST_TEST(sum.load() == 55);
      for (int i = 0; i < 2; ++i) q.put(-1);
      q.join();
      for (auto& p : ps) p->join();
    }
  }
}

BOOST_AUTO_TEST_CASE(task_done_more_times_than_puts_is_a_value_error_and_join_times_out,
                     *utf::timeout(30)) {
  isola::manager m;
  auto q = m.joinable_queue<int>(1);
  BOOST_CHECK_THROW(q.task_done(), isola::value_error);
  BOOST_TEST(q.join(0s));  // nothing unfinished
  q.put(1);
  BOOST_TEST(q.get() == 1);
  auto t0 = clk::now();
  BOOST_TEST(!q.join(200ms));  // taken, not done
  BOOST_TEST(seconds_since(t0) >= 0.19);
  q.task_done();
  BOOST_TEST(q.join(0s));
  BOOST_CHECK_THROW(q.task_done(), isola::value_error);
  // A put waiting for room counts once it is in.
  q.put(2);
  BOOST_TEST(!q.try_put(3));
  BOOST_TEST(m.stats().waiters == 0u);
}

BOOST_AUTO_TEST_CASE(a_joiner_killed_mid_join_leaves_no_waiter, *utf::timeout(60)) {
  isola::manager m;
  auto q = m.joinable_queue<int>();
  q.put(1);
  isola::process p(join_forever, q);
  p.start();
  BOOST_TEST(isola_test::wait_until([&] { return m.stats().waiters == 1; }, 60s));
  p.kill();
  p.join();
  BOOST_TEST(isola_test::wait_until([&] { return m.stats().waiters == 0; }, 60s));
  BOOST_TEST(q.get() == 1);
  q.task_done();
  BOOST_TEST(q.join(0s));
}

BOOST_AUTO_TEST_SUITE_END()

// CPython: _TestContainers' list cases and _TestArray (fixed size), through
// a manager's Array.
BOOST_AUTO_TEST_SUITE(test_manager_array)

BOOST_AUTO_TEST_CASE(an_array_has_a_fixed_size_and_checks_its_bounds, *utf::timeout(120)) {
  for (auto method : isola::all_start_methods()) {
    BOOST_TEST_CONTEXT("start method " << method) {
      isola::manager m;
      auto a = m.array<int>(5);
      BOOST_TEST(a.size() == 5u);
      BOOST_TEST((a.items() == std::vector<int>(5, 0)));
      isola::process p(isola::process_options{.method = method}, fill_array, a);
      p.start();
      p.join();
      BOOST_TEST((a.items() == std::vector<int>{0, 1, 4, 9, 16}));
      BOOST_TEST(a.get(-1) == 16);
      a.set(-5, 7);
      BOOST_TEST(a.get(0) == 7);
      BOOST_CHECK_THROW(a.get(5), isola::index_error);
      BOOST_CHECK_THROW(a.get(-6), isola::index_error);
      BOOST_CHECK_THROW(a.set(5, 1), isola::index_error);
      BOOST_TEST(a.size() == 5u);
    }
  }
  isola::manager m;
  BOOST_CHECK_THROW(m.array<int>(0), isola::value_error);
  auto s = m.array<std::string>(2, std::string("x"));
  BOOST_TEST((s.items() == std::vector<std::string>{"x", "x"}));
}

BOOST_AUTO_TEST_CASE(forged_requests_cannot_resize_an_array_or_make_a_huge_one, *utf::timeout(30)) {
  isola::manager m;
  auto a = m.array<int>(3);
  auto [addr, id] = raw(a);
  auto v = isola::encode(1);
  std::int64_t i = 0;
  auto idx = std::as_bytes(std::span(&i, 1));
  BOOST_TEST((raw_call(addr, int(mgr_op::list_append), id, {}, v) == mgr_status::value_error));
  BOOST_TEST((raw_call(addr, int(mgr_op::list_pop), id, idx) == mgr_status::value_error));
  BOOST_TEST((raw_call(addr, int(mgr_op::list_clear), id) == mgr_status::value_error));
  BOOST_TEST(a.size() == 3u);
  // An array of 2^40 elements: refused, and the manager goes on.
  isola::detail::mgr_create_spec spec;
  spec.kind = static_cast<std::uint8_t>(isola::detail::mgr_kind::list);
  spec.maxsize = std::uint64_t{1} << 40;
  spec.init = isola::encode(0);
  auto b = isola::encode(spec);
  BOOST_TEST((raw_call(addr, int(mgr_op::create), 0, {}, b) == mgr_status::value_error));
  BOOST_TEST(a.get(2) == 0);
}

BOOST_AUTO_TEST_SUITE_END()

// Bad input: a peer killed in the middle. The manager itself killed under a
// condition wait, a barrier wait or a join: the blocked child hears at once.
BOOST_AUTO_TEST_SUITE(test_manager_killed_under_new_kinds)

BOOST_AUTO_TEST_CASE(the_manager_killed_fails_a_condition_wait_a_barrier_wait_and_a_join_at_once,
                     *utf::timeout(120)) {
  const char* names[] = {"condition wait", "barrier wait", "queue join"};
  for (int what = 0; what < 3; ++what) {
    BOOST_TEST_CONTEXT("blocked in " << names[what]) {
      isola::manager m;
      auto c = m.condition();
      auto b = m.barrier(2);
      auto q = m.joinable_queue<int>();
      q.put(1);
      isola::queue<std::string> out;
      isola::process p(blocked_in_new_kind, c, b, q, what, out);
      p.start();
      BOOST_TEST(isola_test::wait_until([&] { return m.stats().waiters == 1; }, 60s));
      BOOST_REQUIRE(::kill(m.pid(), SIGKILL) == 0);
      auto t0 = clk::now();
      auto said = out.get(20s);
      BOOST_TEST(seconds_since(t0) < 5.0);
      BOOST_TEST(said.rfind("manager_error ", 0) == 0, said);
      BOOST_TEST(said.find(names[what]) != std::string::npos, said);
      p.join();
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()

// CPython: _TestMyManager.test_mymanager (BaseManager.register with exposed
// methods; an unexposed one is refused), through every start method.
BOOST_AUTO_TEST_SUITE(test_manager_register_type)

BOOST_AUTO_TEST_CASE(a_registered_type_is_served_and_called_from_children_under_every_start_method,
                     *utf::timeout(180)) {
  register_counter();
  for (auto method : isola::all_start_methods()) {
    BOOST_TEST_CONTEXT("start method " << method) {
      isola::manager m(isola::manager_options{.method = method});
      auto c = m.make<counter>("counter", 5);
      BOOST_TEST(c.call<int>("get") == 5);
      std::vector<std::unique_ptr<isola::process>> ps;
      for (int i = 0; i < 2; ++i) {
        ps.push_back(std::make_unique<isola::process>(isola::process_options{.method = method},
                                                      increment, c, 50));
        ps.back()->start();
      }
      for (auto& p : ps) p->join();
      BOOST_TEST(c.call<int>("get") == 105);
      BOOST_TEST(c.call<int>("inc", 5) == 110);
      BOOST_TEST(c.call<std::string>("describe", std::string("n=")) == "n=110");
      c.call("reset");
      BOOST_TEST(c.call<int>("get") == 0);
    }
  }
}

BOOST_AUTO_TEST_CASE(unknown_methods_wrong_types_and_a_throwing_method_are_clear_errors,
                     *utf::timeout(60)) {
  register_counter();
  isola::manager m;
  auto c = m.make<counter>("counter", 1);
  BOOST_CHECK_THROW(c.call<int>("dec", 1), isola::value_error);  // never registered
  BOOST_CHECK_THROW(c.call<int>("inc", 1L), isola::type_error);  // long for int
  BOOST_CHECK_THROW(c.call<int>("inc"), isola::type_error);      // too few
  BOOST_CHECK_THROW(c.call<std::string>("get"), isola::type_error);
  BOOST_CHECK_THROW(c.call<int>("fail"), isola::type_error);  // it returns void
  BOOST_CHECK_THROW(c.call("fail"), isola::remote_error);
  BOOST_CHECK_THROW(m.make<counter>("counter", 1.5), isola::type_error);
  BOOST_CHECK_THROW(m.make<counter>("counter"), isola::type_error);
  BOOST_CHECK_THROW(m.make<never_registered>("counter", 1), isola::type_error);
  BOOST_CHECK_THROW(m.make<counter>("no such type", 1), isola::value_error);
  // Registered after the manager started: not served by it (Python too).
  isola::manager::register_type<never_registered>("late").method<&never_registered::f>("f");
  BOOST_CHECK_THROW(m.make<never_registered>("late"), isola::value_error);
  isola::manager m2;
  BOOST_TEST(m2.make<never_registered>("late").call<int>("f") == 1);
  BOOST_TEST(c.call<int>("get") == 1);  // nothing above touched it
}

BOOST_AUTO_TEST_CASE(forged_calls_on_the_raw_wire_are_refused_and_the_manager_goes_on,
                     *utf::timeout(60)) {
  register_counter();
  isola::manager m;
  auto c = m.make<counter>("counter", 7);
  auto d = m.dict<int, int>();
  auto [addr, id] = raw(c);
  auto [daddr, did] = raw(d);
  const auto args_id = isola::detail::mgr_type_id<int>();
  const auto int_id = isola::detail::mgr_type_id<int>();
  // Garbage where the call's types and arguments go.
  std::vector<std::byte> junk(13, std::byte{0xff});
  BOOST_TEST(
      (raw_call(addr, int(mgr_op::object_call), id, text("inc"), junk) == mgr_status::type_error));
  // The right type ids over arguments that do not decode as an int.
  auto forged = isola::encode(
      std::tuple<std::uint64_t, std::uint64_t, isola::bytes>{args_id, int_id, isola::bytes(3)});
  BOOST_TEST((raw_call(addr, int(mgr_op::object_call), id, text("inc"), forged) ==
              mgr_status::type_error));
  // A method name that is not registered, and one far too long.
  auto ok_args = isola::encode(std::tuple<std::uint64_t, std::uint64_t, isola::bytes>{
      args_id, int_id, isola::encode(std::tuple<int>(1))});
  BOOST_TEST((raw_call(addr, int(mgr_op::object_call), id, text("~counter"), ok_args) ==
              mgr_status::value_error));
  BOOST_TEST((raw_call(addr, int(mgr_op::object_call), id, text(std::string(100000, 'x')),
                       ok_args) == mgr_status::value_error));
  // Unused numbers of the block, a call on a dict, a dict op on the object.
  for (int op : {177, 190, 191}) {
    BOOST_TEST_CONTEXT("op " << op) {
      auto st = raw_call(addr, op, id, text("inc"), ok_args);
      BOOST_TEST((st == mgr_status::value_error || st == mgr_status::type_error));
    }
  }
  BOOST_TEST((raw_call(daddr, int(mgr_op::object_call), did, text("inc"), ok_args) ==
              mgr_status::type_error));
  BOOST_TEST((raw_call(addr, int(mgr_op::dict_size), id) == mgr_status::type_error));
  // A create of the object kind naming no registered type.
  isola::detail::mgr_create_spec spec;
  spec.kind = static_cast<std::uint8_t>(isola::detail::mgr_kind::object);
  spec.type_name = "std::system";
  spec.init = isola::encode(std::pair<std::uint64_t, isola::bytes>{0, {}});
  BOOST_TEST(
      (raw_call(addr, int(mgr_op::create), 0, {}, isola::encode(spec)) == mgr_status::value_error));
  // The well-formed call runs, once.
  BOOST_TEST(
      (raw_call(addr, int(mgr_op::object_call), id, text("inc"), ok_args) == mgr_status::ok));
  BOOST_TEST(c.call<int>("get") == 8);
}

BOOST_AUTO_TEST_SUITE_END()
