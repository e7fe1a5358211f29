// Tests of isola/frame.hpp: the 24-byte checked header, round trips, the
// difference between a corrupt frame (decode_error) and an intact frame of
// another type (type_error), and the CRC-32C underneath.
#include <boost/test/unit_test.hpp>

#include <isola/error.hpp>
#include <isola/frame.hpp>
#include <isola/type_name.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <random>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

namespace frame_test {

struct reading {
  std::string sensor;
  std::vector<double> values;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(sensor, values);
  }
  bool operator==(const reading&) const = default;
};

std::span<const std::byte> as_bytes(const std::string& s) {
  return std::as_bytes(std::span(s.data(), s.size()));
}

// Bit-by-bit CRC-32C, the definition the fast implementation must agree with.
std::uint32_t reference_crc32c(std::span<const std::byte> data) {
  std::uint32_t c = 0xffffffffu;
  for (auto b : data) {
    c ^= static_cast<std::uint8_t>(b);
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
  }
  return ~c;
}

isola::frame_header header_of(const isola::bytes& f) {
  isola::frame_header h;
  std::memcpy(&h, f.data(), sizeof h);
  return h;
}

void set_header(isola::bytes& f, const isola::frame_header& h) {
  std::memcpy(f.data(), &h, sizeof h);
}

template <class T>
std::string decode_error_of(std::span<const std::byte> f) {
  try {
    (void)isola::decode_frame<T>(f);
  } catch (const isola::decode_error& e) {
    return e.what();
  }
  return "(no decode_error)";
}

template <class T>
std::string type_error_of(std::span<const std::byte> f) {
  try {
    (void)isola::decode_frame<T>(f);
  } catch (const isola::type_error& e) {
    return e.what();
  }
  return "(no type_error)";
}

}  // namespace frame_test

using namespace frame_test;

BOOST_AUTO_TEST_SUITE(frame)

BOOST_AUTO_TEST_CASE(crc32c_of_large_buffers_agrees_with_the_bit_by_bit_definition,
                     *boost::unit_test::timeout(60)) {
  // Buffers from 24 KiB up take the three-stream path; check lengths around
  // its block boundaries, odd alignments, and chaining across the boundary.
  std::mt19937_64 rng(7);
  std::vector<std::byte> buf(200 * 1024 + 16);
  for (auto& b : buf) b = static_cast<std::byte>(rng());
  for (std::size_t len : {24575u, 24576u, 24577u, 49152u, 49159u, 73727u, 200000u}) {
    for (std::size_t off : {0u, 1u, 7u}) {
      auto d = std::span<const std::byte>(buf).subspan(off, len);
      BOOST_TEST(isola::crc32c(d) == reference_crc32c(d), "len " << len << " off " << off);
      auto half = len / 3;
      BOOST_TEST(isola::crc32c(d.subspan(half), isola::crc32c(d.first(half))) == isola::crc32c(d));
    }
  }
}

BOOST_AUTO_TEST_CASE(crc32c_matches_the_standard_check_value, *boost::unit_test::timeout(30)) {
  BOOST_TEST(isola::crc32c(as_bytes("123456789")) == 0xE3069283u);
  BOOST_TEST(isola::crc32c({}) == 0u);
  // RFC 3720 B.4: 32 bytes of zeros, and of 0xff.
  std::vector<std::byte> zeros(32, std::byte{0}), ones(32, std::byte{0xff});
  BOOST_TEST(isola::crc32c(zeros) == 0x8A9136AAu);
  BOOST_TEST(isola::crc32c(ones) == 0x62A8AB43u);
}

BOOST_AUTO_TEST_CASE(crc32c_agrees_with_a_bitwise_reference_at_every_length_and_alignment,
                     *boost::unit_test::timeout(30)) {
  std::mt19937_64 rng(20240601);
  std::vector<std::byte> data(300);
  for (auto& b : data) b = static_cast<std::byte>(rng());
  for (std::size_t offset = 0; offset < 8; ++offset)
    for (std::size_t n = 0; n + offset <= 260; ++n) {
      auto s = std::span<const std::byte>(data).subspan(offset, n);
      BOOST_TEST_REQUIRE(isola::crc32c(s) == reference_crc32c(s),
                         "offset " << offset << " n " << n);
    }
}

