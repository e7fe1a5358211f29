// isola::listener and isola::client (multiprocessing.connection's Listener
// and Client). Ports of CPython's Lib/test/_test_multiprocessing.py:
// _TestListener (test_multiple_bind, test_context, test_abstract_socket)
// and _TestListenerClient (test_listener_client, test_issue14725,
// test_issue16955), one suite per class, children under every start method;
// then what a hostile or dying peer does: a wrong key on either side, junk
// instead of a handshake, a client SIGKILLed in its handshake or in a
// message, a client that stops (SIGSTOP) or never answers, an oversize frame,
// another isola protocol answering a client.
#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <isola/frame.hpp>
#include <isola/listener.hpp>
#include <isola/manager.hpp>
#include <isola/process.hpp>

#include <array>
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "test_util.hpp"

using namespace std::chrono_literals;
namespace utf = boost::unit_test;
using isola::address;
using isola::address_family;
using isola::start_method;

namespace {

const std::string key = "listener-test-key-0123456789abcdef";

std::vector<address_family> families() {
  return {address_family::unix_socket, address_family::tcp};
}

bool file_exists(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0;
}

/// Reads exactly n bytes within 10 s; false on EOF, error or time out.
bool read_n(int fd, void* buf, std::size_t n) {
  auto* p = static_cast<char*>(buf);
  std::size_t got = 0;
  while (got < n) {
    pollfd pf{fd, POLLIN, 0};
    if (::poll(&pf, 1, 10000) <= 0) return false;
    ssize_t r = ::read(fd, p + got, n - got);
    if (r <= 0) return false;
    got += static_cast<std::size_t>(r);
  }
  return true;
}

bool write_all(int fd, const void* buf, std::size_t n) {
  return ::send(fd, buf, n, MSG_NOSIGNAL) == static_cast<ssize_t>(n);
}

/// State letter of /proc/PID/stat ('T' when stopped).
char proc_state(int pid) {
  std::string path = "/proc/" + std::to_string(pid) + "/stat";
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return '?';
  char buf[512];
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return '?';
  std::string s(buf, static_cast<std::size_t>(n));
  auto p = s.rfind(')');
  return p != std::string::npos && p + 2 < s.size() ? s[p + 2] : '?';
}

// --- children ------------------------------------------------------------------

// CPython's _TestListenerClient._test: connect, send 'hello', close.
int send_hello(address a, std::string k) {
  auto c = k.empty() ? isola::client(a) : isola::client(a, k, 20s);
  c.send(std::string("hello"));
  c.close();
  return 0;
}

int client_with_wrong_key(address a) {
  try {
    isola::client(a, std::string("not-the-listener-key-0123456789"), 20s);
  } catch (const isola::authentication_error&) {
    return 7;
  }
  return 1;
}

// Connects without a key (a plain socket), reads the listener's hello, sends
// part of a proof and dies.
void die_mid_handshake(address a) {
  auto c = isola::client(a);
  char hello[40];
  if (!read_n(c.fileno(), hello, sizeof hello)) ::_exit(2);
  char part[20] = {};
  write_all(c.fileno(), part, sizeof part);
  ::raise(SIGKILL);
}

// Authenticates, then dies half way through a message's header.
void die_mid_message(address a, std::string k) {
  auto c = isola::client(a, k, 20s);
  isola::frame_header h;
  h.size = 100;
  write_all(c.fileno(), &h, 10);
  ::raise(SIGKILL);
}

// Connects and stops before it says anything.
void connect_and_stop(address a) {
  auto c = isola::client(a);
  ::raise(SIGSTOP);
  for (;;) ::pause();
}

// Connects, never answers, and reports whether the listener dropped it.
int wait_to_be_dropped(address a) {
  auto c = isola::client(a);
  char buf[64];
  for (;;) {
    pollfd pf{c.fileno(), POLLIN, 0};
    if (::poll(&pf, 1, 10000) <= 0) return 1;
    ssize_t r = ::read(c.fileno(), buf, sizeof buf);
    if (r == 0 || (r < 0 && errno == ECONNRESET)) return 3;  // dropped
    if (r < 0) return 1;
  }
}

// Sends 64 bytes of an HTTP request instead of a proof; 0 if told FAIL.
int send_junk(address a) {
  auto c = isola::client(a);
  std::string junk = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
  junk.resize(64, 'x');
  char hello[40], verdict[4];
  if (!read_n(c.fileno(), hello, sizeof hello)) return 2;
  if (!write_all(c.fileno(), junk.data(), junk.size())) return 3;
  if (!read_n(c.fileno(), verdict, sizeof verdict)) return 4;
  return std::memcmp(verdict, "FAIL", 4) == 0 ? 0 : 5;
}

// A manager's client pointed at a listener; 0 if it says it found no manager.
int manager_connect_to(address a) {
  try {
    isola::manager::connect(a.host(), a.port(), key);
  } catch (const isola::manager_error& e) {
    return std::string(e.what()).find("not an isola manager") != std::string::npos ? 0 : 2;
  } catch (const isola::error&) {
    return 3;
  }
  return 1;
}

int send_big(address a, std::string k, std::size_t n) {
  auto c = isola::client(a, k, 20s);
  c.send_bytes(std::string(n, 'b'));
  return 0;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(address_parsing)

BOOST_AUTO_TEST_CASE(host_port_strings_are_tcp_and_anything_else_a_unix_path, *utf::timeout(10)) {
  address t("localhost:5000");
  BOOST_TEST((t.family() == address_family::tcp));
  BOOST_TEST(t.host() == "localhost");
  BOOST_TEST(t.port() == 5000);
  address v6("[::1]:80");
  BOOST_TEST((v6.family() == address_family::tcp));
  BOOST_TEST(v6.host() == "::1");
  BOOST_TEST(v6.to_string() == "[::1]:80");
  for (const char* p : {"/tmp/a:80", "sock", "a:b", "::1:80", "host:123456"}) {
    address u(p);
    BOOST_TEST((u.family() == address_family::unix_socket), p);
    BOOST_TEST(u.path() == p);
  }
  address abs(std::string("\0name", 5));
  BOOST_TEST(abs.abstract());
  BOOST_TEST(abs.to_string() == "@name");
  BOOST_TEST((address("h", 1) == address("h:1")));
  BOOST_TEST(address().empty());
}

BOOST_AUTO_TEST_SUITE_END()

// CPython's _TestListener.
BOOST_AUTO_TEST_SUITE(test_listener)

// test_multiple_bind
BOOST_AUTO_TEST_CASE(binding_an_address_in_use_is_an_os_error_and_spares_the_first,
                     *utf::timeout(30)) {
  for (auto fam : families()) {
    BOOST_TEST_CONTEXT("family " << static_cast<int>(fam)) {
      isola::listener l({}, {.family = fam});
      try {
        isola::listener again(l.address());
        BOOST_FAIL("a second listener bound " << l.address());
      } catch (const isola::os_error& e) {
        BOOST_TEST(e.code() == EADDRINUSE);
      }
      // The failed one took nothing from the first: its file, its port.
      if (fam == address_family::unix_socket) BOOST_TEST(file_exists(l.address().path()));
      auto c = isola::client(l.address(), std::nullopt, 10s);
      auto d = l.accept(10s);
      c.send(1);
      BOOST_TEST(d.recv<int>() == 1);
    }
  }
}

// test_context
BOOST_AUTO_TEST_CASE(a_closed_listener_refuses_accept_with_an_os_error_and_removes_its_file,
                     *utf::timeout(30)) {
  isola::listener l;
  BOOST_TEST((l.address().family() == address_family::unix_socket));
  const std::string path = l.address().path();
  BOOST_TEST(file_exists(path));
  {
    auto c = isola::client(l.address());
    auto d = l.accept();
    c.send(1729);
    BOOST_TEST(d.recv<int>() == 1729);
  }
  l.close();
  BOOST_TEST(l.closed());
  BOOST_TEST(!file_exists(path));
  try {
    l.accept();
    BOOST_FAIL("accept on a closed listener returned");
  } catch (const isola::os_error& e) {
    BOOST_TEST(e.code() == EBADF);
  }
  BOOST_CHECK_THROW(l.accept(1s), isola::os_error);
  BOOST_CHECK_THROW(l.try_accept(), isola::os_error);
  BOOST_CHECK_THROW(isola::client(address::unix_socket(path), std::nullopt, 5s),
                    isola::file_not_found_error);
}

// test_abstract_socket
BOOST_AUTO_TEST_CASE(an_abstract_socket_name_is_kept_and_makes_no_file, *utf::timeout(30)) {
  const std::string name =
      std::string(1, '\0') + "isola-listener-test-" + std::to_string(::getpid());
  address at = address::unix_socket(name);
  {
    isola::listener l(at);
    BOOST_TEST((l.address() == at));
    auto c = isola::client(l.address());
    auto d = l.accept();
    c.send(1729);
    BOOST_TEST(d.recv<int>() == 1729);
    l.close();
    BOOST_CHECK_THROW(l.accept(), isola::os_error);
  }
  // Closed: the name is free again.
  isola::listener again(at);
  BOOST_TEST(!again.closed());
}

BOOST_AUTO_TEST_CASE(port_zero_picks_a_port_and_address_tells_it, *utf::timeout(30)) {
  isola::listener l({"127.0.0.1", 0});
  BOOST_TEST(l.address().port() != 0);
  BOOST_TEST(l.address().host() == "127.0.0.1");
  BOOST_TEST(!l.last_accepted());
  auto c = isola::client(l.address());
  auto d = l.accept();
  BOOST_REQUIRE(l.last_accepted());
  BOOST_TEST(l.last_accepted()->host() == "127.0.0.1");
  BOOST_TEST(l.last_accepted()->port() != 0);
}

BOOST_AUTO_TEST_CASE(accept_with_a_timeout_and_try_accept_give_up_when_nobody_comes,
                     *utf::timeout(30)) {
  isola::listener l({}, {.authkey = key});
  BOOST_TEST(!l.try_accept());
  auto t0 = std::chrono::steady_clock::now();
  BOOST_CHECK_THROW(l.accept(200ms), isola::timeout_error);
  auto took = std::chrono::steady_clock::now() - t0;
  BOOST_TEST((took >= 200ms && took < 3s));
}

// Python's fork child keeps the listening socket; isola's holds none (see
// docs/decisions.md, Channels), so a parent's close() really stops it.
BOOST_AUTO_TEST_CASE(a_fork_child_holds_no_copy_of_the_listener, *utf::timeout(60)) {
  for (auto fam : families()) {
    BOOST_TEST_CONTEXT("family " << static_cast<int>(fam)) {
      isola::listener l({}, {.family = fam});
      const address at = l.address();
      auto [here, there] = isola::pipe();
      isola::process p(
          isola::process_options{.method = start_method::fork},
          [&l](isola::connection c) {
            c.send(l.closed() ? 0 : 1);
            c.recv<int>();  // lives until told to end
            return 0;
          },
          std::move(there));
      p.start();
      BOOST_TEST(here.recv<int>() == 0);
      if (fam == address_family::unix_socket) BOOST_TEST(file_exists(at.path()));
      auto c = isola::client(at, std::nullopt, 10s);
      auto d = l.accept(10s);
      c.send(2);
      BOOST_TEST(d.recv<int>() == 2);
      // Closed here while the child lives: nothing listens any more.
      l.close();
      try {
        isola::client(at, std::nullopt, 5s);
        BOOST_FAIL("a client connected to a closed listener");
      } catch (const isola::os_error& e) {
        BOOST_TEST((e.code() == ECONNREFUSED || e.code() == ENOENT), e.what());
      }
      here.send(0);
      BOOST_TEST(p.join(20s));
      BOOST_TEST(p.exitcode() == 0);
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()

// CPython's _TestListenerClient.
BOOST_AUTO_TEST_SUITE(test_listener_client)

// test_listener_client, with and without a key, each family, each start method
BOOST_AUTO_TEST_CASE(a_child_connects_and_its_hello_arrives, *utf::timeout(120)) {
  for (auto m : isola::all_start_methods()) {
    for (auto fam : families()) {
      for (const std::string& k : {std::string(), key}) {
        BOOST_TEST_CONTEXT("start method " << m << ", family " << static_cast<int>(fam) << ", key "
                                           << !k.empty()) {
          isola::listener l(
              {}, {.family = fam, .authkey = k.empty() ? std::nullopt : std::optional(k)});
          isola::process p(isola::process_options{.daemon = true, .method = m}, send_hello,
                           l.address(), k);
          p.start();
          auto conn = l.accept(20s);
          BOOST_TEST(conn.recv<std::string>() == "hello");
          BOOST_TEST(p.join(20s));
          BOOST_TEST(p.exitcode() == 0);
        }
      }
    }
  }
}

// test_issue14725: the client connected, wrote and closed before accept().
BOOST_AUTO_TEST_CASE(a_client_gone_before_accept_is_still_accepted_with_its_message,
                     *utf::timeout(60)) {
  for (auto m : isola::all_start_methods()) {
    BOOST_TEST_CONTEXT("start method " << m) {
      isola::listener l;
      isola::process p(isola::process_options{.daemon = true, .method = m}, send_hello, l.address(),
                       std::string());
      p.start();
      BOOST_TEST(p.join(20s));  // instead of CPython's sleep(1)
      BOOST_TEST(p.exitcode() == 0);
      auto conn = l.accept(10s);
      BOOST_TEST(conn.recv<std::string>() == "hello");
    }
  }
}

// test_issue16955
BOOST_AUTO_TEST_CASE(poll_on_the_client_sees_what_the_accepted_end_sent, *utf::timeout(30)) {
  for (auto fam : families()) {
    BOOST_TEST_CONTEXT("family " << static_cast<int>(fam)) {
      isola::listener l({}, {.family = fam});
      auto c = isola::client(l.address());
      auto a = l.accept();
      a.send_bytes("hello");
      BOOST_TEST(c.poll(1s));
      auto got = c.recv_bytes();
      BOOST_TEST(std::string(reinterpret_cast<const char*>(got.data()), got.size()) == "hello");
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()

// What a hostile, dying or stalled peer does to a listener and a client.
BOOST_AUTO_TEST_SUITE(listener_bad_input)

BOOST_AUTO_TEST_CASE(a_wrong_key_is_an_authentication_error_on_both_sides, *utf::timeout(60)) {
  for (auto fam : families()) {
    BOOST_TEST_CONTEXT("family " << static_cast<int>(fam)) {
      isola::listener l({}, {.family = fam, .authkey = key});
      isola::process bad(client_with_wrong_key, l.address());
      bad.start();
      BOOST_CHECK_THROW(l.accept(20s), isola::authentication_error);
      BOOST_TEST(bad.join(20s));
      BOOST_TEST(bad.exitcode() == 7);
      // The listener still listens, and the right key gets in.
      BOOST_TEST(!l.closed());
      isola::process good(send_hello, l.address(), key);
      good.start();
      auto c = l.accept(20s);
      BOOST_TEST(c.recv<std::string>() == "hello");
      BOOST_TEST(good.join(20s));
    }
  }
}

BOOST_AUTO_TEST_CASE(junk_instead_of_a_proof_is_refused_with_an_authentication_error,
                     *utf::timeout(60)) {
  isola::listener l({}, {.authkey = key});
  isola::process p(send_junk, l.address());
  p.start();
  BOOST_CHECK_THROW(l.accept(20s), isola::authentication_error);
  BOOST_TEST(p.join(20s));
  BOOST_TEST(p.exitcode() == 0);  // it was told FAIL
  // Without a key, junk is no handshake but a corrupt message: decode_error.
  isola::listener open_l;
  auto c = isola::client(open_l.address());
  auto d = open_l.accept();
  const char junk[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
  BOOST_REQUIRE(write_all(c.fileno(), junk, sizeof junk - 1));
  BOOST_CHECK_THROW(d.recv<std::string>(), isola::decode_error);
}

BOOST_AUTO_TEST_CASE(a_client_killed_mid_handshake_is_dropped_and_the_next_gets_in,
                     *utf::timeout(60)) {
  for (auto fam : families()) {
    BOOST_TEST_CONTEXT("family " << static_cast<int>(fam)) {
      isola::listener l({}, {.family = fam, .authkey = key});
      isola::process killed(die_mid_handshake, l.address());
      killed.start();
      // Nothing comes of it, and nothing is thrown for it.
      BOOST_TEST(isola_test::wait_until([&] {
        BOOST_TEST(!l.try_accept());
        return !killed.is_alive();
      }));
      BOOST_TEST(killed.exitcode() == -SIGKILL);
      BOOST_TEST(!l.try_accept());
      isola::process good(send_hello, l.address(), key);
      good.start();
      auto c = l.accept(20s);
      BOOST_TEST(c.recv<std::string>() == "hello");
      BOOST_TEST(good.join(20s));
    }
  }
}

BOOST_AUTO_TEST_CASE(a_client_killed_mid_message_is_a_decode_error_on_that_connection_only,
                     *utf::timeout(60)) {
  isola::listener l({}, {.authkey = key});
  isola::process killed(die_mid_message, l.address(), key);
  killed.start();
  auto d = l.accept(20s);
  BOOST_CHECK_THROW(d.recv<std::string>(), isola::decode_error);
  BOOST_TEST(killed.join(20s));
  BOOST_TEST(killed.exitcode() == -SIGKILL);
  isola::process good(send_hello, l.address(), key);
  good.start();
  auto c = l.accept(20s);
  BOOST_TEST(c.recv<std::string>() == "hello");
  BOOST_TEST(good.join(20s));
}

BOOST_AUTO_TEST_CASE(a_stopped_client_holds_neither_accept_past_its_timeout_nor_other_clients,
                     *utf::timeout(60)) {
  isola::listener l({}, {.authkey = key});
  isola::process stopped(connect_and_stop, l.address());
  stopped.start();
  BOOST_REQUIRE(isola_test::wait_until([&] { return proc_state(stopped.pid()) == 'T'; }));
  // Its connection waits in the backlog: accept takes it, sends the hello,
  // and gets no answer.
  auto t0 = std::chrono::steady_clock::now();
  BOOST_CHECK_THROW(l.accept(300ms), isola::timeout_error);
  auto took = std::chrono::steady_clock::now() - t0;
  BOOST_TEST((took >= 300ms && took < 3s));
  // Still pending (its handshake_timeout is 10 s): another client is not held up.
  isola::process good(send_hello, l.address(), key);
  good.start();
  t0 = std::chrono::steady_clock::now();
  auto c = l.accept(20s);
  BOOST_TEST(c.recv<std::string>() == "hello");
  BOOST_TEST((std::chrono::steady_clock::now() - t0 < 8s));
  BOOST_TEST(good.join(20s));
  stopped.kill();
  BOOST_TEST(stopped.join(20s));
}

BOOST_AUTO_TEST_CASE(a_peer_that_never_answers_is_dropped_after_the_handshake_timeout,
                     *utf::timeout(60)) {
  isola::listener l({}, {.authkey = key, .handshake_timeout = 300ms});
  isola::process silent(wait_to_be_dropped, l.address());
  silent.start();
  BOOST_CHECK_THROW(l.accept(1s), isola::timeout_error);
  BOOST_TEST(silent.join(20s));
  BOOST_TEST(silent.exitcode() == 3);  // it saw its connection closed
}

BOOST_AUTO_TEST_CASE(a_flood_of_silent_peers_is_capped_and_a_real_client_still_gets_in,
                     *utf::timeout(60)) {
  isola::listener l({}, {.backlog = 128, .authkey = key, .handshake_timeout = 300ms});
  // 80 connections that never say a word: 64 wait in their handshake, the
  // rest are told busy; none of it is an error for accept().
  std::vector<isola::connection> silent;
  for (int i = 0; i < 80; ++i) silent.push_back(isola::client(l.address(), std::nullopt, 5s));
  isola::process good(send_hello, l.address(), key);
  good.start();
  auto c = l.accept(20s);
  BOOST_TEST(c.recv<std::string>() == "hello");
  BOOST_TEST(good.join(20s));
  // Some of the flood were told busy (the handshake's 8-byte notice).
  int busy = 0;
  for (auto& s : silent) {
    char buf[8];
    pollfd pf{s.fileno(), POLLIN, 0};
    if (::poll(&pf, 1, 0) == 1 && ::recv(s.fileno(), buf, 8, MSG_DONTWAIT) == 8 &&
        std::memcmp(buf, "ISOLABSY", 8) == 0)
      ++busy;
  }
  BOOST_TEST(busy >= 16);
}

BOOST_AUTO_TEST_CASE(an_oversize_message_is_refused_by_the_accepted_end, *utf::timeout(60)) {
  isola::listener l({}, {.authkey = key, .connection = {.max_message_size = 1024}});
  isola::process big(send_big, l.address(), key, std::size_t{4096});
  big.start();
  auto d = l.accept(20s);
  BOOST_CHECK_THROW(d.recv_bytes(), isola::value_error);
  BOOST_TEST(big.join(20s));
  // And a header that claims a terabyte allocates nothing: value_error at once.
  isola::listener open_l({}, {.connection = {.max_message_size = 1024}});
  auto c = isola::client(open_l.address());
  auto e = open_l.accept();
  isola::frame_header h;
  h.tag = 1;
  h.size = std::uint64_t{1} << 40;
  BOOST_REQUIRE(write_all(c.fileno(), &h, sizeof h));
  BOOST_CHECK_THROW(e.recv_bytes(), isola::value_error);
}

BOOST_AUTO_TEST_CASE(another_isola_protocol_answering_is_not_taken_for_a_listener,
                     *utf::timeout(60)) {
  // A fake manager: its hello opens with the manager's magic.
  const std::string name =
      std::string(1, '\0') + "isola-fake-manager-" + std::to_string(::getpid());
  int lfd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::memcpy(sa.sun_path, name.data(), name.size());
  BOOST_REQUIRE(::bind(lfd, reinterpret_cast<sockaddr*>(&sa),
                       static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size())) == 0);
  BOOST_REQUIRE(::listen(lfd, 4) == 0);
  isola::process fake(isola::process_options{.method = start_method::fork}, [lfd] {
    int fd = ::accept(lfd, nullptr, nullptr);
    char hello[40] = {'I', 'S', 'O', 'L', 'A', 'M', 'G', '1'};
    write_all(fd, hello, sizeof hello);
    char buf[64];
    while (::read(fd, buf, sizeof buf) > 0) {}
    return 0;
  });
  fake.start();
  BOOST_CHECK_THROW(isola::client(address::unix_socket(name), key, 10s),
                    isola::authentication_error);
  BOOST_TEST(fake.join(20s));
  ::close(lfd);
}

BOOST_AUTO_TEST_CASE(a_manager_and_a_listener_are_never_taken_for_each_other, *utf::timeout(60)) {
  // Same key, same handshake code, different magic: both sides see it.
  isola::manager m;
  const auto port = m.serve(0, key);
  try {
    isola::client({"127.0.0.1", port}, key, 10s);
    BOOST_FAIL("a client took a manager for a listener");
  } catch (const isola::authentication_error& e) {
    BOOST_TEST(std::string(e.what()).find("not an isola listener") != std::string::npos, e.what());
  }
  isola::listener l({"127.0.0.1", 0}, {.authkey = key});
  isola::process p(manager_connect_to, l.address());
  p.start();
  // The manager's client leaves at the hello: dropped, no error, no connection.
  BOOST_TEST(isola_test::wait_until(
      [&] {
        BOOST_TEST(!l.try_accept());
        return !p.is_alive();
      },
      20s));
  BOOST_TEST(p.exitcode() == 0);
}

BOOST_AUTO_TEST_CASE(nothing_listening_is_connection_refused_or_file_not_found, *utf::timeout(30)) {
  BOOST_CHECK_THROW(isola::client(address::unix_socket("/nonexistent/isola-socket"), key, 5s),
                    isola::file_not_found_error);
  address tcp_at;
  {
    isola::listener l({"127.0.0.1", 0});
    tcp_at = l.address();
  }
  try {
    isola::client(tcp_at, key, 5s);
    BOOST_FAIL("a client connected to " << tcp_at);
  } catch (const isola::os_error& e) {
    BOOST_TEST(e.code() == ECONNREFUSED);
  }
  // A socket file nobody listens on.
  isola_test::temp_file f;
  ::unlink(f.path().c_str());
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::strncpy(sa.sun_path, f.path().c_str(), sizeof sa.sun_path - 1);
  BOOST_REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
  try {
    isola::client(address::unix_socket(f.path()), std::nullopt, 5s);
    BOOST_FAIL("a client connected to a socket nobody listens on");
  } catch (const isola::os_error& e) {
    BOOST_TEST(e.code() == ECONNREFUSED);
  }
  ::close(fd);
}

BOOST_AUTO_TEST_CASE(a_client_whose_listener_never_accepts_gives_up_at_its_timeout,
                     *utf::timeout(30)) {
  isola::listener l({}, {.authkey = key});
  auto t0 = std::chrono::steady_clock::now();
  BOOST_CHECK_THROW(isola::client(l.address(), key, 300ms), isola::timeout_error);
  auto took = std::chrono::steady_clock::now() - t0;
  BOOST_TEST((took >= 300ms && took < 3s));
}

BOOST_AUTO_TEST_SUITE_END()
