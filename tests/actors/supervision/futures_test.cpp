// concurrent.futures and Pool through Python 3.14, ported from CPython's
// Lib/test/test_concurrent_futures/ (test_future.py, test_wait.py,
// test_as_completed.py, executor.py, test_process_pool.py) and
// Lib/test/_test_multiprocessing.py (_TestPool), one suite per class, in
// real worker processes.
#include <signal.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>

#include <atomic>
#include <chrono>
#include <mutex>
#include <ranges>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <isola/error.hpp>
#include <isola/pool.hpp>
#include <isola/process_pool_executor.hpp>

#include "test_util.hpp"

namespace utf = boost::unit_test;
using namespace std::chrono_literals;

namespace {

int square(int x) { return x * x; }
int power(int x, int y) {
  int r = 1;
  for (int i = 0; i < y; ++i) r *= x;
  return r;
}
int add3(int a, int b, int c) { return a + b + c; }
int slow(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return ms;
}
int sleep_and_raise(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  throw std::runtime_error("this is an exception");
}
int fails(int) { throw std::domain_error("no"); }
int kill_at_3(int x) {
  if (x == 3) ::raise(SIGKILL);
  return x;
}
int touch(std::string path) {
  isola_test::write_file(path, "ran");
  return 1;
}

/// A future completed by hand, as CPython's create_future().
isola::future<int> pending_future() {
  return isola::future<int>(std::make_shared<isola::detail::future_state<int>>());
}
isola::future<int> successful_future(int v) {
  auto st = std::make_shared<isola::detail::future_state<int>>();
  st->succeed(v);
  return isola::future<int>(st);
}
isola::future<int> failed_future() {
  auto st = std::make_shared<isola::detail::future_state<int>>();
  st->fail(std::make_exception_ptr(std::runtime_error("boom")));
  return isola::future<int>(st);
}
isola::future<int> cancelled_future() {
  auto f = pending_future();
  BOOST_REQUIRE(f.cancel());
  return f;
}

bool same(const isola::future<int>& a, const isola::future<int>& b) {
  return a.state_ptr() == b.state_ptr();
}
bool contains(const std::vector<isola::future<int>>& fs, const isola::future<int>& f) {
  for (auto& g : fs)
    if (same(g, f)) return true;
  return false;
}

}  // namespace

// test_future.py: FutureTests
BOOST_AUTO_TEST_SUITE(future_tests)

BOOST_AUTO_TEST_CASE(done_callbacks_run_with_the_result_the_exception_or_the_cancellation,
                     *utf::timeout(10)) {
  // test_done_callback_with_result / _with_exception / _with_cancel
  std::atomic<int> got{0};
  auto f = pending_future();
  f.add_done_callback([&](const isola::future<int>& g) { got = g.get(); });
  BOOST_TEST(got.load() == 0);
  f.state_ptr()->succeed(5);
  BOOST_TEST(got.load() == 5);

  std::atomic<bool> saw_error{false};
  auto e = pending_future();
  e.add_done_callback([&](const isola::future<int>& g) { saw_error = g.exception() != nullptr; });
  e.state_ptr()->fail(std::make_exception_ptr(std::runtime_error("x")));
  BOOST_TEST(saw_error.load());

  std::atomic<bool> saw_cancel{false};
  auto c = pending_future();
  c.add_done_callback([&](const isola::future<int>& g) { saw_cancel = g.cancelled(); });
  BOOST_TEST(c.cancel());
  BOOST_TEST(saw_cancel.load());
}

BOOST_AUTO_TEST_CASE(a_callback_that_throws_does_not_stop_the_others, *utf::timeout(10)) {
  // test_done_callback_raises
  std::atomic<bool> raising_ran{false}, fn_ran{false};
  auto f = pending_future();
  f.add_done_callback([&](const isola::future<int>&) {
    raising_ran = true;
    throw std::runtime_error("doh!");
  });
  f.add_done_callback([&](const isola::future<int>&) { fn_ran = true; });
  f.state_ptr()->succeed(5);
  BOOST_TEST(raising_ran.load());
  BOOST_TEST(fn_ran.load());
}

