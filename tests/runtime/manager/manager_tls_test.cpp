// Manager connections over TLS (manager_options::tls, manager_connect_options
// ::tls), in real processes: clients in child processes; a relay thread
// between client and manager that records the wire or alters one bit; TLS
// on one side only; a client and a server SIGSTOPped in the middle of the
// TLS handshake.
#include <boost/test/unit_test.hpp>

#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <isola/error.hpp>
#include <isola/manager.hpp>
#include <isola/process.hpp>
#include <isola/queue.hpp>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

#include "manager/protocol.hpp"
#include "relay.hpp"
#include "test_util.hpp"
#include "sys/handshake.hpp"

using namespace std::chrono_literals;
namespace utf = boost::unit_test;
namespace hs = isola::detail::handshake;
using clk = std::chrono::steady_clock;

namespace {

const std::string key = "a-tls-test-key-of-32-bytes-012345";
const std::string canary = "CANARY-manager-plaintext-5e2a";

isola::manager_options tls_manager() {
  isola::manager_options o;
  o.tls = true;
  return o;
}
isola::manager_connect_options tls_on() {
  isola::manager_connect_options o;
  o.tls = true;
  return o;
}

template <class F>
double seconds_until(F&& f) {
  auto t0 = clk::now();
  f();
  return std::chrono::duration<double>(clk::now() - t0).count();
}


/// A child: connects over TLS, adds to the shared value, reads the dict.
void tls_client(int port, isola::queue<std::string> out) {
  try {
    auto m = isola::manager::connect("127.0.0.1", static_cast<std::uint16_t>(port), key, tls_on());
    auto v = m.value<int>("count", 0);
    for (int i = 0; i < 100; ++i) v.fetch_add(1);
    auto d = m.dict<std::string, std::string>("d");
    out.put(d.get("big").substr(0, 3) + std::to_string(d.get("big").size()));
  } catch (const std::exception& e) {
    out.put(std::string("ERROR ") + e.what());
  }
}

/// Waits until pid is stopped (state T in /proc).
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

/// A server that answers a TLS manager client's HMAC handshake, then stops.
void stalled_server(int listen_fd) {
  int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
  const auto d = isola::detail::deadline::after(10s);
  const auto& spec = isola::detail::manager_tls_handshake;
  const auto ch = hs::new_challenge();
  const auto hello = hs::make_hello(spec, ch);
  std::vector<std::uint8_t> resp(hs::response_size(spec));
  if (!hs::write_exact(fd, hello.data(), hello.size(), d) ||
      !hs::read_exact(fd, resp.data(), resp.size(), d))
    return;
  auto v = hs::make_verdict(spec, key, ch, resp);
  if (!v || !hs::write_exact(fd, v->data(), v->size(), d)) return;
  ::kill(::getpid(), SIGSTOP);  // the ClientHello waits, unread
  ::pause();
}

/// A client that does a TLS manager client's HMAC handshake, then stops.
void stalled_client(int port) {
  int fd = relay_test::connect_loopback(static_cast<std::uint16_t>(port));
  const auto id = isola::detail::program_identity();
  if (hs::run_client(fd, isola::detail::manager_tls_handshake, key, id,
                     isola::detail::deadline::after(10s)) != hs::outcome::ok)
    return;
  ::kill(::getpid(), SIGSTOP);  // the manager waits for a ClientHello
  ::pause();
}

}  // namespace

BOOST_AUTO_TEST_SUITE(manager_tls)

BOOST_AUTO_TEST_CASE(tls_clients_in_other_processes_use_the_manager, *utf::timeout(60)) {
  isola::manager m(tls_manager());
  const auto port = m.serve(0, key);
  auto d = m.dict<std::string, std::string>("d");
  // Several TLS records per message, both ways.
  d.set("big", std::string(300 * 1024, 'x'));
  isola::queue<std::string> out;
  std::vector<std::unique_ptr<isola::process>> cs;
  for (int i = 0; i < 3; ++i) {
    cs.push_back(std::make_unique<isola::process>(tls_client, static_cast<int>(port), out));
    cs.back()->start();
  }
  for (int i = 0; i < 3; ++i) BOOST_TEST(out.get(30s) == "xxx" + std::to_string(300 * 1024));
  for (auto& c : cs) c->join();
  BOOST_TEST(m.value<int>("count", 0).load() == 300);
  // The owner's local socket is unchanged.
  BOOST_TEST(m.stats().auth_failures == 0u);
}

BOOST_AUTO_TEST_CASE(the_wire_shows_the_value_without_tls_and_not_with_it, *utf::timeout(60)) {
  for (bool tls : {false, true}) {
    isola::manager_options mo;
    mo.tls = tls;
    isola::manager m(mo);
    const auto port = m.serve(0, key);
    relay_test::relay r(port);
    isola::manager_connect_options co;
    co.tls = tls;
    auto c = isola::manager::connect("127.0.0.1", r.port(), key, co);
    auto d = c.dict<std::string, std::string>("d");
    d.set("k", canary);
    BOOST_TEST(d.get("k") == canary);
    const auto wire = r.captured();
    BOOST_TEST_MESSAGE("tls=" << tls << ": " << wire.size() << " bytes on the wire");
    // Without TLS the value is there to read (the check can fail).
    BOOST_TEST((wire.find(canary) != std::string::npos) == !tls, "tls=" << tls);
  }
}

