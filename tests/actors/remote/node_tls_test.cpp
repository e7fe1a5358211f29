// Node links over TLS (listen_options::tls, connect_options::tls): two roots
// (this test and copies of it as node B) on loopback, sometimes with a relay
// thread of this process in between that records, or alters, the bytes.
//
// The same executable plays node B (`--node-b listen KEY TLS`, `--node-b
// connect PORT KEY TLS`) and the stalled peers (`--stall-server KEY`,
// `--stall-client PORT KEY`): a remote spawn needs the same program on both
// sides.
#define BOOST_TEST_NO_MAIN
#include <boost/test/unit_test.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <isola/actor.hpp>
#include <isola/error.hpp>
#include <isola/function_registry.hpp>
#include <isola/node.hpp>
#include <isola/popen.hpp>
#include <isola/runtime.hpp>

#include "../../support/peer_program.hpp"
#include "../../support/relay.hpp"
#include "../../support/test_util.hpp"
#include "sys/handshake.hpp"

namespace utf = boost::unit_test;
using namespace std::chrono_literals;
using clk = std::chrono::steady_clock;

using relay_test::connect_loopback;
using relay_test::listen_loopback;
using relay_test::relay;

namespace {

struct echo {
  std::string s;
  template <class A>
  void serialize(A& ar) {
    ar(s);
  }
};
struct add {
  int x = 0, y = 0;
  template <class A>
  void serialize(A& ar) {
    ar(x, y);
  }
};

isola::behavior worker(int base) {
  return {
      [base](const add& a) { return base + a.x + a.y; },
      [](const echo& e) { return e.s + "|" + e.s; },
  };
}
// The other node asks to spawn it: registered at start-up.
ISOLA_REGISTER_FUNCTION(worker);

namespace hs = isola::detail::handshake;
const hs::spec node_tls_spec{{'I', 'S', 'O', 'L', 'A', '-', 'N', 'T'},
                             "isola-node-client",
                             "isola-node-server",
                             0,
                             true,
                             {'I', 'S', 'O', 'L', 'A', '-', 'N', '1'}};

const std::string key = "tls-test-key-0123456789";
// What a request carries, and its echo: it must not be readable on the wire.
const std::string canary = "CANARY-plaintext-on-the-wire-7d1f";


isola::connect_options tls_on() {
  isola::connect_options o;
  o.tls = true;
  return o;
}

/// Node B: a copy of this program listening on loopback, with or without TLS.
struct node_b : isola_test::peer_program {
  explicit node_b(bool tls) : peer_program({"--node-b", "listen", key, tls ? "1" : "0"}) {}
  isola::node_stats stats() {
    auto line = ask("stats");
    isola::node_stats s;
    BOOST_REQUIRE_EQUAL(std::sscanf(line.c_str(), "STATS %lu %lu %lu %lu %lu", &s.accepted,
                                    &s.authenticated, &s.auth_failures, &s.dropped,
                                    &s.refused_busy),
                        5);
    return s;
  }
};

/// This root listens once, with TLS, for the cases where B connects to us.
std::uint16_t our_port() {
  static std::uint16_t port = [] {
    isola::listen_options o;
    o.tls = true;
    return isola::node::listen(0, key, o);
  }();
  return port;
}

/// A copy of this program connects to port (TLS or not), spawns a worker
/// here and asks it; its one line.
std::string connect_from_b(std::uint16_t port, bool tls) {
  isola::popen_options o;
  o.out = isola::stdio::pipe;
  o.die_with_parent = true;
  isola::popen p(std::vector<std::string>{isola_test::self_exe(), "--node-b", "connect", std::to_string(port),
                                          key, tls ? "1" : "0"},
                 o);
  return p.communicate(30s).out;
}

template <class F>
double seconds_until(F&& f) {
  auto t0 = clk::now();
  f();
  return std::chrono::duration<double>(clk::now() - t0).count();
}


}  // namespace

BOOST_AUTO_TEST_SUITE(node_tls)

