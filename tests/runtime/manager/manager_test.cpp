// isola::manager and its proxies between real processes: every operation of
// dict, list, queue, lock, event and value; atomic update() from many
// processes; proxies passed to children under every start method; the
// manager killed while children wait in it; a client killed holding a lock;
// serving over TCP with an authentication key, a wrong key, and junk from an
// unauthenticated peer. Also SHA-256 and HMAC-SHA256 against their published
// test vectors (the handshake's digest).
#include <boost/test/unit_test.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <isola/function_registry.hpp>
#include <isola/manager.hpp>
#include <isola/process.hpp>
#include <isola/queue.hpp>
#include "sys/crypto.hpp"
#include "sys/handshake.hpp"

#include <chrono>
#include <cstdint>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "test_util.hpp"

using namespace std::chrono_literals;
namespace utf = boost::unit_test;
using isola::start_method;
using clk = std::chrono::steady_clock;

namespace {

double seconds_since(clk::time_point t0) {
  return std::chrono::duration<double>(clk::now() - t0).count();
}

// --- functions run in the manager by update() ----------------------------------

int decrement(int v) { return v - 1; }
int add(int v, int d) { return v + d; }
void append_word(std::string& s, const std::string& w) {
  if (!s.empty()) s += ' ';
  s += w;
}
int throw_on_negative(int v) {
  if (v < 0) throw std::invalid_argument("negative: " + std::to_string(v));
  return v * 2;
}
int times_ten(int v) { return v * 10; }
// The manager runs only functions it registered at start-up (a client's
// update names one; see isola/function_registry.hpp).
ISOLA_REGISTER_FUNCTION(decrement);
ISOLA_REGISTER_FUNCTION(add);
ISOLA_REGISTER_FUNCTION(append_word);
ISOLA_REGISTER_FUNCTION(throw_on_negative);
ISOLA_REGISTER_FUNCTION(times_ten);

// --- children --------------------------------------------------------------------

void update_many(isola::managed::dict<std::string, int> d, int n) {
  for (int i = 0; i < n; ++i) d.update("count", &add, 1);
}

void increment_under_lock(isola::managed::dict<std::string, int> d, isola::managed::lock l, int n) {
  for (int i = 0; i < n; ++i) {
    std::scoped_lock g(l);
    int v = d.get("count");
    d.set("count", v + 1);  // a read-modify-write: lost updates without the lock
  }
}

struct all_proxies {
  isola::managed::dict<std::string, int> d;
  isola::managed::list<std::string> l;
  isola::managed::queue<int> q;
  isola::managed::lock k;
  isola::managed::event e;
  isola::managed::value<long> v;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(d, l, q, k, e, v);
  }
};

// Uses every proxy it was given, then answers on q.
int use_every_proxy(all_proxies p, std::string who) {
  p.d.set(who, static_cast<int>(::getpid() % 1000));
  p.d.update("children", &add, 1);
  p.l.append(who);
  {
    std::scoped_lock g(p.k);
    p.v.fetch_add(10);
  }
  p.e.wait();
  p.q.put(static_cast<int>(p.d.size()));
  return 0;
}

// Receives a proxy inside a message (an isola::queue of proxies).
void proxy_from_a_message(isola::queue<isola::managed::dict<std::string, int>> in) {
  auto d = in.get(30s);
  d.set("from-message", 7);
}

void blocked_child(isola::managed::lock l, isola::managed::event e, isola::managed::queue<int> q,
                   int what, isola::queue<std::string> out) {
  try {
    if (what == 0) l.acquire();
    if (what == 1) e.wait();
    if (what == 2) (void)q.get();
    out.put("returned");
  } catch (const isola::manager_error& x) {
    out.put("manager_error " + std::to_string(x.pid()) + " " + x.what());
  } catch (const std::exception& x) {
    out.put(std::string("other ") + x.what());
  }
}

void hold_lock_forever(isola::managed::lock l, isola::queue<int> out) {
  l.acquire();
  out.put(1);
  for (;;) ::pause();
}