BOOST_AUTO_TEST_CASE(crc32c_can_be_computed_incrementally, *boost::unit_test::timeout(30)) {
  std::string s = "The quick brown fox jumps over the lazy dog";
  auto all = isola::crc32c(as_bytes(s));
  for (std::size_t cut = 0; cut <= s.size(); ++cut) {
    auto b = as_bytes(s);
    BOOST_TEST(isola::crc32c(b.subspan(cut), isola::crc32c(b.first(cut))) == all);
  }
}

BOOST_AUTO_TEST_CASE(round_trips_values_through_a_frame, *boost::unit_test::timeout(30)) {
  BOOST_TEST(isola::decode_frame<int>(isola::encode_frame(42)) == 42);
  BOOST_TEST(isola::decode_frame<std::string>(isola::encode_frame(std::string("hi"))) == "hi");
  std::map<std::string, std::vector<int>> m{{"a", {1, 2}}, {"b", {}}};
  BOOST_TEST((isola::decode_frame<decltype(m)>(isola::encode_frame(m)) == m));
  reading r{"t1", {20.5, 21.0}};
  BOOST_TEST((isola::decode_frame<reading>(isola::encode_frame(r)) == r));
  BOOST_TEST(isola::decode_frame<std::string>(isola::encode_frame(std::string())).empty());
}

BOOST_AUTO_TEST_CASE(a_frame_is_a_24_byte_header_then_the_codec_payload,
                     *boost::unit_test::timeout(30)) {
  std::vector<int> v{1, 2, 3};
  auto f = isola::encode_frame(v);
  auto payload = isola::encode(v);
  BOOST_TEST_REQUIRE(f.size() == isola::frame_header_size + payload.size());
  auto h = header_of(f);
  BOOST_TEST(h.magic == isola::frame_magic);
  BOOST_TEST(std::memcmp(f.data(), "ISL1", 4) == 0);
  BOOST_TEST(h.tag == isola::type_tag<std::vector<int>>());
  BOOST_TEST(h.size == payload.size());
  BOOST_TEST(std::memcmp(f.data() + 24, payload.data(), payload.size()) == 0);
  // The checksum covers tag, size and payload.
  std::uint64_t head[2] = {h.tag, h.size};
  auto c = isola::crc32c(payload, isola::crc32c(std::as_bytes(std::span(head))));
  BOOST_TEST(h.crc == c);

  auto view = isola::parse_frame(f);
  BOOST_TEST(view.tag == h.tag);
  BOOST_TEST(view.payload.data() == f.data() + 24);
  BOOST_TEST(view.payload.size() == payload.size());
}

BOOST_AUTO_TEST_CASE(append_frame_and_encode_frame_into_produce_the_same_bytes,
                     *boost::unit_test::timeout(30)) {
  reading r{"x", {1.0}};
  isola::bytes a;
  isola::append_frame(isola::type_tag<reading>(), isola::encode(r), a);
  BOOST_TEST((a == isola::encode_frame(r)));

  // Several frames back to back in one buffer.
  isola::bytes buf;
  isola::encode_frame_into(7, buf);
  auto first = buf.size();
  isola::encode_frame_into(std::string("second"), buf);
  BOOST_TEST(isola::decode_frame<int>(std::span<const std::byte>(buf).first(first)) == 7);
  BOOST_TEST(isola::decode_frame<std::string>(std::span<const std::byte>(buf).subspan(first)) ==
             "second");
}