BOOST_AUTO_TEST_CASE(a_tls_link_carries_requests_both_ways_between_two_processes,
                     *utf::timeout(60)) {
  // We connect to B: spawn, requests, sends.
  node_b b(true);
  auto n = isola::node::connect("127.0.0.1", b.port(), key, tls_on());
  BOOST_TEST(n.connected());
  auto w = n.spawn(worker, 100);
  BOOST_TEST(w.request<int>(add{1, 2}).get(10s) == 103);
  // Large enough for several TLS records (16 KiB each) in one message.
  const std::string big(200 * 1024, 'z');
  BOOST_TEST(w.request<std::string>(echo{big}).get(10s) == big + "|" + big);
  for (int i = 0; i < 200; ++i) BOOST_TEST(w.request<int>(add{i, 0}).get(10s) == 100 + i);
  BOOST_TEST(b.stats().authenticated == 1u);
  // B connects to us (this root listens with TLS): B's requests to our node.
  const auto out = connect_from_b(our_port(), true);
  BOOST_TEST(out.rfind("OK 13", 0) == 0u, out);
}

BOOST_AUTO_TEST_CASE(the_wire_shows_the_payload_without_tls_and_not_with_it, *utf::timeout(60)) {
  for (bool tls : {false, true}) {
    node_b b(tls);
    relay r(b.port());
    isola::connect_options o;
    o.tls = tls;
    auto n = isola::node::connect("127.0.0.1", r.port(), key, o);
    auto w = n.spawn(worker, 0);
    BOOST_TEST(w.request<std::string>(echo{canary}).get(10s) == canary + "|" + canary);
    const auto wire = r.captured();
    BOOST_TEST_MESSAGE("tls=" << tls << ": " << wire.size() << " bytes on the wire");
    BOOST_TEST(wire.size() > 2 * canary.size());
    // Without TLS the request and its answer are there to read (the check
    // can fail); with it, neither is.
    BOOST_TEST((wire.find(canary) != std::string::npos) == !tls, "tls=" << tls);
  }
}

BOOST_AUTO_TEST_CASE(a_byte_altered_on_the_wire_ends_the_link_with_an_error_and_no_hang,
                     *utf::timeout(60)) {
  node_b b(true);
  std::uint64_t failures_before = b.stats().auth_failures;
  {
    relay r(b.port());
    auto n = isola::node::connect("127.0.0.1", r.port(), key, tls_on());
    auto w = n.spawn(worker, 1);
    BOOST_TEST(w.request<int>(add{1, 1}).get(10s) == 3);
    // The next record from us to B is altered by one bit: B's TLS refuses
    // it, drops the link, and our request fails instead of waiting.
    r.tamper_next();
    double t = seconds_until([&] {
      BOOST_CHECK_THROW(w.request<int>(add{2, 2}).get(10s), isola::actor_exited);
    });
    BOOST_TEST(r.tampered());
    BOOST_TEST(t < 5.0, "the altered link took " << t << " s to fail");
    BOOST_TEST(isola_test::wait_until([&] { return !n.connected(); }, 5000ms));
  }
  // Both ends live on, and a new link works.
  BOOST_TEST(b.alive());
  BOOST_TEST(b.stats().auth_failures == failures_before);
  auto n2 = isola::node::connect("127.0.0.1", b.port(), key, tls_on());
  BOOST_TEST(n2.spawn(worker, 5).request<int>(add{1, 1}).get(10s) == 7);
}

BOOST_AUTO_TEST_CASE(a_byte_altered_in_the_tls_handshake_fails_the_connect_not_hangs_it,
                     *utf::timeout(60)) {
  node_b b(true);
  auto before = b.stats();
  relay r(b.port());
  // Our HMAC response (64 bytes) and confirmation (4) pass untouched; one
  // bit of our ClientHello, which follows them, is flipped.
  r.tamper_at(64 + 4 + 60);
  double t = 0;
  try {
    t = seconds_until([&] { isola::node::connect("127.0.0.1", r.port(), key, tls_on(), 4s); });
    BOOST_ERROR("connected through a relay that altered the TLS handshake");
  } catch (const isola::authentication_error& e) {
    BOOST_TEST_MESSAGE("authentication_error: " << e.what());
  } catch (const isola::os_error& e) {
    BOOST_TEST_MESSAGE("os_error: " << e.what());  // B dropped the link first
  } catch (const isola::timeout_error& e) {
    BOOST_ERROR("timed out instead of failing: " << e.what());
  }
  BOOST_TEST(t < 4.0);
  BOOST_TEST(r.tampered());
  BOOST_TEST(b.alive());
  auto after = b.stats();
  BOOST_TEST(after.authenticated == before.authenticated);
}