void consume_remote(std::string host, int port, std::string key, isola::queue<int> out) {
  auto r = isola::manager::connect(host, static_cast<std::uint16_t>(port), key);
  auto q = r.queue<int>("jobs");
  int sum = 0;
  for (;;) {
    int v = q.get(30s);
    if (v < 0) break;
    sum += v;
  }
  out.put(sum);
}

// --- raw sockets (the junk tests) ------------------------------------------------

int tcp_connect(std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  BOOST_REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
  return fd;
}

/// Whether the peer closed fd within the timeout (reading and discarding).
bool closed_by_peer(int fd, std::chrono::milliseconds timeout) {
  auto deadline = clk::now() + timeout;
  char buf[4096];
  while (clk::now() < deadline) {
    pollfd pf{fd, POLLIN, 0};
    int left = static_cast<int>(
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clk::now()).count());
    if (::poll(&pf, 1, std::max(left, 1)) <= 0) continue;
    ssize_t r = ::recv(fd, buf, sizeof buf, 0);
    if (r == 0 || (r < 0 && errno == ECONNRESET)) return true;
  }
  return false;
}

bool recv_exact(int fd, void* p, std::size_t n) {
  auto* s = static_cast<char*>(p);
  while (n > 0) {
    ssize_t r = ::recv(fd, s, n, 0);
    if (r <= 0) return false;
    s += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

/// Completes the client side of the handshake with key over a raw socket.
bool raw_handshake(int fd, const std::string& key) {
  char hello[40];
  if (!recv_exact(fd, hello, sizeof hello)) return false;
  // The proof over the key as the handshake uses it (a short key stretched).
  auto mac = isola::detail::handshake::proof(
      key, "isola-manager-client",
      std::span<const std::uint8_t, 32>(reinterpret_cast<const std::uint8_t*>(hello) + 8, 32));
  char resp[96] = {};
  std::memcpy(resp, mac.data(), 32);
  if (::send(fd, resp, sizeof resp, MSG_NOSIGNAL) != 96) return false;
  char verdict[36];
  return recv_exact(fd, verdict, sizeof verdict) && std::memcmp(verdict, "OKAY", 4) == 0;
}

}  // namespace

// ----------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(a_dict_gets_sets_erases_counts_and_lists_in_insertion_order,
                     *utf::timeout(30)) {
  isola::manager m;
  auto d = m.dict<std::string, int>();
  BOOST_TEST(d.size() == 0u);
  BOOST_TEST(d.empty());
  d.set("b", 2);
  d.set("a", 1);
  d.set("c", 3);
  d.set("b", 20);  // keeps its place
  BOOST_TEST(d.get("b") == 20);
  BOOST_TEST(d.get("zz", -1) == -1);
  BOOST_TEST(!d.find("zz").has_value());
  BOOST_TEST(d.find("a").value() == 1);
  BOOST_CHECK_THROW(d.get("zz"), isola::key_error);
  BOOST_TEST(d.contains("c"));
  BOOST_TEST(!d.contains("zz"));
  BOOST_TEST(d.size() == 3u);
  BOOST_TEST((d.keys() == std::vector<std::string>{"b", "a", "c"}));
  BOOST_TEST((d.values() == std::vector<int>{20, 1, 3}));
  auto items = d.items();
  BOOST_TEST(items.size() == 3u);
  BOOST_TEST(items[0].first == "b");
  BOOST_TEST(items[0].second == 20);
  BOOST_TEST(items[2].first == "c");
  BOOST_TEST(d.erase("a"));
  BOOST_TEST(!d.erase("a"));
  BOOST_TEST(d.size() == 2u);
  // update() runs in the manager: absent keys start from V{}.
  BOOST_TEST(d.update("n", &add, 5) == 5);
  BOOST_TEST(d.update("n", &decrement) == 4);
  BOOST_TEST(d.update("n", &times_ten) == 40);
  BOOST_TEST(d.get("n") == 40);
  d.clear();
  BOOST_TEST(d.size() == 0u);

  // Structured keys and values; update in place with an argument.
  auto w = m.dict<std::pair<int, int>, std::string>();
  w.set({1, 2}, "x");
  BOOST_TEST(w.update({1, 2}, &append_word, std::string("y")) == "x y");
  BOOST_TEST(w.update({3, 4}, &append_word, std::string("z")) == "z");
  BOOST_TEST(w.get({3, 4}) == "z");
}