BOOST_AUTO_TEST_CASE(decode_frame_of_another_type_is_a_type_error_naming_both_types,
                     *boost::unit_test::timeout(30)) {
  auto f = isola::encode_frame(std::string("not an int"));
  BOOST_CHECK_THROW(isola::decode_frame<int>(f), isola::type_error);
  auto what = type_error_of<int>(f);
  BOOST_TEST(what.find("int32") != std::string::npos, what);
  BOOST_TEST(what.find("string") != std::string::npos, what);
  // The frame itself is fine: a type_error, which is not a decode_error.
  static_assert(!std::is_base_of_v<isola::decode_error, isola::type_error>);

  auto g = isola::encode_frame(reading{});
  auto w = type_error_of<std::vector<double>>(g);
  BOOST_TEST(w.find("vector<float64>") != std::string::npos, w);
  BOOST_TEST(w.find("reading") != std::string::npos, w);
  // Same size, different type: still a type_error.
  BOOST_CHECK_THROW(isola::decode_frame<float>(isola::encode_frame(1)), isola::type_error);
  BOOST_CHECK_THROW(isola::decode_frame<unsigned>(isola::encode_frame(1)), isola::type_error);
}

BOOST_AUTO_TEST_CASE(a_frame_with_an_unknown_tag_names_the_tag, *boost::unit_test::timeout(30)) {
  const std::uint64_t tag = 0x0123456789abcdefull;
  BOOST_TEST(isola::type_name_for_tag(tag) == "unknown type (tag 0x0123456789abcdef)");
  isola::bytes f;
  isola::append_frame(tag, isola::encode(5), f);
  auto what = type_error_of<int>(f);
  BOOST_TEST(what.find("unknown type (tag 0x0123456789abcdef)") != std::string::npos, what);
  BOOST_TEST(what.find("int32") != std::string::npos, what);
  BOOST_TEST(isola::parse_frame(f).tag == tag);
}

BOOST_AUTO_TEST_CASE(corrupt_magic_is_a_decode_error, *boost::unit_test::timeout(30)) {
  auto f = isola::encode_frame(12345);
  for (std::size_t i = 0; i < 4; ++i) {
    auto g = f;
    g[i] ^= std::byte{0x20};
    BOOST_TEST(decode_error_of<int>(g).find("magic") != std::string::npos);
  }
}

