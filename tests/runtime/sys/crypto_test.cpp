// sys/crypto.hpp: SHA-256 and HMAC-SHA256 come from libcrypto and give the
// FIPS 180-4 and RFC 4231 answers (the handshakes' wire depends on them).
#include <boost/test/unit_test.hpp>

#include <string>
#include <vector>

#include "sys/crypto.hpp"

namespace utf = boost::unit_test;

namespace {

std::string hex(const isola::detail::sha256_digest& d) {
  static const char* x = "0123456789abcdef";
  std::string s;
  for (auto b : d) {
    s += x[b >> 4];
    s += x[b & 15];
  }
  return s;
}

std::string unhex(const std::string& h) {
  std::string s;
  for (std::size_t i = 0; i + 1 < h.size(); i += 2)
    s += static_cast<char>(std::stoi(h.substr(i, 2), nullptr, 16));
  return s;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(crypto)

BOOST_AUTO_TEST_CASE(sha256_and_hmac_sha256_match_the_fips_and_rfc_4231_vectors,
                     *utf::timeout(10)) {
  using isola::detail::hmac_sha256;
  using isola::detail::sha256_of;
  auto sha = [](const std::string& s) {
    return hex(sha256_of(std::as_bytes(std::span(s.data(), s.size()))));
  };
  BOOST_TEST(sha("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  BOOST_TEST(sha("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  BOOST_TEST(sha("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
             "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  BOOST_TEST(sha(std::string(1000000, 'a')) ==
             "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  // Incremental updates in odd pieces give the same digest.
  {
    std::string s(1000, 'x');
    for (std::size_t i = 0; i < s.size(); ++i) s[i] = static_cast<char>(i * 7);
    isola::detail::sha256 h;
    for (std::size_t i = 0; i < s.size(); i += 13) h.update(std::string_view(s).substr(i, 13));
    BOOST_TEST(hex(h.finish()) == sha(s));
  }
  // RFC 4231, test cases 1-4, 6 and 7 (5 is a truncated output).
  struct vec {
    std::string key, data, mac;
  };
  std::vector<vec> vs = {
      {std::string(20, '\x0b'), "Hi There",
       "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
      {"Jefe", "what do ya want for nothing?",
       "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
      {std::string(20, '\xaa'), std::string(50, '\xdd'),
       "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"},
      {unhex("0102030405060708090a0b0c0d0e0f10111213141516171819"), std::string(50, '\xcd'),
       "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"},
      {std::string(131, '\xaa'), "Test Using Larger Than Block-Size Key - Hash Key First",
       "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
      {std::string(131, '\xaa'),
       "This is a test using a larger than block-size key and a larger than block-size data. "
       "The key needs to be hashed before being used by the HMAC algorithm.",
       "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"},
  };
  for (auto& v : vs) BOOST_TEST(hex(hmac_sha256(v.key, v.data)) == v.mac);
}

BOOST_AUTO_TEST_CASE(constant_time_equal_compares_whole_digests, *utf::timeout(10)) {
  std::vector<std::uint8_t> a(32, 7), b(32, 7);
  BOOST_TEST(isola::detail::constant_time_equal(a, b));
  b[31] = 8;
  BOOST_TEST(!isola::detail::constant_time_equal(a, b));
  b.resize(31);
  BOOST_TEST(!isola::detail::constant_time_equal(a, b));
}

BOOST_AUTO_TEST_SUITE_END()