BOOST_AUTO_TEST_CASE(a_callback_added_to_a_done_future_runs_at_once_in_the_caller,
                     *utf::timeout(10)) {
  // test_done_callback_already_successful / _failed / _cancelled
  std::thread::id where;
  int v = 0;
  successful_future(7).add_done_callback([&](const isola::future<int>& g) {
    where = std::this_thread::get_id();
    v = g.get();
  });
  BOOST_TEST(v == 7);
  BOOST_TEST((where == std::this_thread::get_id()));
  bool failed = false, cancelled = false;
  failed_future().add_done_callback(
      [&](const isola::future<int>& g) { failed = g.exception() != nullptr; });
  cancelled_future().add_done_callback(
      [&](const isola::future<int>& g) { cancelled = g.cancelled(); });
  BOOST_TEST(failed);
  BOOST_TEST(cancelled);
}

BOOST_AUTO_TEST_CASE(a_pool_futures_callback_runs_in_the_thread_that_completes_it,
                     *utf::timeout(60)) {
  isola::process_pool_executor ex(1);
  auto f = ex.submit(slow, 200);
  std::mutex m;
  std::thread::id where;
  std::atomic<int> got{0};
  f.add_done_callback([&](const isola::future<int>& g) {
    {
      std::lock_guard lk(m);
      where = std::this_thread::get_id();
    }
    got = g.get();
  });
  BOOST_TEST(f.get(10s) == 200);
  BOOST_TEST(isola_test::wait_until([&] { return got.load() == 200; }));
  std::lock_guard lk(m);
  BOOST_TEST((where != std::this_thread::get_id()));
}

BOOST_AUTO_TEST_CASE(running_futures_cannot_be_cancelled, *utf::timeout(60)) {
  // test_running / test_cancel: a running future's cancel() is false.
  isola::process_pool_executor ex(1);
  auto f = ex.submit(slow, 500);
  BOOST_TEST(isola_test::wait_until([&] { return f.running(); }));
  BOOST_TEST(!f.cancel());
  BOOST_TEST(!f.cancelled());
  BOOST_TEST(f.get(10s) == 500);
  BOOST_TEST(!f.running());
  BOOST_TEST(!pending_future().running());
  BOOST_TEST(!successful_future(1).running());
}

BOOST_AUTO_TEST_CASE(a_queued_future_that_is_cancelled_never_runs, *utf::timeout(60)) {
  isola_test::temp_file file;  // empty until the task runs
  const std::string marker = file.path();
  isola::process_pool_executor ex(1);
  auto busy = ex.submit(slow, 400);
  BOOST_TEST(isola_test::wait_until([&] { return busy.running(); }));
  auto queued = ex.submit(touch, marker);  // waits: the only worker is busy
  BOOST_TEST(!queued.running());
  BOOST_TEST(queued.cancel());
  BOOST_TEST(queued.cancelled());
  BOOST_CHECK_THROW(queued.get(1s), isola::cancelled_error);
  BOOST_TEST(busy.get(10s) == 400);
  BOOST_TEST(ex.submit(slow, 10).get(10s) == 10);  // ran after where the cancelled one was
  BOOST_TEST(file.read().empty());
}

BOOST_AUTO_TEST_CASE(exception_with_a_timeout_throws_timeout_error_then_gives_the_exception,
                     *utf::timeout(60)) {
  // test_exception_with_timeout / test_exception_with_success / cancelled
  auto p = pending_future();
  BOOST_CHECK_THROW((void)p.exception(50ms), isola::timeout_error);
  BOOST_TEST(!p.ready());
  BOOST_TEST((successful_future(1).exception(0s) == nullptr));
  BOOST_TEST((failed_future().exception(0s) != nullptr));
  BOOST_CHECK_THROW((void)cancelled_future().exception(0s), isola::cancelled_error);
  BOOST_CHECK_THROW((void)cancelled_future().exception(), isola::cancelled_error);
  BOOST_CHECK_THROW((void)p.exception(-1s), isola::value_error);

  isola::process_pool_executor ex(1);
  auto f = ex.submit(sleep_and_raise, 300);
  BOOST_CHECK_THROW((void)f.exception(10ms), isola::timeout_error);
  auto e = f.exception(10s);
  BOOST_CHECK_THROW(std::rethrow_exception(e), isola::remote_error);
}

BOOST_AUTO_TEST_SUITE_END()