BOOST_AUTO_TEST_CASE(tls_on_one_side_only_is_a_clear_error_at_once, *utf::timeout(60)) {
  for (bool listen_tls : {true, false}) {
    node_b b(listen_tls);
    isola::connect_options o;
    o.tls = !listen_tls;
    double t = seconds_until([&] {
      try {
        isola::node::connect("127.0.0.1", b.port(), key, o, 5s);
        BOOST_ERROR("connected with TLS on one side only");
      } catch (const isola::os_error& e) {
        BOOST_TEST(e.code() == EPROTO);
        const std::string what = e.what();
        BOOST_TEST(what.find("TLS") != std::string::npos, what);
        BOOST_TEST_MESSAGE(what);
      }
    });
    BOOST_TEST(t < 2.0, "the mismatch took " << t << " s");
    // B is unharmed: a client that agrees gets in.
    o.tls = listen_tls;
    BOOST_TEST(isola::node::connect("127.0.0.1", b.port(), key, o).spawn(worker, 1)
                   .request<int>(add{0, 0})
                   .get(10s) == 1);
  }
  // And B, listening with TLS, refused our plain connection from its side.
  const auto out = connect_from_b(our_port(), false);
  BOOST_TEST(out.rfind("ERROR", 0) == 0u, out);
}

namespace {

/// A child of this program that does the HMAC part of a TLS node's
/// handshake (as `role`), then SIGSTOPs itself: a peer stopped in the middle
/// of the TLS handshake. Returns it once it says READY (PORT for a server).
std::unique_ptr<isola::popen> start_staller(const std::vector<std::string>& args,
                                            std::uint16_t* port) {
  isola::popen_options o;
  o.out = isola::stdio::pipe;
  o.die_with_parent = true;
  std::vector<std::string> argv{isola_test::self_exe()};
  argv.insert(argv.end(), args.begin(), args.end());
  auto p = std::make_unique<isola::popen>(argv, o);
  if (port) {
    auto line = p->out().read_line(20s);
    BOOST_REQUIRE(line);
    BOOST_REQUIRE_EQUAL(line->rfind("PORT ", 0), 0u);
    *port = static_cast<std::uint16_t>(std::stoi(line->substr(5)));
  }
  return p;
}

/// Waits until the process is stopped (its /proc state says T).
bool stopped(int pid) {
  return isola_test::wait_until(
      [pid] {
        char path[64];
        std::snprintf(path, sizeof path, "/proc/%d/stat", pid);
        FILE* f = std::fopen(path, "r");
        if (!f) return false;
        char buf[512] = {};
        std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
        std::fclose(f);
        const char* close = std::strrchr(buf, ')');
        return n > 0 && close && close[1] == ' ' && close[2] == 'T';
      },
      10000ms);
}

void reap(isola::popen& p) {
  p.send_signal(SIGKILL);
  p.wait();
}
}  // namespace

BOOST_AUTO_TEST_CASE(a_server_stopped_mid_tls_handshake_does_not_hold_connect_past_its_timeout,
                     *utf::timeout(60)) {
  std::uint16_t port = 0;
  auto s = start_staller({"--stall-server", key}, &port);
  double t = seconds_until([&] {
    BOOST_CHECK_THROW(isola::node::connect("127.0.0.1", port, key, tls_on(), 2s),
                      isola::timeout_error);
  });
  BOOST_TEST(stopped(s->pid()));  // it was stopped, not gone
  BOOST_TEST(t >= 1.9);
  BOOST_TEST(t < 3.5, "connect returned after " << t << " s");
  reap(*s);
}

