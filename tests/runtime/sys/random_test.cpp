// sys/random.hpp: one getrandom wrapper, one error policy.
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <array>
#include <cstdint>
#include <set>
#include <vector>

#include "sys/random.hpp"

namespace utf = boost::unit_test;

BOOST_AUTO_TEST_SUITE(random_bytes)

BOOST_AUTO_TEST_CASE(random_values_differ_from_call_to_call, *utf::timeout(10)) {
  std::set<std::uint64_t> seen;
  for (int i = 0; i < 100; ++i) seen.insert(isola::detail::random_value<std::uint64_t>());
  BOOST_TEST(seen.size() == 100u);
}

BOOST_AUTO_TEST_CASE(a_buffer_larger_than_one_getrandom_call_is_filled_whole, *utf::timeout(10)) {
  // getrandom returns at most 32 MiB - 1 per call, and may return short
  // reads above 256 bytes: the wrapper goes on until the buffer is full.
  std::vector<std::byte> buf(1 << 20, std::byte{0});
  isola::detail::random_bytes(buf);
  // The last 4 KiB are not all zero (probability 2^-32768 of a false failure).
  BOOST_TEST(
      std::any_of(buf.end() - 4096, buf.end(), [](std::byte b) { return b != std::byte{0}; }));
  std::array<std::uint8_t, 256> counts{};
  for (std::size_t i = 0; i < 4096; ++i) ++counts[static_cast<std::uint8_t>(buf[i])];
  // Every byte value appears in 4 KiB of random bytes with overwhelming odds
  // (each is missing with probability ~1e-7).
  BOOST_TEST(std::count(counts.begin(), counts.end(), 0) <= 1);
}

BOOST_AUTO_TEST_CASE(an_empty_buffer_is_fine, *utf::timeout(10)) {
  std::span<std::byte> none;
  BOOST_CHECK_NO_THROW(isola::detail::random_bytes(none));
}

BOOST_AUTO_TEST_SUITE_END()
