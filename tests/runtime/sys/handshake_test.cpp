// sys/handshake.hpp: the one challenge-response handshake of the manager and
// nodes, checked against known answers and against a reflecting, replaying,
// forging or silent peer.
#include <boost/test/unit_test.hpp>

#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "sys/crypto.hpp"
#include "sys/handshake.hpp"
#include "sys/os.hpp"

namespace utf = boost::unit_test;
namespace hs = isola::detail::handshake;
using namespace std::chrono_literals;
using isola::detail::deadline;

namespace {

const hs::spec node_like{
    {'I', 'S', 'O', 'L', 'A', '-', 'N', '1'}, "isola-node-client", "isola-node-server", 0, true};
const hs::spec manager_like{{'I', 'S', 'O', 'L', 'A', 'M', 'G', '1'},
                            "isola-manager-client",
                            "isola-manager-server",
                            32,
                            false};
const std::string key = "correct horse battery staple";

std::string hex(std::span<const std::uint8_t> d) {
  static const char* x = "0123456789abcdef";
  std::string s;
  for (auto c : d) {
    s += x[c >> 4];
    s += x[c & 15];
  }
  return s;
}

hs::challenge counting() {
  hs::challenge c;
  for (int i = 0; i < 32; ++i) c[i] = static_cast<std::uint8_t>(i);
  return c;
}

struct pair_of_sockets {
  isola::detail::unique_fd a, b;
  pair_of_sockets() {
    int sv[2];
    BOOST_REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    a.reset(sv[0]);
    b.reset(sv[1]);
  }
};

/// A server that runs the real server side with `server_key` on fd.
void serve(int fd, const hs::spec& s, const std::string& server_key,
           std::string* extra_seen = nullptr) {
  auto c = hs::new_challenge();
  auto hello = hs::make_hello(s, c);
  auto dl = deadline::after(5s);
  if (!hs::write_exact(fd, hello.data(), hello.size(), dl)) return;
  std::vector<std::uint8_t> resp(hs::response_size(s));
  if (!hs::read_exact(fd, resp.data(), resp.size(), dl)) return;
  auto v = hs::make_verdict(s, server_key, c, resp);
  if (!v) {
    hs::write_exact(fd, "FAIL", 4, dl);
    return;
  }
  if (extra_seen) {
    auto e = hs::response_extra(s, resp);
    extra_seen->assign(reinterpret_cast<const char*>(e.data()), e.size());
  }
  hs::write_exact(fd, v->data(), v->size(), dl);
  if (s.client_confirms) {
    char confirm[4];
    hs::read_exact(fd, confirm, 4, dl);
  }
}

}  // namespace

BOOST_AUTO_TEST_SUITE(handshake)