BOOST_AUTO_TEST_CASE(an_update_that_throws_is_a_remote_error_and_changes_nothing,
                     *utf::timeout(30)) {
  isola::manager m;
  auto d = m.dict<int, int>();
  d.set(1, -5);
  try {
    d.update(1, &throw_on_negative);
    BOOST_FAIL("no exception");
  } catch (const isola::remote_error& e) {
    BOOST_TEST(e.type_name() == "std::invalid_argument");
    BOOST_TEST(e.remote_what() == "negative: -5");
    BOOST_TEST(e.pid() == m.pid());
  }
  BOOST_TEST(d.get(1) == -5);
  BOOST_TEST(d.update(1, &add, 6) == 1);
  BOOST_TEST(d.update(1, &throw_on_negative) == 2);
  // The manager survived the exception.
  BOOST_TEST(m.is_alive());
}

BOOST_AUTO_TEST_CASE(a_list_appends_indexes_from_either_end_pops_and_lists, *utf::timeout(30)) {
  isola::manager m;
  auto l = m.list<std::string>();
  BOOST_TEST(l.empty());
  l.append("a");
  l.append("b");
  l.append("c");
  BOOST_TEST(l.size() == 3u);
  BOOST_TEST(l.get(0) == "a");
  BOOST_TEST(l.get(-1) == "c");
  l.set(1, "B");
  BOOST_TEST((l.items() == std::vector<std::string>{"a", "B", "c"}));
  BOOST_CHECK_THROW(l.get(3), isola::index_error);
  BOOST_CHECK_THROW(l.get(-4), isola::index_error);
  BOOST_CHECK_THROW(l.set(5, "x"), isola::index_error);
  BOOST_TEST(l.pop() == "c");
  BOOST_TEST(l.pop(0) == "a");
  BOOST_TEST((l.items() == std::vector<std::string>{"B"}));
  l.clear();
  BOOST_CHECK_THROW(l.pop(), isola::index_error);
}

BOOST_AUTO_TEST_CASE(a_queue_puts_and_gets_waiting_for_a_time_or_not_at_all, *utf::timeout(30)) {
  isola::manager m;
  auto q = m.queue<int>(2);
  BOOST_TEST(q.empty());
  BOOST_TEST(!q.full());
  q.put(1);
  q.put(2, 1s);
  BOOST_TEST(q.full());
  BOOST_TEST(q.qsize() == 2u);
  BOOST_CHECK_THROW(q.put_nowait(3), isola::queue_full);
  BOOST_TEST(!q.try_put(3));
  auto t0 = clk::now();
  BOOST_CHECK_THROW(q.put(3, 100ms), isola::queue_full);
  BOOST_TEST(seconds_since(t0) >= 0.09);
  BOOST_TEST(q.get() == 1);
  BOOST_TEST(q.get(1s) == 2);
  BOOST_CHECK_THROW(q.get_nowait(), isola::queue_empty);
  BOOST_TEST(!q.try_get().has_value());
  t0 = clk::now();
  BOOST_CHECK_THROW(q.get(100ms), isola::queue_empty);
  BOOST_TEST(seconds_since(t0) >= 0.09);
  BOOST_CHECK_THROW(q.get(-1s), isola::value_error);

  // A blocked get is answered by a put from another thread (own connection).
  std::thread t([q]() mutable { q.put(42); });
  BOOST_TEST(q.get(10s) == 42);
  t.join();
  // A blocked put goes in once a get makes room, in order.
  q.put(1);
  q.put(2);
  std::thread t2([q]() mutable { q.put(3); });
  BOOST_TEST(isola_test::wait_until([&] { return m.stats().waiters == 1; }));
  BOOST_TEST(q.get() == 1);
  t2.join();
  BOOST_TEST(q.get() == 2);
  BOOST_TEST(q.get() == 3);
}