BOOST_AUTO_TEST_CASE(a_flipped_byte_anywhere_is_a_decode_error_not_a_type_error,
                     *boost::unit_test::timeout(30)) {
  auto f = isola::encode_frame(reading{"sensor-7", {1.0, 2.0, 3.0}});
  for (std::size_t i = 0; i < f.size(); ++i)
    for (int bit = 0; bit < 8; ++bit) {
      auto g = f;
      g[i] ^= static_cast<std::byte>(1 << bit);
      BOOST_TEST_REQUIRE(decode_error_of<reading>(g) != "(no decode_error)",
                         "byte " << i << " bit " << bit);
    }
  // Specifically the tag: without the checksum this would read as another type.
  auto g = f;
  g[8] ^= std::byte{1};
  BOOST_TEST(decode_error_of<reading>(g).find("checksum") != std::string::npos);
  // And a payload byte.
  auto p = f;
  p[30] ^= std::byte{0x80};
  BOOST_TEST(decode_error_of<reading>(p).find("checksum") != std::string::npos);
  // And the checksum itself.
  auto c = f;
  c[5] ^= std::byte{4};
  BOOST_TEST(decode_error_of<reading>(c).find("checksum") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_wrong_length_is_a_decode_error, *boost::unit_test::timeout(30)) {
  auto f = isola::encode_frame(std::string("twelve bytes"));
  // Truncated at every length, including inside the header.
  for (std::size_t n = 0; n < f.size(); ++n)
    BOOST_TEST_REQUIRE(
        decode_error_of<std::string>(std::span<const std::byte>(f).first(n)) != "(no decode_error)",
        "length " << n);
  // Over-long.
  auto longer = f;
  longer.push_back(std::byte{0});
  BOOST_CHECK_THROW(isola::decode_frame<std::string>(longer), isola::decode_error);
  // A size field that disagrees with the bytes, small or huge.
  for (std::uint64_t size : {std::uint64_t{0}, std::uint64_t{19}, std::uint64_t{21},
                             std::uint64_t{1} << 40, UINT64_MAX}) {
    auto g = f;
    auto h = header_of(g);
    h.size = size;
    set_header(g, h);
    BOOST_CHECK_THROW(isola::decode_frame<std::string>(g), isola::decode_error);
  }
}

BOOST_AUTO_TEST_CASE(a_consistent_forgery_of_size_and_checksum_is_still_caught_by_the_codec,
                     *boost::unit_test::timeout(30)) {
  // A frame whose checksum is right but whose payload lies about a length:
  // the bounded decoder is the second line of defence.
  isola::bytes payload;
  std::uint64_t n = std::uint64_t{1} << 40;
  auto p = reinterpret_cast<const std::byte*>(&n);
  payload.insert(payload.end(), p, p + 8);
  payload.resize(100, std::byte{0});
  isola::bytes f;
  isola::append_frame(isola::type_tag<std::vector<double>>(), payload, f);
  BOOST_TEST(decode_error_of<std::vector<double>>(f).find("corrupt length") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(parse_frame_header_rejects_a_size_over_the_limit,
                     *boost::unit_test::timeout(30)) {
  auto f = isola::encode_frame(std::vector<std::uint8_t>(100, 1));  // payload 108 bytes
  auto header = std::span<const std::byte>(f).first(isola::frame_header_size);
  BOOST_TEST(isola::parse_frame_header(header).size == 108u);
  BOOST_TEST(isola::parse_frame_header(header, 108).size == 108u);
  BOOST_CHECK_THROW(isola::parse_frame_header(header, 107), isola::decode_error);
  BOOST_CHECK_THROW(isola::parse_frame_header(header, 0), isola::decode_error);
  try {
    isola::parse_frame_header(header, 64);
  } catch (const isola::decode_error& e) {
    BOOST_TEST(std::string(e.what()).find("oversize") != std::string::npos, e.what());
  }
  // Shorter than a header.
  BOOST_CHECK_THROW(isola::parse_frame_header(header.first(23)), isola::decode_error);
  // A header of a forged huge frame is rejected before anyone reads or
  // allocates its payload.
  auto h = header_of(f);
  h.size = std::uint64_t{1} << 40;
  auto g = f;
  set_header(g, h);
  BOOST_CHECK_THROW(isola::parse_frame_header(std::span<const std::byte>(g).first(24), 1 << 20),
                    isola::decode_error);
}

BOOST_AUTO_TEST_CASE(verify_frame_checks_a_payload_against_its_header,
                     *boost::unit_test::timeout(30)) {
  auto f = isola::encode_frame(reading{"a", {1.5}});
  auto h = isola::parse_frame_header(f);
  auto payload = std::span<const std::byte>(f).subspan(isola::frame_header_size);
  isola::verify_frame(h, payload);  // intact: no throw
  BOOST_CHECK_THROW(isola::verify_frame(h, payload.first(payload.size() - 1)), isola::decode_error);
  isola::bytes bad(payload.begin(), payload.end());
  bad[0] ^= std::byte{1};
  BOOST_CHECK_THROW(isola::verify_frame(h, bad), isola::decode_error);
  auto h2 = h;
  h2.tag ^= 1;
  BOOST_CHECK_THROW(isola::verify_frame(h2, payload), isola::decode_error);
}

BOOST_AUTO_TEST_CASE(a_frame_whose_payload_does_not_decode_is_a_decode_error,
                     *boost::unit_test::timeout(30)) {
  // Intact frame (right tag, right checksum) with trailing bytes in the
  // payload, or with a payload too short for the type.
  isola::bytes payload = isola::encode(7);
  payload.push_back(std::byte{0});
  isola::bytes f;
  isola::append_frame(isola::type_tag<int>(), payload, f);
  BOOST_CHECK_THROW(isola::decode_frame<int>(f), isola::decode_error);
  isola::bytes g;
  isola::append_frame(isola::type_tag<std::uint64_t>(), isola::encode(7), g);
  BOOST_CHECK_THROW(isola::decode_frame<std::uint64_t>(g), isola::decode_error);
}

BOOST_AUTO_TEST_SUITE_END()