BOOST_AUTO_TEST_CASE(proofs_match_known_answers, *utf::timeout(10)) {
  // Computed independently: Python's hmac.new(key, label + bytes(range(32)), sha256).
  auto c = counting();
  BOOST_TEST(hex(hs::proof(key, "isola-node-client", c)) ==
             "eed0ac66e62288c012eb2c321b215e7a67d9afc61c7ab05038925252ca1036d0");
  BOOST_TEST(hex(hs::proof(key, "isola-node-server", c)) ==
             "257221e5ca21dc8b3579b1a76b9e0901c9ca639fa202b6249d557902e2198f24");
  BOOST_TEST(hex(hs::proof(key, "isola-manager-client", c)) ==
             "ec776b924751078f81a1de4f8fa9f4ea92a85da680fcd2e53c2fad58e7dc5bc4");
  // RFC 4231 test case 2 through the same libcrypto HMAC.
  BOOST_TEST(hex(isola::detail::hmac_sha256("Jefe", "what do ya want for nothing?")) ==
             "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

BOOST_AUTO_TEST_CASE(a_client_with_the_key_is_accepted_and_proves_the_server_too,
                     *utf::timeout(20)) {
  for (const auto* s : {&node_like, &manager_like}) {
    pair_of_sockets p;
    std::string extra_seen;
    std::thread t([&] { serve(p.b.get(), *s, key, &extra_seen); });
    std::vector<std::uint8_t> extra(s->extra_bytes, 0x5a);
    BOOST_TEST((hs::run_client(p.a.get(), *s, key, extra, deadline::after(5s)) == hs::outcome::ok));
    t.join();
    BOOST_TEST(extra_seen == std::string(s->extra_bytes, '\x5a'));
  }
}

BOOST_AUTO_TEST_CASE(a_client_with_another_key_is_refused, *utf::timeout(20)) {
  pair_of_sockets p;
  std::thread t([&] { serve(p.b.get(), node_like, key); });
  BOOST_TEST((hs::run_client(p.a.get(), node_like, "wrong key", {}, deadline::after(5s)) ==
              hs::outcome::refused));
  t.join();
}

BOOST_AUTO_TEST_CASE(a_server_that_says_okay_without_the_key_is_caught, *utf::timeout(20)) {
  pair_of_sockets p;
  std::thread t([&] {
    auto dl = deadline::after(5s);
    auto hello = hs::make_hello(node_like, hs::new_challenge());
    hs::write_exact(p.b.get(), hello.data(), hello.size(), dl);
    std::vector<std::uint8_t> resp(hs::response_size(node_like));
    hs::read_exact(p.b.get(), resp.data(), resp.size(), dl);
    // An impostor answers OKAY with a proof made with another key.
    std::uint8_t forged[hs::verdict_size] = {'O', 'K', 'A', 'Y'};
    auto bogus = hs::proof("impostor", node_like.server_label,
                           std::span<const std::uint8_t, 32>(resp.data() + 32, 32));
    std::memcpy(forged + 4, bogus.data(), 32);
    hs::write_exact(p.b.get(), forged, sizeof forged, dl);
    char confirm[4] = {};
    hs::read_exact(p.b.get(), confirm, 4, dl);
    BOOST_TEST(std::string(confirm, 4) == "FAIL");
  });
  BOOST_TEST(
      (hs::run_client(p.a.get(), node_like, key, {}, deadline::after(5s)) == hs::outcome::forged));
  t.join();
}

BOOST_AUTO_TEST_CASE(a_captured_response_does_not_pass_a_new_challenge, *utf::timeout(10)) {
  // Replay: the response to challenge S1, sent again to a server that chose S2.
  auto s1 = hs::new_challenge(), s2 = hs::new_challenge();
  std::vector<std::uint8_t> resp(hs::response_size(node_like));
  auto mac = hs::proof(key, node_like.client_label, s1);
  std::memcpy(resp.data(), mac.data(), 32);
  BOOST_TEST(hs::make_verdict(node_like, key, s1, resp).has_value());
  BOOST_TEST(!hs::make_verdict(node_like, key, s2, resp).has_value());
}

BOOST_AUTO_TEST_CASE(a_servers_own_proof_reflected_back_is_refused, *utf::timeout(10)) {
  // Reflection: an attacker opens a second connection, hands the server the
  // challenge it got from the first, and sends the server's proof back as
  // its own. The two directions use different labels, so it does not pass.
  auto s = hs::new_challenge();
  auto server_proof = hs::proof(key, node_like.server_label, s);
  std::vector<std::uint8_t> resp(hs::response_size(node_like));
  std::memcpy(resp.data(), server_proof.data(), 32);
  BOOST_TEST(!hs::make_verdict(node_like, key, s, resp).has_value());
}

BOOST_AUTO_TEST_CASE(a_short_or_long_response_is_refused, *utf::timeout(10)) {
  auto s = hs::new_challenge();
  std::vector<std::uint8_t> resp(hs::response_size(manager_like) - 1);
  BOOST_TEST(!hs::make_verdict(manager_like, key, s, resp).has_value());
  resp.resize(hs::response_size(manager_like) + 1);
  BOOST_TEST(!hs::make_verdict(manager_like, key, s, resp).has_value());
}

BOOST_AUTO_TEST_CASE(a_silent_server_fails_the_client_at_its_deadline, *utf::timeout(10)) {
  pair_of_sockets p;
  const auto start = std::chrono::steady_clock::now();
  BOOST_TEST((hs::run_client(p.a.get(), node_like, key, {}, deadline::after(200ms)) ==
              hs::outcome::timed_out));
  const auto took = std::chrono::steady_clock::now() - start;
  BOOST_TEST((took >= 200ms));
  BOOST_TEST((took < 3s));
}

BOOST_AUTO_TEST_CASE(a_peer_that_speaks_another_protocol_is_not_ours, *utf::timeout(10)) {
  pair_of_sockets p;
  std::string reply = "HTTP/1.1 400 Bad Request\r\n\r\n";
  reply.resize(hs::hello_size, 'x');  // as long as a hello
  BOOST_REQUIRE(::write(p.b.get(), reply.data(), reply.size()) == static_cast<ssize_t>(reply.size()));
  BOOST_TEST((hs::run_client(p.a.get(), node_like, key, {}, deadline::after(2s)) ==
              hs::outcome::not_ours));
}

BOOST_AUTO_TEST_CASE(a_peer_that_closes_mid_handshake_is_closed, *utf::timeout(10)) {
  pair_of_sockets p;
  auto hello = hs::make_hello(node_like, hs::new_challenge());
  BOOST_REQUIRE(::write(p.b.get(), hello.data(), 20) == 20);
  p.b.reset();
  BOOST_TEST(
      (hs::run_client(p.a.get(), node_like, key, {}, deadline::after(2s)) == hs::outcome::closed));
}

BOOST_AUTO_TEST_CASE(a_busy_server_is_reported_busy_not_as_a_wrong_key, *utf::timeout(10)) {
  for (const auto* s : {&node_like, &manager_like}) {
    pair_of_sockets p;
    hs::send_busy(p.b.get());
    p.b.reset();
    BOOST_TEST((hs::run_client(p.a.get(), *s, key, {}, deadline::after(2s)) == hs::outcome::busy));
  }
}

BOOST_AUTO_TEST_CASE(a_short_key_is_stretched_with_pbkdf2_and_a_long_one_is_used_as_it_is,
                     *utf::timeout(30)) {
  // Computed independently: Python's
  // hashlib.pbkdf2_hmac('sha256', b'secret', b'isola-key-stretch-v1', 100000).
  const std::string stretched = hs::effective_key("secret");
  BOOST_TEST(hex(std::span<const std::uint8_t>(
                 reinterpret_cast<const std::uint8_t*>(stretched.data()), stretched.size())) ==
             "4cef6c4f520b29cedf479d1cd21616a5f62023bea511a172bdca1fd0585df72e");
  BOOST_TEST(hs::effective_key("secret") == stretched);  // the cached answer is the same
  const std::string sixteen = "0123456789abcdef";
  BOOST_TEST(hs::effective_key(sixteen) == sixteen);
  BOOST_TEST(hs::effective_key(key) == key);
  // Proofs are over the stretched key, on both sides alike.
  auto c = counting();
  BOOST_TEST(hex(hs::proof("secret", "isola-node-client", c)) ==
             hex(isola::detail::hmac_sha256(
                 stretched, "isola-node-client" + std::string(reinterpret_cast<const char*>(c.data()), 32))));
  pair_of_sockets p;
  std::thread t([&] { serve(p.b.get(), node_like, "secret"); });
  BOOST_TEST((hs::run_client(p.a.get(), node_like, "secret", {}, deadline::after(5s)) ==
              hs::outcome::ok));
  t.join();
}

BOOST_AUTO_TEST_SUITE_END()