BOOST_AUTO_TEST_CASE(a_lock_is_exclusive_timed_and_refuses_misuse, *utf::timeout(30)) {
  isola::manager m;
  auto l = m.lock();
  l.acquire();
  BOOST_CHECK_THROW(l.acquire(), isola::value_error);  // it would deadlock
  bool got = true, timed = true, refused = false;
  double waited = 0;
  std::thread t([&, l]() mutable {  // another thread: its own connection
    got = l.try_acquire();
    auto t0 = clk::now();
    timed = l.acquire(100ms);
    waited = seconds_since(t0);
    try {
      l.release();  // not the holder
    } catch (const isola::value_error&) {
      refused = true;
    }
  });
  t.join();
  BOOST_TEST(!got);
  BOOST_TEST(!timed);
  BOOST_TEST(waited >= 0.09);
  BOOST_TEST(refused);
  l.release();
  BOOST_CHECK_THROW(l.release(), isola::value_error);
  {
    std::scoped_lock g(l);
    bool other = true;
    std::thread([&other, l]() mutable { other = l.try_lock(); }).join();
    BOOST_TEST(!other);
  }
  BOOST_TEST(l.try_lock_for(10ms));
  l.unlock();
  // A waiter gets the lock when it is released.
  l.acquire();
  std::thread t3([l]() mutable {
    l.acquire();
    l.release();
  });
  BOOST_TEST(isola_test::wait_until([&] { return m.stats().waiters == 1; }));
  l.release();
  t3.join();
  BOOST_TEST(m.stats().waiters == 0u);
}

BOOST_AUTO_TEST_CASE(an_event_wakes_every_waiter_and_times_out, *utf::timeout(30)) {
  isola::manager m;
  auto e = m.event();
  BOOST_TEST(!e.is_set());
  auto t0 = clk::now();
  BOOST_TEST(!e.wait(100ms));
  BOOST_TEST(seconds_since(t0) >= 0.09);
  std::vector<std::thread> ts;
  std::atomic<int> woke{0};
  for (int i = 0; i < 3; ++i)
    ts.emplace_back([e, &woke]() mutable {
      e.wait();
      ++woke;
    });
  BOOST_TEST(isola_test::wait_until([&] { return m.stats().waiters == 3; }));
  e.set();
  for (auto& t : ts) t.join();
  BOOST_TEST(woke.load() == 3);
  BOOST_TEST(e.is_set());
  BOOST_TEST(e.wait(0s));
  e.clear();
  BOOST_TEST(!e.is_set());
  BOOST_TEST(!e.wait(0s));
}

BOOST_AUTO_TEST_CASE(a_value_loads_stores_adds_and_updates, *utf::timeout(30)) {
  isola::manager m;
  auto v = m.value<int>(5);
  BOOST_TEST(v.load() == 5);
  v.store(7);
  BOOST_TEST(v.fetch_add(3) == 7);
  BOOST_TEST(v.load() == 10);
  BOOST_TEST(v.update(&add, -4) == 6);
  auto s = m.value<std::string>("label", "start");
  BOOST_TEST(s.load() == "start");
  BOOST_TEST(s.update(&append_word, std::string("end")) == "start end");
  auto s2 = m.value<std::string>("label", "ignored");  // opens the same one
  BOOST_TEST(s2.load() == "start end");
}

BOOST_AUTO_TEST_CASE(named_objects_are_made_once_and_reopened_only_with_their_types,
                     *utf::timeout(30)) {
  isola::manager m;
  auto a = m.dict<std::string, int>("shared");
  a.set("x", 1);
  auto b = m.dict<std::string, int>("shared");
  BOOST_TEST(b.get("x") == 1);
  BOOST_TEST(a.id() == b.id());
  BOOST_TEST((a == b));
  BOOST_CHECK_THROW((m.dict<std::string, double>("shared")), isola::type_error);
  BOOST_CHECK_THROW(m.list<int>("shared"), isola::type_error);
  auto q1 = m.queue<int>("jobs", 3);
  auto q2 = m.queue<int>("jobs");
  q1.put(9);
  BOOST_TEST(q2.get() == 9);
  BOOST_TEST(m.stats().objects == 2u);
}