// _TestPool: the callbacks of apply_async
BOOST_AUTO_TEST_SUITE(pool_callbacks)

BOOST_AUTO_TEST_CASE(apply_async_callbacks_have_run_when_get_returns, *utf::timeout(60)) {
  // multiprocessing's ApplyResult._set runs the callback, then sets the event.
  isola::pool p(1);
  std::atomic<bool> result_cb_done{false}, error_cb_done{false};
  auto ok = p.apply_async(isola::callbacks<int>{[&](const int&) {
                                                  std::this_thread::sleep_for(300ms);
                                                  result_cb_done = true;
                                                },
                                                {}},
                          square, 3);
  BOOST_TEST(ok.get(10s) == 9);
  BOOST_TEST(result_cb_done.load());
  auto bad = p.apply_async(isola::callbacks<int>{{},
                                                 [&](std::exception_ptr) {
                                                   std::this_thread::sleep_for(300ms);
                                                   error_cb_done = true;
                                                 }},
                           fails, 3);
  BOOST_CHECK_THROW(bad.get(10s), isola::remote_error);
  BOOST_TEST(error_cb_done.load());
  // A callback that throws is logged; the future still completes.
  auto thrower = p.apply_async(
      isola::callbacks<int>{[](const int&) { throw std::runtime_error("callback bug"); }, {}},
      square, 4);
  BOOST_TEST(thrower.get(10s) == 16);
}

BOOST_AUTO_TEST_SUITE_END()

// test_wait.py: WaitTests
BOOST_AUTO_TEST_SUITE(wait_tests)

BOOST_AUTO_TEST_CASE(first_exception_does_not_count_a_cancelled_future, *utf::timeout(60)) {
  // test_first_exception_some_already_complete
  isola::process_pool_executor ex(2);
  auto ok = successful_future(42);
  auto cancelled = cancelled_future();
  auto future1 = ex.submit(sleep_and_raise, 300);
  auto future2 = ex.submit(slow, 1500);
  auto r = isola::wait(std::vector<isola::future<int>>{ok, cancelled, future1, future2},
                       isola::return_when::first_exception, 10s);
  BOOST_TEST(r.done.size() == 3u);
  BOOST_TEST(contains(r.done, ok));
  BOOST_TEST(contains(r.done, cancelled));
  BOOST_TEST(contains(r.done, future1));
  BOOST_TEST(r.not_done.size() == 1u);
  BOOST_TEST(contains(r.not_done, future2));
  // test_first_exception_one_already_failed: a real failure returns at once.
  auto t0 = std::chrono::steady_clock::now();
  auto again =
      isola::wait(std::vector<isola::future<int>>{failed_future(), future2},
                  isola::return_when::first_exception, 10s);
  BOOST_TEST((std::chrono::steady_clock::now() - t0 < 1s));
  BOOST_TEST(again.not_done.size() == 1u);
}

BOOST_AUTO_TEST_CASE(a_future_given_twice_is_counted_once, *utf::timeout(10)) {
  auto f = successful_future(1);
  auto r = isola::wait(std::vector<isola::future<int>>{f, f, f});
  BOOST_TEST(r.done.size() == 1u);
  BOOST_TEST(r.not_done.empty());
}

BOOST_AUTO_TEST_SUITE_END()

// test_as_completed.py: AsCompletedTests
BOOST_AUTO_TEST_SUITE(as_completed_tests)

BOOST_AUTO_TEST_CASE(a_future_given_three_times_is_yielded_once, *utf::timeout(60)) {
  // test_duplicate_futures (bpo-20367)
  isola::process_pool_executor ex(1);
  auto f = ex.submit(slow, 200);
  int n = 0;
  for (auto& g : isola::as_completed(std::vector<isola::future<int>>{f, f, f}, 10s)) {
    BOOST_TEST(g.get() == 200);
    ++n;
  }
  BOOST_TEST(n == 1);
  int m = 0;
  auto done = successful_future(3);
  for (auto& g : isola::as_completed(std::vector<isola::future<int>>{done, done})) {
    (void)g;
    ++m;
  }
  BOOST_TEST(m == 1);
}

BOOST_AUTO_TEST_SUITE_END()