BOOST_AUTO_TEST_CASE(a_client_stopped_mid_tls_handshake_holds_only_its_own_slot,
                     *utf::timeout(60)) {
  const auto port = our_port();
  const auto before = isola::node::stats();
  auto c = start_staller({"--stall-client", std::to_string(port), key}, nullptr);
  BOOST_REQUIRE(stopped(c->pid()));
  // The gatekeeper goes on: a real node connects (and talks) meanwhile.
  std::string out;
  double t = seconds_until([&] { out = connect_from_b(port, true); });
  BOOST_TEST(out.rfind("OK 13", 0) == 0u, out);
  BOOST_TEST(t < 4.0, "a real connect took " << t << " s beside the stopped one");
  // And the stopped one is dropped at its deadline (5 s).
  BOOST_TEST(isola_test::wait_until([&] { return isola::node::stats().dropped > before.dropped; }, 8000ms));
  const auto after = isola::node::stats();
  BOOST_TEST(after.authenticated == before.authenticated + 1);
  reap(*c);
}

BOOST_AUTO_TEST_SUITE_END()

namespace {

int node_b_main(int argc, char** argv) {
  std::string role = argc > 2 ? argv[2] : "";
  if (role == "listen" && argc > 4) {
    isola::listen_options o;
    o.tls = std::string(argv[4]) == "1";
    auto port = isola::node::listen(0, argv[3], o);
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
        if (line == "stats") {
          auto s = isola::node::stats();
          std::cout << "STATS " << s.accepted << " " << s.authenticated << " " << s.auth_failures
                    << " " << s.dropped << " " << s.refused_busy << std::endl;
        }
      }
    }
    return 0;
  }
  if (role == "connect" && argc > 5) {
    try {
      isola::connect_options o;
      o.tls = std::string(argv[5]) == "1";
      auto n = isola::node::connect("127.0.0.1", static_cast<std::uint16_t>(std::stoi(argv[3])),
                                    argv[4], o, 10s);
      auto w = n.spawn(worker, 10);
      int r = w.request<int>(add{1, 2}).get(10s);
      std::cout << "OK " << r << std::endl;
      return 0;
    } catch (const std::exception& e) {
      std::cout << "ERROR " << e.what() << std::endl;
      return 1;
    }
  }
  return 64;
}

/// `--stall-server KEY`: answers one TLS node's HMAC handshake, then stops.
int stall_server_main(int argc, char** argv) {
  if (argc < 3) return 64;
  std::uint16_t port = 0;
  int l = listen_loopback(port);
  std::cout << "PORT " << port << std::endl;
  int fd = ::accept4(l, nullptr, nullptr, SOCK_CLOEXEC);
  const auto d = isola::detail::deadline::after(10s);
  const auto ch = hs::new_challenge();
  const auto hello = hs::make_hello(node_tls_spec, ch);
  std::uint8_t resp[64];
  if (!hs::write_exact(fd, hello.data(), hello.size(), d) || !hs::read_exact(fd, resp, 64, d))
    return 1;
  auto v = hs::make_verdict(node_tls_spec, argv[2], ch, resp);
  if (!v || !hs::write_exact(fd, v->data(), v->size(), d)) return 2;
  char ok[4];
  if (!hs::read_exact(fd, ok, 4, d)) return 3;
  ::kill(::getpid(), SIGSTOP);  // the client's ClientHello waits, unread
  ::pause();
  return 0;
}

/// `--stall-client PORT KEY`: does a TLS node client's HMAC handshake, then stops.
int stall_client_main(int argc, char** argv) {
  if (argc < 4) return 64;
  int fd = connect_loopback(static_cast<std::uint16_t>(std::stoi(argv[2])));
  if (fd < 0) return 1;
  if (hs::run_client(fd, node_tls_spec, argv[3], {}, isola::detail::deadline::after(10s)) !=
      hs::outcome::ok)
    return 2;
  ::kill(::getpid(), SIGSTOP);  // the server waits for a ClientHello
  ::pause();
  return 0;
}

bool init_unit_test() { return true; }

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "--stall-server") return stall_server_main(argc, argv);
  if (argc > 1 && std::string(argv[1]) == "--stall-client") return stall_client_main(argc, argv);
  isola::runtime rt{argc, argv};
  if (argc > 1 && std::string(argv[1]) == "--node-b") return node_b_main(argc, argv);
  return boost::unit_test::unit_test_main(&init_unit_test, argc, argv);
}