BOOST_AUTO_TEST_CASE(eight_processes_updating_one_key_a_thousand_times_each_lose_nothing,
                     *utf::timeout(300)) {
  for (auto method : isola::all_start_methods()) {
    BOOST_TEST_CONTEXT("start method " << method) {
      isola::manager m({.method = method});
      auto d = m.dict<std::string, int>();
      std::vector<isola::process> ps;
      for (int i = 0; i < 8; ++i)
        ps.emplace_back(isola::process_options{.method = method}, update_many, d, 1000);
      for (auto& p : ps) p.start();
      for (auto& p : ps) {
        p.join();
        BOOST_TEST(p.exitcode() == 0);
      }
      BOOST_TEST(d.get("count") == 8000);
    }
  }
}

BOOST_AUTO_TEST_CASE(a_managed_lock_makes_a_read_modify_write_from_many_processes_exact,
                     *utf::timeout(180)) {
  isola::manager m;
  auto d = m.dict<std::string, int>();
  d.set("count", 0);
  auto l = m.lock();
  std::vector<isola::process> ps;
  for (int i = 0; i < 6; ++i) ps.emplace_back(increment_under_lock, d, l, 300);
  for (auto& p : ps) p.start();
  for (auto& p : ps) {
    p.join();
    BOOST_TEST(p.exitcode() == 0);
  }
  BOOST_TEST(d.get("count") == 1800);
}

BOOST_AUTO_TEST_CASE(proxies_pass_to_children_under_every_start_method_and_inside_messages,
                     *utf::timeout(240)) {
  for (auto method : isola::all_start_methods()) {
    BOOST_TEST_CONTEXT("start method " << method) {
      isola::manager m;  // the default method; the children use `method`
      all_proxies p{m.dict<std::string, int>(),
                    m.list<std::string>(),
                    m.queue<int>(),
                    m.lock(),
                    m.event(),
                    m.value<long>(0)};
      std::vector<isola::process> ps;
      for (int i = 0; i < 3; ++i)
        ps.emplace_back(isola::process_options{.method = method}, use_every_proxy, p,
                        "child-" + std::to_string(i));
      for (auto& c : ps) c.start();
      BOOST_TEST(isola_test::wait_until([&] { return p.l.size() == 3u; }, 60s));
      p.e.set();
      for (int i = 0; i < 3; ++i) (void)p.q.get(60s);
      for (auto& c : ps) {
        c.join();
        BOOST_TEST(c.exitcode() == 0);
      }
      BOOST_TEST(p.d.get("children") == 3);
      BOOST_TEST(p.v.load() == 30);
      BOOST_TEST(p.d.contains("child-2"));

      isola::queue<isola::managed::dict<std::string, int>> in;
      isola::process c(isola::process_options{.method = method}, proxy_from_a_message, in);
      c.start();
      in.put(p.d);
      c.join();
      BOOST_TEST(c.exitcode() == 0);
      BOOST_TEST(p.d.get("from-message") == 7);
    }
  }
}