BOOST_AUTO_TEST_CASE(a_byte_altered_after_the_handshake_fails_the_call_not_the_manager,
                     *utf::timeout(60)) {
  isola::manager m(tls_manager());
  const auto port = m.serve(0, key);
  const auto before = m.stats();
  {
    relay_test::relay r(port);
    auto c = isola::manager::connect("127.0.0.1", r.port(), key, tls_on());
    auto v = c.value<int>("v", 1);
    BOOST_TEST(v.load() == 1);
    r.tamper_next();
    double t = seconds_until([&] { BOOST_CHECK_THROW(v.store(2), isola::manager_error); });
    BOOST_TEST(r.tampered());
    BOOST_TEST(t < 5.0, "the altered call took " << t << " s");
  }
  // The manager goes on, and counted the peer it dropped; a new client works.
  BOOST_TEST(m.is_alive());
  BOOST_TEST(m.stats().dropped_peers == before.dropped_peers + 1);
  BOOST_TEST(m.value<int>("v", 0).load() == 1);  // the altered store never ran
  auto c2 = isola::manager::connect("127.0.0.1", port, key, tls_on());
  BOOST_TEST(c2.value<int>("v", 0).load() == 1);
}

BOOST_AUTO_TEST_CASE(a_byte_altered_in_the_tls_handshake_fails_the_connect,
                     *utf::timeout(60)) {
  isola::manager m(tls_manager());
  const auto port = m.serve(0, key);
  relay_test::relay r(port);
  // Our response (96 bytes) passes; a bit of the ClientHello after it flips.
  r.tamper_at(96 + 60);
  double t = seconds_until([&] {
    try {
      isola::manager::connect("127.0.0.1", r.port(), key, tls_on());
      BOOST_ERROR("connected through a relay that altered the TLS handshake");
    } catch (const isola::authentication_error& e) {
      BOOST_TEST_MESSAGE(e.what());
    } catch (const isola::manager_error& e) {
      BOOST_TEST_MESSAGE(e.what());  // the manager dropped us first
    }
  });
  BOOST_TEST(t < 5.0);
  BOOST_TEST(r.tampered());
  BOOST_TEST(isola_test::wait_until([&] { return m.stats().auth_failures == 1u; }, 5000ms));
}

BOOST_AUTO_TEST_CASE(tls_on_one_side_only_is_a_clear_error_at_once, *utf::timeout(60)) {
  for (bool serve_tls : {true, false}) {
    isola::manager_options mo;
    mo.tls = serve_tls;
    isola::manager m(mo);
    const auto port = m.serve(0, key);
    isola::manager_connect_options co;
    co.tls = !serve_tls;
    double t = seconds_until([&] {
      try {
        isola::manager::connect("127.0.0.1", port, key, co);
        BOOST_ERROR("connected with TLS on one side only");
      } catch (const isola::manager_error& e) {
        const std::string what = e.what();
        BOOST_TEST(what.find("TLS") != std::string::npos, what);
        BOOST_TEST_MESSAGE(what);
      }
    });
    BOOST_TEST(t < 2.0, "the mismatch took " << t << " s");
    co.tls = serve_tls;
    BOOST_TEST(isola::manager::connect("127.0.0.1", port, key, co).value<int>("x", 3).load() == 3);
  }
}

BOOST_AUTO_TEST_CASE(a_server_stopped_mid_tls_handshake_fails_connect_at_its_deadline,
                     *utf::timeout(60)) {
  std::uint16_t port = 0;
  int l = relay_test::listen_loopback(port);
  isola::process s(isola::process_options{.method = isola::start_method::fork}, stalled_server, l);
  s.start();
  ::close(l);
  double t = seconds_until([&] {
    BOOST_CHECK_THROW(isola::manager::connect("127.0.0.1", port, key, tls_on()),
                      isola::manager_error);
  });
  BOOST_TEST(stopped(s.pid()));
  // The client's deadline for connect and handshakes: 10 s.
  BOOST_TEST(t < 12.0, "connect returned after " << t << " s");
  s.kill();
  s.join();
}

BOOST_AUTO_TEST_CASE(a_client_stopped_mid_tls_handshake_holds_only_its_own_slot,
                     *utf::timeout(60)) {
  isola::manager m(tls_manager());
  const auto port = m.serve(0, key);
  isola::process c(isola::process_options{.method = isola::start_method::fork}, stalled_client,
                   static_cast<int>(port));
  c.start();
  BOOST_REQUIRE(stopped(c.pid()));
  // The manager goes on: a real TLS client gets in at once.
  double t = seconds_until([&] {
    BOOST_TEST(isola::manager::connect("127.0.0.1", port, key, tls_on()).value<int>("y", 5).load() ==
               5);
  });
  BOOST_TEST(t < 3.0);
  // The stopped one is dropped at the handshake's deadline (10 s).
  BOOST_TEST(isola_test::wait_until([&] { return m.stats().auth_failures >= 1u; }, 13000ms));
  c.kill();
  c.join();
}

BOOST_AUTO_TEST_SUITE_END()