// executor.py: ExecutorTest; test_process_pool.py: ProcessPoolExecutorTest
BOOST_AUTO_TEST_SUITE(executor_tests)

BOOST_AUTO_TEST_CASE(cancelled_is_true_for_the_futures_shutdown_cancelled, *utf::timeout(60)) {
  // test_shutdown.py: test_cancel_futures
  isola::process_pool_executor ex(1);
  auto running = ex.submit(slow, 300);
  BOOST_TEST(isola_test::wait_until([&] { return running.running(); }));
  std::vector<isola::future<int>> queued;
  for (int i = 0; i < 5; ++i) queued.push_back(ex.submit(square, i));
  ex.shutdown(true, true);
  BOOST_TEST(running.get(1s) == 300);
  BOOST_TEST(!running.cancelled());
  int cancelled = 0;
  for (auto& f : queued) {
    BOOST_TEST(f.ready());
    try {
      (void)f.get();
      BOOST_TEST(!f.cancelled());
    } catch (const isola::cancelled_error&) {
      BOOST_TEST(f.cancelled());
      BOOST_CHECK_THROW((void)f.exception(), isola::cancelled_error);
      ++cancelled;
    }
  }
  BOOST_TEST(cancelled >= 3);
}

BOOST_AUTO_TEST_CASE(map_over_several_ranges_stops_at_the_shortest, *utf::timeout(60)) {
  // test_map: executor.map(pow, range(10), range(10)); zip semantics
  isola::process_pool_executor ex(2);
  std::vector<int> a{1, 2, 3, 4, 5}, b{2, 2, 2};
  BOOST_TEST(ex.map(power, a, b) == (std::vector<int>{1, 4, 9}));
  BOOST_TEST(ex.map(add3, a, b, std::vector<int>{10, 20, 30, 40}) ==
             (std::vector<int>{13, 24, 35}));
  BOOST_TEST(ex.map(power, a, std::vector<int>{}).empty());
  std::vector<int> out;
  for (int v : ex.map(isola::map_options{.chunksize = 2}, power, a, std::vector<int>(5, 3)))
    out.push_back(v);
  BOOST_TEST(out == (std::vector<int>{1, 8, 27, 64, 125}));
  // test_map_exception: the failure arrives at its place in the results.
  auto r = ex.map(isola::map_options{}, fails, std::vector<int>{1});
  BOOST_CHECK_THROW(r.begin(), isola::remote_error);
}

BOOST_AUTO_TEST_CASE(map_with_buffersize_reads_the_input_as_results_are_consumed,
                     *utf::timeout(60)) {
  isola::process_pool_executor ex(2);
  // test_map_buffersize_validation
  BOOST_CHECK_THROW(ex.map(isola::map_options{.buffersize = 0}, square, std::vector<int>{1}),
                    isola::value_error);
  // test_map_buffersize_on_infinite_iterable
  {
    auto res = ex.map(isola::map_options{.buffersize = 2}, square, std::views::iota(0));
    std::vector<int> first;
    for (int v : res) {
      first.push_back(v);
      if (first.size() == 5) break;
    }
    BOOST_TEST(first == (std::vector<int>{0, 1, 4, 9, 16}));
  }
  // test_map_buffersize_when_buffer_is_full: exactly buffersize items read.
  std::atomic<int> reads{0};
  auto counted = std::views::iota(0, 100'000) | std::views::transform([&reads](int i) {
                   ++reads;
                   return i;
                 });
  auto res = ex.map(isola::map_options{.buffersize = 2}, square, counted);
  BOOST_TEST(reads.load() == 2);
  auto it = res.begin();
  BOOST_TEST(*it == 0);
  BOOST_TEST(reads.load() <= 3);
  // The timeout runs from the call.
  auto late = ex.map(isola::map_options{.timeout = 50ms, .buffersize = 1}, slow,
                     std::vector<int>{2000});
  BOOST_CHECK_THROW(late.begin(), isola::timeout_error);
}

