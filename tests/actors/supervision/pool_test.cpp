// pool: Python's Pool, on worker actors; and what Python gets wrong: a dead
// worker never hangs anything.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>

#include <atomic>
#include <chrono>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <isola/error.hpp>
#include <isola/pool.hpp>
#include <isola/process_pool_executor.hpp>

#include "test_util.hpp"

namespace utf = boost::unit_test;
using namespace std::chrono_literals;
using isola::start_method;

namespace {

int square(int x) { return x * x; }
int add3(int a, int b, int c) { return a + b + c; }
std::string shout(std::string s) { return s + "!"; }
int fails(int x) {
  if (x == 3) throw std::domain_error("three is not allowed");
  return x;
}
int my_pid(int) { return static_cast<int>(::getpid()); }
int slow(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return ms;
}
__attribute__((no_sanitize("undefined"))) int segfault(int) {
  volatile int* p = nullptr;
  return *p;
}
int kill_self(int) {
  ::raise(SIGKILL);
  return 0;
}
void noop(int) {}
int global_seed = 0;
void set_seed(int s) { global_seed = s; }
int seed(int) { return global_seed; }
void bad_init() { throw std::runtime_error("no database"); }
int stop_self(int) {
  ::raise(SIGSTOP);
  return 0;
}
// Hangs the first time (it makes the marker file), answers 42 after.
int hang_once(std::string marker) {
  int fd = ::open(marker.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
  if (fd >= 0) {
    ::close(fd);
    std::this_thread::sleep_for(60s);
  }
  return 42;
}

const std::vector<start_method> methods{start_method::forkserver, start_method::spawn};

}  // namespace

BOOST_AUTO_TEST_SUITE(pool)

BOOST_AUTO_TEST_CASE(apply_map_starmap_and_imap_compute_in_worker_processes, *utf::timeout(120)) {
  for (auto m : methods) {
    BOOST_TEST_CONTEXT("method " << m) {
      isola::pool p({.processes = 2, .method = m});
      BOOST_TEST(p.processes() == 2u);
      BOOST_TEST(p.apply(square, 7) == 49);
      BOOST_TEST(p.apply(shout, std::string("hi")) == "hi!");
      BOOST_TEST(p.apply([](int a, int b) { return a * b; }, 6, 7) == 42);
      auto f = p.apply_async(add3, 1, 2, 3);
      BOOST_TEST(f.get(10s) == 6);
      BOOST_TEST(f.successful());

      std::vector<int> xs;
      for (int i = 0; i < 100; ++i) xs.push_back(i);
      auto sq = p.map(square, xs);
      BOOST_REQUIRE(sq.size() == 100u);
      for (int i = 0; i < 100; ++i) BOOST_TEST(sq[i] == i * i);
      BOOST_TEST(p.map(square, xs, 1) == sq);
      BOOST_TEST(p.map(square, std::vector<int>{}).empty());

      std::vector<std::tuple<int, int, int>> triples{{1, 2, 3}, {4, 5, 6}};
      BOOST_TEST(p.starmap(add3, triples) == (std::vector<int>{6, 15}));

      std::vector<int> in_order;
      for (int v : p.imap(square, xs, 7)) in_order.push_back(v);
      BOOST_TEST(in_order == sq);
      std::multiset<int> any_order;
      for (int v : p.imap_unordered(square, xs)) any_order.insert(v);
      BOOST_TEST(any_order == std::multiset<int>(sq.begin(), sq.end()));

      auto pids = p.map(my_pid, xs, 1);
      for (int pid : pids) BOOST_TEST(pid != ::getpid());
      p.close();
      p.join();
    }
  }
}

BOOST_AUTO_TEST_CASE(map_and_apply_take_functions_that_return_nothing, *utf::timeout(60)) {
  isola::pool p(2);
  BOOST_TEST(p.map(noop, std::vector<int>{1, 2, 3}).size() == 3u);
  p.apply(noop, 1);
  int n = 0;
  for (auto u : p.imap(noop, std::vector<int>{1, 2})) {
    (void)u;
    ++n;
  }
  BOOST_TEST(n == 2);
}

BOOST_AUTO_TEST_CASE(a_short_task_does_not_wait_behind_a_long_one_while_a_worker_idles,
                     *utf::timeout(60)) {
  isola::pool p(2);
  auto start = std::chrono::steady_clock::now();
  auto long_one = p.apply_async(slow, 1000);
  std::vector<isola::future<int>> shorts;
  for (int i = 0; i < 3; ++i) shorts.push_back(p.apply_async(slow, 10));
  for (auto& f : shorts) BOOST_TEST(f.get(10s) == 10);
  BOOST_TEST((std::chrono::steady_clock::now() - start < 900ms));
  BOOST_TEST(!long_one.ready());
  BOOST_TEST(long_one.get(10s) == 1000);
}

BOOST_AUTO_TEST_CASE(the_default_chunksize_is_pythons, *utf::timeout(10)) {
  BOOST_TEST(isola::detail::default_chunksize(100, 2) == 13u);  // divmod(100, 8) -> 12 r 4
  BOOST_TEST(isola::detail::default_chunksize(200000, 2) == 25000u);
  BOOST_TEST(isola::detail::default_chunksize(3, 4) == 1u);
}

BOOST_AUTO_TEST_CASE(an_exception_in_a_task_arrives_as_remote_error, *utf::timeout(60)) {
  isola::pool p(2);
  auto f = p.apply_async(fails, 3);
  BOOST_CHECK_EXCEPTION(f.get(10s), isola::remote_error, [&](const isola::remote_error& e) {
    auto ws = p.workers();
    bool from_worker =
        std::any_of(ws.begin(), ws.end(), [&](auto& w) { return w.pid() == e.pid(); });
    return e.type_name() == "std::domain_error" && e.remote_what() == "three is not allowed" &&
           from_worker;
  });
  BOOST_TEST(!f.successful());
  BOOST_CHECK_THROW(p.map(fails, std::vector<int>{1, 2, 3, 4}), isola::remote_error);
  BOOST_TEST(p.apply(fails, 4) == 4);  // the worker lived on
}

BOOST_AUTO_TEST_CASE(callbacks_run_in_the_calling_process_on_the_dispatcher_thread,
                     *utf::timeout(60)) {
  isola::pool p(2);
  std::atomic<int> got{0}, err{0};
  std::atomic<int> cb_pid{0};
  std::thread::id cb_thread;
  std::mutex m;
  auto f = p.apply_async(isola::callbacks<int>{[&](const int& v) {
                                                 cb_pid = static_cast<int>(::getpid());
                                                 std::lock_guard lk(m);
                                                 cb_thread = std::this_thread::get_id();
                                                 got = v;
                                               },
                                               {}},
                         square, 9);
  BOOST_TEST(f.get(10s) == 81);
  BOOST_TEST(isola_test::wait_until([&] { return got.load() == 81; }));
  BOOST_TEST(cb_pid.load() == ::getpid());
  {
    std::lock_guard lk(m);
    BOOST_TEST((cb_thread != std::this_thread::get_id()));
  }
  auto g = p.apply_async(isola::callbacks<int>{{}, [&](std::exception_ptr) { ++err; }}, fails, 3);
  BOOST_CHECK_THROW(g.get(10s), isola::remote_error);
  BOOST_TEST(isola_test::wait_until([&] { return err.load() == 1; }));
}

BOOST_AUTO_TEST_CASE(close_join_and_terminate_behave_as_in_python, *utf::timeout(60)) {
  {
    isola::pool p(2);
    BOOST_CHECK_THROW(p.join(), isola::value_error);  // still running
    auto f = p.apply_async(slow, 100);
    p.close();
    BOOST_CHECK_THROW(p.apply_async(square, 1), isola::value_error);
    p.join();  // waits for the submitted task
    BOOST_TEST(f.get(1s) == 100);
    BOOST_TEST(p.workers().empty());
  }
  {
    isola::pool p(2);
    auto workers = p.workers();
    BOOST_TEST(workers.size() == 2u);  // started by the constructor, as Python's
    auto f = p.apply_async(slow, 10'000);
    p.terminate();
    BOOST_CHECK_THROW(f.get(5s), isola::cancelled_error);
    p.join();
    for (auto& w : workers)
      BOOST_TEST(isola_test::wait_until([&] { return isola_test::pid_dead(w.pid()); }));
  }
  std::vector<int> pids;
  {
    isola::pool p(2);
    for (auto& w : p.workers()) pids.push_back(w.pid());
    BOOST_TEST(pids.size() == 2u);
    auto f = p.apply_async(slow, 10'000);
  }  // ~pool terminates
  for (int pid : pids)
    BOOST_TEST(isola_test::wait_until([&] { return isola_test::pid_dead(pid); }));
}

BOOST_AUTO_TEST_CASE(get_with_a_timeout_loses_nothing, *utf::timeout(60)) {
  isola::pool p(1);
  auto f = p.apply_async(slow, 300);
  BOOST_CHECK_THROW(f.get(10ms), isola::timeout_error);
  BOOST_TEST(!f.ready());
  BOOST_TEST(f.get(10s) == 300);
}

BOOST_AUTO_TEST_CASE(a_worker_that_dies_mid_task_fails_only_that_task, *utf::timeout(120)) {
  for (auto m : methods) {
    BOOST_TEST_CONTEXT("method " << m) {
      isola::pool p({.processes = 2, .method = m});
      std::vector<isola::future<int>> before;
      for (int i = 0; i < 20; ++i) before.push_back(p.apply_async(square, i));
      auto boom = p.apply_async(segfault, 0);
      auto gone = p.apply_async(kill_self, 0);
      std::vector<isola::future<int>> after;
      for (int i = 0; i < 20; ++i) after.push_back(p.apply_async(square, i));
      BOOST_CHECK_EXCEPTION(boom.get(10s), isola::worker_died, [](const isola::worker_died& e) {
        return e.exitcode() == -SIGSEGV && e.task() == "apply" && e.pid() > 0;
      });
      BOOST_CHECK_EXCEPTION(gone.get(10s), isola::worker_died,
                            [](const isola::worker_died& e) { return e.exitcode() == -SIGKILL; });
      for (int i = 0; i < 20; ++i) {
        BOOST_TEST(before[i].get(10s) == i * i);
        BOOST_TEST(after[i].get(10s) == i * i);
      }
      BOOST_TEST(p.map(square, std::vector<int>{1, 2, 3}) == (std::vector<int>{1, 4, 9}));
      BOOST_TEST(p.workers().size() == 2u);
    }
  }
}

BOOST_AUTO_TEST_CASE(a_task_whose_worker_is_killed_is_retried_when_asked, *utf::timeout(60)) {
  isola::pool p({.processes = 2, .task_retries = 1});
  auto f = p.apply_async(slow, 500);
  // The task is running on one of the workers: kill them both.
  BOOST_TEST(!f.wait(100ms));
  for (auto& w : p.workers()) ::kill(w.pid(), SIGKILL);
  BOOST_TEST(f.get(10s) == 500);
}

// pebble's per-task timeout, which Python's own pools lack: only the late
// task's worker is killed; tasks queued behind it run on its replacement.
BOOST_AUTO_TEST_CASE(a_task_past_task_timeout_fails_alone_and_its_worker_is_replaced,
                     *utf::timeout(120)) {
  for (auto m : methods) {
    BOOST_TEST_CONTEXT("method " << m) {
      isola::pool p({.processes = 2, .method = m, .task_timeout = 500ms});
      const auto t0 = std::chrono::steady_clock::now();
      auto late = p.apply_async(slow, 30000);
      auto stopped = p.apply_async(stop_self, 0);  // SIGSTOP: as late
      std::vector<isola::future<int>> others;
      for (int i = 0; i < 20; ++i) others.push_back(p.apply_async(square, i));
      BOOST_CHECK_EXCEPTION(late.get(10s), isola::timeout_error, [](const isola::timeout_error& e) {
        return std::string(e.what()).find("task_timeout") != std::string::npos;
      });
      BOOST_CHECK_THROW(stopped.get(10s), isola::timeout_error);
      BOOST_TEST((std::chrono::steady_clock::now() - t0 < 5s));
      for (int i = 0; i < 20; ++i) BOOST_TEST(others[i].get(10s) == i * i);
      // Both replaced, and the pool goes on; a quick task is not touched.
      BOOST_TEST(isola_test::wait_until([&] { return p.workers().size() == 2u; }));
      BOOST_TEST(p.apply(slow, 100) == 100);
      BOOST_TEST(p.map(square, std::vector<int>{1, 2, 3}) == (std::vector<int>{1, 4, 9}));
    }
  }
}

BOOST_AUTO_TEST_CASE(a_task_past_task_timeout_is_retried_under_task_retries, *utf::timeout(60)) {
  isola_test::temp_file marker;
  ::unlink(marker.path().c_str());
  isola::pool p({.processes = 1, .task_retries = 1, .task_timeout = 300ms});
  BOOST_TEST(p.apply(hang_once, marker.path()) == 42);
}

BOOST_AUTO_TEST_CASE(a_negative_task_timeout_is_a_value_error, *utf::timeout(30)) {
  BOOST_CHECK_THROW((void)isola::pool({.processes = 1, .task_timeout = -1s}), isola::value_error);
  BOOST_CHECK_THROW((void)isola::process_pool_executor({.max_workers = 1, .task_timeout = -1s}),
                    isola::value_error);
}

BOOST_AUTO_TEST_CASE(ten_thousand_tasks_while_workers_are_killed_at_random, *utf::timeout(300)) {
  for (unsigned retries : {0u, 1000u}) {
    BOOST_TEST_CONTEXT("retries " << retries) {
      isola::pool p({.processes = 3, .task_retries = retries});
      std::atomic<bool> done{false};
      std::atomic<int> kills{0};
      std::thread killer([&] {
        std::mt19937 rng(7);
        // At most 300 kills: on a slow (sanitized) build, killing faster
        // than workers start would starve the pool of progress.
        while (!done && kills < 300) {
          std::this_thread::sleep_for(std::chrono::microseconds(1000 + rng() % 5000));
          auto ws = p.workers();
          if (!ws.empty() && ::kill(ws[rng() % ws.size()].pid(), SIGKILL) == 0) ++kills;
        }
      });
      const int n = 10'000;
      std::vector<isola::future<int>> fs;
      fs.reserve(n);
      for (int i = 0; i < n; ++i) fs.push_back(p.apply_async(square, i % 1000));
      int values = 0, died = 0, other = 0;
      for (int i = 0; i < n; ++i) {
        try {
          if (fs[i].get(60s) == (i % 1000) * (i % 1000)) ++values;
        } catch (const isola::worker_died&) {
          ++died;
        } catch (...) {
          ++other;
        }
      }
      done = true;
      killer.join();
      BOOST_TEST_MESSAGE(values << " values, " << died << " worker_died, " << kills.load()
                                << " kills");
      BOOST_TEST(values + died == n);
      BOOST_TEST(other == 0);
      BOOST_TEST(kills.load() > 0);
      if (retries > 0) BOOST_TEST(values == n);
    }
  }
}

BOOST_AUTO_TEST_CASE(maxtasksperchild_recycles_workers_under_load_without_deadlock,
                     *utf::timeout(120)) {
  isola::pool p({.processes = 2, .maxtasksperchild = 5});
  std::vector<int> xs(200, 0);
  auto pids = p.map(my_pid, xs, 1);
  BOOST_TEST(pids.size() == 200u);
  std::set<int> distinct(pids.begin(), pids.end());
  BOOST_TEST(distinct.size() >= 40u);  // 200 tasks, at most 5 per worker
  for (int i = 0; i < 20; ++i) BOOST_TEST(p.apply(square, i) == i * i);
}

BOOST_AUTO_TEST_CASE(the_initializer_runs_in_every_worker, *utf::timeout(60)) {
  for (auto m : methods) {
    isola::pool_options o{.processes = 2, .method = m};
    o.initializer(set_seed, 42);
    isola::pool p(o);
    for (int v : p.map(seed, std::vector<int>(10, 0), 1)) BOOST_TEST(v == 42);
  }
}

BOOST_AUTO_TEST_CASE(a_failing_initializer_breaks_the_pool_with_a_clear_error, *utf::timeout(60)) {
  isola::pool_options o{.processes = 2};
  o.initializer(bad_init);
  isola::pool p(o);
  auto f = p.apply_async(square, 2);
  BOOST_CHECK_EXCEPTION(f.get(30s), isola::error, [](const isola::error& e) {
    return std::string(e.what()).find("no database") != std::string::npos;
  });
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(executor)

BOOST_AUTO_TEST_CASE(submit_map_as_completed_and_wait_work_as_in_concurrent_futures,
                     *utf::timeout(120)) {
  for (auto m : methods) {
    BOOST_TEST_CONTEXT("method " << m) {
      isola::process_pool_executor ex({.max_workers = 2, .method = m});
      std::vector<isola::future<int>> fs;
      for (int i = 0; i < 10; ++i) fs.push_back(ex.submit(square, i));
      std::set<int> seen;
      for (auto& f : isola::as_completed(fs, 30s)) seen.insert(f.get());
      BOOST_TEST(seen.size() == 10u);
      BOOST_TEST(seen.count(81) == 1u);
      BOOST_TEST(ex.map(square, std::vector<int>{1, 2, 3}) == (std::vector<int>{1, 4, 9}));

      std::vector<isola::future<int>> mixed{ex.submit(slow, 800), ex.submit(square, 3)};
      auto first = isola::wait(mixed, isola::return_when::first_completed, 10s);
      BOOST_TEST(first.done.size() == 1u);
      BOOST_TEST(first.done[0].get() == 9);
      BOOST_TEST(first.not_done.size() == 1u);
      auto timed = isola::wait(mixed, isola::return_when::all_completed, 10ms);
      BOOST_TEST(timed.not_done.size() == 1u);
      std::vector<isola::future<int>> bad{ex.submit(fails, 3), ex.submit(slow, 800)};
      auto exc = isola::wait(bad, isola::return_when::first_exception, 10s);
      BOOST_TEST(exc.done.size() == 1u);
      BOOST_CHECK_THROW(exc.done[0].get(), isola::remote_error);
      BOOST_CHECK_THROW(
          [&] {
            for (auto& f :
                 isola::as_completed(std::vector<isola::future<int>>{ex.submit(slow, 800)}, 10ms))
              (void)f;
          }(),
          isola::timeout_error);
    }
  }
}

BOOST_AUTO_TEST_CASE(shutdown_waits_and_can_cancel_what_has_not_started, *utf::timeout(60)) {
  isola::process_pool_executor ex(1);
  auto running = ex.submit(slow, 300);
  BOOST_TEST(!running.wait(50ms));  // started on the only worker (one more waits in its mailbox)
  std::vector<isola::future<int>> queued;
  for (int i = 0; i < 5; ++i) queued.push_back(ex.submit(square, i));
  ex.shutdown(true, true);
  BOOST_TEST(running.get(1s) == 300);
  int cancelled = 0;
  for (int i = 0; i < 5; ++i) {
    try {
      BOOST_TEST(queued[static_cast<std::size_t>(i)].get(1s) ==
                 i * i);  // it had been handed out: it ran
    } catch (const isola::cancelled_error&) {
      ++cancelled;
    }
  }
  // All but the batch already waiting in the worker's mailbox: with one
  // worker that batch is at most half of the queue the dispatcher saw (here
  // at most 2 of 5, depending on how many submits it had seen).
  BOOST_TEST(cancelled >= 3);
  BOOST_CHECK_THROW(ex.submit(square, 1), isola::value_error);
}

// A late future fails with timeout_error; the others, and the executor, go
// on, even when a worker's death would otherwise break it.
BOOST_AUTO_TEST_CASE(task_timeout_fails_only_the_late_future_and_breaks_nothing,
                     *utf::timeout(60)) {
  isola::process_pool_executor ex(
      {.max_workers = 2, .break_on_worker_death = true, .task_timeout = 400ms});
  auto late = ex.submit(slow, 30000);
  auto quick = ex.submit(square, 6);
  BOOST_CHECK_THROW(late.get(10s), isola::timeout_error);
  BOOST_TEST(quick.get(10s) == 36);
  BOOST_TEST(ex.submit(square, 5).get(10s) == 25);
}

BOOST_AUTO_TEST_CASE(a_dead_worker_fails_only_its_task_unless_asked_to_break, *utf::timeout(60)) {
  {
    isola::process_pool_executor ex(2);
    auto boom = ex.submit(segfault, 0);
    BOOST_CHECK_THROW(boom.get(10s), isola::worker_died);
    BOOST_TEST(ex.submit(square, 5).get(10s) == 25);
  }
  {
    isola::process_pool_executor ex({.max_workers = 2, .break_on_worker_death = true});
    auto boom = ex.submit(segfault, 0);
    BOOST_CHECK_THROW(boom.get(10s), isola::worker_died);
    auto after = ex.submit(square, 5);
    BOOST_CHECK_EXCEPTION(after.get(10s), isola::error, [](const isola::error& e) {
      return std::string(e.what()).find("broken") != std::string::npos;
    });
  }
}

BOOST_AUTO_TEST_SUITE_END()