BOOST_AUTO_TEST_CASE(
    the_manager_killed_fails_children_blocked_in_lock_event_and_queue_waits_at_once,
    *utf::timeout(240)) {
  const char* names[] = {"lock acquire", "event wait", "queue get"};
  for (auto method : isola::all_start_methods()) {
    for (int what = 0; what < 3; ++what) {
      BOOST_TEST_CONTEXT("start method " << method << ", blocked in " << names[what]) {
        isola::manager m;
        auto l = m.lock();
        auto e = m.event();
        auto q = m.queue<int>();
        if (what == 0) l.acquire();  // the child will wait for it
        isola::queue<std::string> out;
        isola::process c(isola::process_options{.method = method}, blocked_child, l, e, q, what,
                         out);
        c.start();
        BOOST_TEST(isola_test::wait_until([&] { return m.stats().waiters == 1; }, 60s));
        int mpid = m.pid();
        BOOST_TEST(::kill(mpid, SIGKILL) == 0);
        auto t0 = clk::now();
        auto said = out.get(20s);
        BOOST_TEST(seconds_since(t0) < 2.0);
        BOOST_TEST(said.rfind("manager_error " + std::to_string(mpid) + " ", 0) == 0, said);
        BOOST_TEST(said.find(names[what]) != std::string::npos, said);
        c.join();
        // The parent's own calls fail the same way, and the handle ends quietly.
        BOOST_CHECK_THROW(l.release(), isola::manager_error);
        BOOST_CHECK_THROW(e.set(), isola::manager_error);
        BOOST_TEST(isola_test::wait_until([&] { return !m.is_alive(); }));
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(calls_after_shutdown_are_a_manager_error_and_no_process_is_left,
                     *utf::timeout(60)) {
  isola::manager m;
  auto d = m.dict<int, int>();
  d.set(1, 1);
  int pid = m.pid();
  m.shutdown();
  m.shutdown();  // idempotent
  BOOST_TEST(isola_test::pid_gone(pid));
  try {
    d.get(1);
    BOOST_FAIL("no exception");
  } catch (const isola::manager_error& e) {
    BOOST_TEST(e.pid() == pid);
    BOOST_TEST(std::string(e.what()).find(std::to_string(pid)) != std::string::npos);
  }
  {
    isola::manager m2;
    pid = m2.pid();
  }  // the destructor shuts it down
  BOOST_TEST(isola_test::pid_gone(pid));
}

BOOST_AUTO_TEST_CASE(a_client_killed_holding_a_lock_hands_it_to_the_next_acquirer_who_is_told,
                     *utf::timeout(60)) {
  for (auto method : isola::all_start_methods()) {
    BOOST_TEST_CONTEXT("start method " << method) {
      isola::manager m;
      auto l = m.lock();
      isola::queue<int> out;
      isola::process c(isola::process_options{.method = method}, hold_lock_forever, l, out);
      c.start();
      BOOST_TEST(out.get(60s) == 1);
      BOOST_TEST(!l.try_acquire());
      // Wait for it in another thread while the holder is killed.
      std::string told;
      std::thread t([&, l]() mutable {
        try {
          l.acquire();
          told = "acquired";
        } catch (const isola::lock_owner_died&) {
          told = "owner died";  // and it holds the lock
        }
        l.release();
      });
      BOOST_TEST(isola_test::wait_until([&] { return m.stats().waiters == 1; }));
      c.kill();
      c.join();
      t.join();
      BOOST_TEST(told == "owner died");
      BOOST_TEST(m.stats().owner_deaths == 1u);
      BOOST_TEST(l.try_acquire());
      l.release();
    }
  }
}

BOOST_AUTO_TEST_CASE(a_served_manager_is_reachable_over_tcp_with_its_key, *utf::timeout(120)) {
  isola::manager m;
  std::uint16_t port = m.serve(0, "s3cret");
  BOOST_TEST(port != 0);
  auto jobs = m.queue<int>("jobs");
  auto r = isola::manager::connect("127.0.0.1", port, "s3cret");
  BOOST_TEST(r.pid() == 0);
  auto rq = r.queue<int>("jobs");
  BOOST_TEST(rq.id() == jobs.id());
  jobs.put(5);
  BOOST_TEST(rq.get(5s) == 5);
  auto r2 = isola::manager::connect("127.0.0.1:" + std::to_string(port), "s3cret");
  auto rd = r2.dict<std::string, int>("shared");
  BOOST_TEST(rd.update("n", &add, 2) == 2);  // same program: update works over TCP too
  auto local = m.dict<std::string, int>("shared");
  BOOST_TEST(local.get("n") == 2);

  // A consumer in another process connects by itself (spawn: nothing inherited).
  isola::queue<int> out;
  isola::process c(isola::process_options{.method = start_method::spawn}, consume_remote,
                   std::string("127.0.0.1"), static_cast<int>(port), std::string("s3cret"), out);
  c.start();
  for (int i = 1; i <= 100; ++i) jobs.put(i);
  jobs.put(-1);
  BOOST_TEST(out.get(60s) == 5050);
  c.join();
  BOOST_TEST(c.exitcode() == 0);
  BOOST_CHECK_THROW(m.serve(port, "again"), isola::os_error);  // in use
}

BOOST_AUTO_TEST_CASE(a_wrong_key_is_an_authentication_error_on_both_sides, *utf::timeout(60)) {
  isola::manager m;
  std::uint16_t port = m.serve(0, "right");
  BOOST_CHECK_THROW(isola::manager::connect("127.0.0.1", port, "wrong"),
                    isola::authentication_error);
  BOOST_TEST(m.stats().auth_failures == 1u);
  // A server that does not know the key: the client refuses it.
  int ls = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  BOOST_REQUIRE(::bind(ls, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
  BOOST_REQUIRE(::listen(ls, 4) == 0);
  socklen_t sl = sizeof sa;
  ::getsockname(ls, reinterpret_cast<sockaddr*>(&sa), &sl);
  std::thread fake([ls] {
    int fd = ::accept(ls, nullptr, nullptr);
    char hello[40] = {'I', 'S', 'O', 'L', 'A', 'M', 'G', '1'};
    ::send(fd, hello, sizeof hello, MSG_NOSIGNAL);
    char resp[96];
    recv_exact(fd, resp, sizeof resp);
    char verdict[36] = {'O', 'K', 'A', 'Y'};  // "accepts", but cannot prove the key
    ::send(fd, verdict, sizeof verdict, MSG_NOSIGNAL);
    closed_by_peer(fd, 10s);
    ::close(fd);
  });
  BOOST_CHECK_THROW(isola::manager::connect("127.0.0.1", ntohs(sa.sin_port), "right"),
                    isola::authentication_error);
  fake.join();
  ::close(ls);
  // The manager is unharmed.
  auto r = isola::manager::connect("127.0.0.1", port, "right");
  BOOST_TEST(r.stats().auth_failures == 1u);
}

BOOST_AUTO_TEST_CASE(junk_and_oversize_frames_are_dropped_and_the_server_goes_on,
                     *utf::timeout(60)) {
  isola::manager m;
  std::uint16_t port = m.serve(0, "k");
  // Junk instead of a handshake: dropped at once.
  int j = tcp_connect(port);
  std::string junk(4096, '\0');
  for (std::size_t i = 0; i < junk.size(); ++i) junk[i] = static_cast<char>(i * 131 + 7);
  ::send(j, junk.data(), junk.size(), MSG_NOSIGNAL);
  BOOST_TEST(closed_by_peer(j, 5s));
  ::close(j);
  // A huge length prefix before authenticating: never allocated, never read
  // as a length; the peer sits in the handshake while others are served.
  int h = tcp_connect(port);
  const unsigned char huge[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f};
  ::send(h, huge, sizeof huge, MSG_NOSIGNAL);
  auto r = isola::manager::connect("127.0.0.1", port, "k");
  auto d = r.dict<int, int>("d");
  d.set(1, 2);
  BOOST_TEST(d.get(1) == 2);
  ::close(h);
  // An authenticated peer announcing a frame over the limit: dropped.
  int a = tcp_connect(port);
  BOOST_REQUIRE(raw_handshake(a, "k"));
  const unsigned char big[4] = {0xff, 0xff, 0xff, 0x7f};
  ::send(a, big, sizeof big, MSG_NOSIGNAL);
  BOOST_TEST(closed_by_peer(a, 5s));
  ::close(a);
  // And one with a malformed frame (its a-part longer than the frame).
  int b = tcp_connect(port);
  BOOST_REQUIRE(raw_handshake(b, "k"));
  unsigned char bad[40] = {};
  std::uint32_t len = 36;
  std::memcpy(bad, &len, 4);
  bad[12] = 16;  // op: dict get
  std::uint32_t alen = 1000;
  std::memcpy(bad + 16, &alen, 4);
  ::send(b, bad, sizeof bad, MSG_NOSIGNAL);
  BOOST_TEST(closed_by_peer(b, 5s));
  ::close(b);
  auto s = m.stats();
  BOOST_TEST(s.auth_failures >= 1u);
  BOOST_TEST(s.dropped_peers == 2u);
  BOOST_TEST(d.get(1) == 2);
  BOOST_TEST(m.is_alive());
}

BOOST_AUTO_TEST_CASE(every_start_method_can_run_the_manager_itself, *utf::timeout(120)) {
  for (auto method : isola::all_start_methods()) {
    BOOST_TEST_CONTEXT("start method " << method) {
      isola::manager m({.method = method});
      auto v = m.value<int>(1);
      BOOST_TEST(v.update(&add, 41) == 42);
      BOOST_TEST(m.is_alive());
    }
  }
}