BOOST_AUTO_TEST_CASE(terminate_workers_and_kill_workers_end_them_and_cancel_what_waits,
                     *utf::timeout(120)) {
  // test_process_pool.py: test_force_shutdown_workers (terminate_workers, kill_workers)
  for (bool kill : {false, true}) {
    BOOST_TEST_CONTEXT((kill ? "kill_workers" : "terminate_workers")) {
      auto t0 = std::chrono::steady_clock::now();
      std::vector<int> pids;
      {
        isola::process_pool_executor ex(1);
        for (auto& w : ex.workers()) pids.push_back(w.pid());
        BOOST_REQUIRE(pids.size() == 1u);
        auto running = ex.submit(slow, 20'000);
        BOOST_TEST(isola_test::wait_until([&] { return running.running(); }));
        std::vector<isola::future<int>> queued;
        for (int i = 0; i < 3; ++i) queued.push_back(ex.submit(square, i));
        if (kill)
          ex.kill_workers();
        else
          ex.terminate_workers();
        BOOST_TEST(isola_test::wait_until([&] { return isola_test::pid_dead(pids[0]); }));
        BOOST_CHECK_THROW(running.get(10s), isola::error);
        BOOST_TEST(!running.cancelled());
        // Those not handed out are cancelled; one may already wait in the
        // worker's mailbox (running(), as in Python's call queue): that one
        // fails with the pool.
        int cancelled = 0;
        for (auto& f : queued) {
          try {
            (void)f.get(10s);
            BOOST_ERROR("a queued task ran after " << (kill ? "kill" : "terminate") << "_workers");
          } catch (const isola::cancelled_error&) {
            BOOST_TEST(f.cancelled());
            ++cancelled;
          } catch (const isola::error&) {
            BOOST_TEST(!f.cancelled());
          }
        }
        BOOST_TEST(cancelled >= 2);
        BOOST_CHECK_THROW(ex.submit(square, 1), isola::value_error);
        BOOST_CHECK_THROW(ex.map(isola::map_options{}, square, std::vector<int>{1}),
                          isola::value_error);
        ex.kill_workers();  // again: nothing left to do, no error
      }  // ~process_pool_executor: shutdown(wait) returns, no worker left
      BOOST_TEST((std::chrono::steady_clock::now() - t0 < 15s));
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()

// _TestPool: imap and imap_unordered
BOOST_AUTO_TEST_SUITE(pool_imap)

BOOST_AUTO_TEST_CASE(imap_reads_its_input_only_as_results_are_consumed, *utf::timeout(60)) {
  isola::pool p(2);
  std::atomic<int> reads{0};
  auto counted = std::views::iota(0, 100'000) | std::views::transform([&reads](int i) {
                   ++reads;
                   return i;
                 });
  int n = 0;
  for (int v : p.imap(square, counted)) {
    BOOST_TEST(v == n * n);
    if (++n == 10) break;
  }
  BOOST_TEST(reads.load() < 1000);  // a window ahead of the consumer, not the whole input
}

BOOST_AUTO_TEST_CASE(imap_and_imap_unordered_take_an_endless_range, *utf::timeout(60)) {
  isola::pool p(2);
  std::vector<int> first;
  for (int v : p.imap(square, std::views::iota(0), 3)) {
    first.push_back(v);
    if (first.size() == 100) break;
  }
  for (int i = 0; i < 100; ++i) BOOST_TEST(first[static_cast<std::size_t>(i)] == i * i);
  std::set<int> any;
  for (int v : p.imap_unordered(square, std::views::iota(0))) {
    any.insert(v);
    if (any.size() == 50) break;
  }
  BOOST_TEST(any.size() == 50u);
  BOOST_TEST(p.apply(square, 5) == 25);  // the abandoned iterations left the pool usable
}

BOOST_AUTO_TEST_CASE(a_worker_killed_mid_imap_fails_that_item_with_worker_died,
                     *utf::timeout(60)) {
  isola::pool p(2);
  std::vector<int> got;
  BOOST_CHECK_EXCEPTION(
      [&] {
        for (int v : p.imap(kill_at_3, std::vector<int>{0, 1, 2, 3, 4})) got.push_back(v);
      }(),
      isola::worker_died, [](const isola::worker_died& e) {
        return e.exitcode() == -SIGKILL && e.task() == "imap chunk 4";
      });
  BOOST_TEST(got == (std::vector<int>{0, 1, 2}));
  p.close();
  BOOST_CHECK_THROW(p.imap(square, std::vector<int>{1}), isola::value_error);
}

BOOST_AUTO_TEST_SUITE_END()
