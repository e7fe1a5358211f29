// Tests of isola/codec.hpp: encode/decode round trips of standard and user
// types, the wire layout, and the bounded decoder's rejection of every kind of
// malformed input (bad bool, trailing garbage, truncation, forged lengths).
#include <boost/test/unit_test.hpp>

#include <isola/codec.hpp>
#include <isola/error.hpp>

#include <array>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

namespace codec_test {

struct point {
  int x = 0;
  int y = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(x, y);
  }
  bool operator==(const point&) const = default;
};

struct shape {
  std::string name;
  std::vector<point> vertices;
  std::optional<point> centre;
  std::map<std::string, double> properties;
  bool closed = false;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(name, vertices, centre, properties, closed);
  }
  bool operator==(const shape&) const = default;
};

struct drawing {
  std::vector<shape> shapes;
  std::tuple<int, std::string> meta;
  std::map<int, std::vector<shape>> layers;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(shapes, meta, layers);
  }
  bool operator==(const drawing&) const = default;
};

// save/load pair instead of serialize.
class temperature {
 public:
  temperature() = default;
  explicit temperature(double c) : celsius_(c) {}
  double celsius() const { return celsius_; }
  template <class Archive>
  void save(Archive& ar) const {
    ar(celsius_);
  }
  template <class Archive>
  void load(Archive& ar) {
    ar(celsius_);
  }

 private:
  double celsius_ = 0;
};

// Non-member serialize function, found by ADL.
struct rgb {
  std::uint8_t r = 0, g = 0, b = 0;
  bool operator==(const rgb&) const = default;
};
template <class Archive>
void serialize(Archive& ar, rgb& c) {
  ar(c.r, c.g, c.b);
}

// A load that validates its input and throws something other than an isola
// error.
struct positive {
  int v = 1;
  template <class Archive>
  void save(Archive& ar) const {
    ar(v);
  }
  template <class Archive>
  void load(Archive& ar) {
    ar(v);
    if (v <= 0) throw std::invalid_argument("positive: got " + std::to_string(v));
  }
};

// An empty type: nothing on the wire. (A struct without members needs an
// empty serialize() too: cereal's traits do not count class elision.)
struct empty_tag {
  template <class Archive>
  void serialize(Archive&) {}
};

struct not_serializable {
  int x = 0;
};

struct not_default_constructible {
  explicit not_default_constructible(int v) : v_(v) {}
  template <class Archive>
  void serialize(Archive& ar) {
    ar(v_);
  }
  int v_;
};

template <class T>
void check_round_trip(const T& v) {
  auto b = isola::encode(v);
  auto d = isola::decode<T>(b);
  BOOST_TEST((d == v));
}

isola::bytes raw(std::initializer_list<int> xs) {
  isola::bytes b;
  for (int x : xs) b.push_back(static_cast<std::byte>(x));
  return b;
}

template <class T>
void append_pod(isola::bytes& out, const T& v) {
  auto p = reinterpret_cast<const std::byte*>(&v);
  out.insert(out.end(), p, p + sizeof v);
}

template <class T>
std::string decode_error_of(const isola::bytes& in) {
  try {
    (void)isola::decode<T>(in);
  } catch (const isola::decode_error& e) {
    return e.what();
  }
  return "(no decode_error)";
}

drawing sample_drawing() {
  drawing d;
  d.shapes.push_back({"triangle", {{0, 0}, {4, 0}, {2, 3}}, point{2, 1}, {{"area", 6.0}}, true});
  d.shapes.push_back({"line", {{-1, -1}, {1, 1}}, std::nullopt, {}, false});
  d.meta = {7, "sketch"};
  d.layers[0] = d.shapes;
  d.layers[5] = {};
  return d;
}

}  // namespace codec_test

using namespace codec_test;

BOOST_AUTO_TEST_SUITE(codec)

BOOST_AUTO_TEST_CASE(round_trips_integers_of_every_width_including_their_extremes,
                     *boost::unit_test::timeout(30)) {
  check_round_trip<std::int8_t>(std::numeric_limits<std::int8_t>::min());
  check_round_trip<std::uint8_t>(std::numeric_limits<std::uint8_t>::max());
  check_round_trip<std::int16_t>(-12345);
  check_round_trip<std::uint16_t>(65535);
  check_round_trip<std::int32_t>(std::numeric_limits<std::int32_t>::min());
  check_round_trip<std::int32_t>(42);
  check_round_trip<std::uint32_t>(0xdeadbeefu);
  check_round_trip<std::int64_t>(std::numeric_limits<std::int64_t>::min());
  check_round_trip<std::uint64_t>(std::numeric_limits<std::uint64_t>::max());
  check_round_trip<long>(-1L);
  check_round_trip<char>('z');
  check_round_trip<bool>(true);
  check_round_trip<bool>(false);
  BOOST_TEST(isola::encode(std::int32_t{1}).size() == 4u);
  BOOST_TEST(isola::encode(std::uint64_t{1}).size() == 8u);
  BOOST_TEST(isola::encode(true).size() == 1u);
}

BOOST_AUTO_TEST_CASE(round_trips_floating_point_values_bit_for_bit,
                     *boost::unit_test::timeout(30)) {
  for (double v :
       {0.0, -0.0, 1.5, -1e308, std::numeric_limits<double>::denorm_min(),
        std::numeric_limits<double>::infinity(), std::numeric_limits<double>::quiet_NaN()}) {
    auto d = isola::decode<double>(isola::encode(v));
    BOOST_TEST(std::memcmp(&d, &v, sizeof v) == 0);
  }
  check_round_trip<float>(3.25f);
}

BOOST_AUTO_TEST_CASE(round_trips_strings_including_empty_embedded_nul_and_long_ones,
                     *boost::unit_test::timeout(30)) {
  check_round_trip(std::string{});
  check_round_trip(std::string("hello"));
  check_round_trip(std::string("a\0b\0c", 5));
  check_round_trip(std::string("不露声色"));
  check_round_trip(std::string(100000, 'x'));
}

BOOST_AUTO_TEST_CASE(round_trips_vectors_of_arithmetic_strings_bools_and_vectors,
                     *boost::unit_test::timeout(30)) {
  check_round_trip(std::vector<int>{});
  check_round_trip(std::vector<int>{1, -2, 3});
  check_round_trip(std::vector<std::uint64_t>(1000, 0x0102030405060708ull));
  check_round_trip(std::vector<double>{0.5, -7.25, 1e-300});
  check_round_trip(std::vector<std::string>{"", "a", "bc"});
  check_round_trip(std::vector<bool>{true, false, true, true});
  check_round_trip(std::vector<std::vector<int>>{{}, {1}, {2, 3}});
  check_round_trip(std::vector<std::byte>{std::byte{0}, std::byte{0xff}});
  check_round_trip(std::array<int, 3>{7, 8, 9});
}

BOOST_AUTO_TEST_CASE(round_trips_maps_sets_and_unordered_maps, *boost::unit_test::timeout(30)) {
  check_round_trip(std::map<std::string, int>{});
  check_round_trip(std::map<std::string, int>{{"one", 1}, {"two", 2}});
  check_round_trip(std::map<std::string, std::vector<int>>{{"a", {1, 2}}, {"b", {}}});
  check_round_trip(std::map<int, std::map<int, std::string>>{{1, {{2, "x"}}}});
  check_round_trip(std::set<std::string>{"x", "y", "z"});
  check_round_trip(std::unordered_map<int, std::string>{{1, "a"}, {2, "b"}, {3, "c"}});
}

BOOST_AUTO_TEST_CASE(round_trips_optionals_empty_and_engaged, *boost::unit_test::timeout(30)) {
  check_round_trip(std::optional<int>{});
  check_round_trip(std::optional<int>{0});
  check_round_trip(std::optional<std::string>{"present"});
  check_round_trip(std::optional<std::optional<int>>{std::optional<int>{}});
  check_round_trip(std::vector<std::optional<int>>{1, std::nullopt, 3});
}

BOOST_AUTO_TEST_CASE(round_trips_tuples_pairs_and_variants, *boost::unit_test::timeout(30)) {
  check_round_trip(std::tuple<>{});
  check_round_trip(std::tuple<int, std::string, double>{1, "two", 3.0});
  check_round_trip(std::pair<std::string, std::vector<int>>{"k", {4, 5}});
  using v = std::variant<std::monostate, int, std::string>;
  check_round_trip(v{});
  check_round_trip(v{17});
  check_round_trip(v{std::string("s")});
  check_round_trip(std::chrono::milliseconds(1234));
}

BOOST_AUTO_TEST_CASE(round_trips_nested_user_structs_with_serialize,
                     *boost::unit_test::timeout(30)) {
  check_round_trip(point{3, -4});
  check_round_trip(sample_drawing());
  check_round_trip(drawing{});
  check_round_trip(std::vector<drawing>{sample_drawing(), drawing{}, sample_drawing()});
  check_round_trip(rgb{1, 2, 255});
  BOOST_TEST(isola::encode(empty_tag{}).empty());
  (void)isola::decode<empty_tag>(isola::bytes{});
  auto t = isola::decode<temperature>(isola::encode(temperature(21.5)));
  BOOST_TEST(t.celsius() == 21.5);
}

BOOST_AUTO_TEST_CASE(encodes_host_order_values_and_u64_length_prefixes,
                     *boost::unit_test::timeout(30)) {
  std::int32_t i = 0x01020304;
  auto b = isola::encode(i);
  BOOST_TEST_REQUIRE(b.size() == 4u);
  BOOST_TEST(std::memcmp(b.data(), &i, 4) == 0);

  auto s = isola::encode(std::string("abc"));
  isola::bytes expected;
  append_pod(expected, std::uint64_t{3});
  for (char c : std::string("abc")) expected.push_back(static_cast<std::byte>(c));
  BOOST_TEST((s == expected));

  auto p = isola::encode(point{1, 2});
  BOOST_TEST(p.size() == 8u);  // no class version, no padding
}

BOOST_AUTO_TEST_CASE(encode_into_appends_to_existing_bytes, *boost::unit_test::timeout(30)) {
  isola::bytes out = raw({0xaa, 0xbb});
  isola::encode_into(std::int16_t{7}, out);
  BOOST_TEST_REQUIRE(out.size() == 4u);
  BOOST_TEST(static_cast<int>(out[0]) == 0xaa);
  BOOST_TEST(static_cast<int>(out[1]) == 0xbb);
  auto tail = std::span<const std::byte>(out).subspan(2);
  BOOST_TEST(isola::decode<std::int16_t>(tail) == 7);
}

BOOST_AUTO_TEST_CASE(decode_into_replaces_the_contents_of_an_existing_object,
                     *boost::unit_test::timeout(30)) {
  std::vector<int> v{9, 9, 9, 9, 9};
  isola::decode_into(isola::encode(std::vector<int>{1, 2}), v);
  BOOST_TEST((v == std::vector<int>{1, 2}));
  std::map<std::string, int> m{{"stale", 1}};
  isola::decode_into(isola::encode(std::map<std::string, int>{{"fresh", 2}}), m);
  BOOST_TEST((m == std::map<std::string, int>{{"fresh", 2}}));
}

BOOST_AUTO_TEST_CASE(decode_rejects_a_bool_byte_greater_than_one, *boost::unit_test::timeout(30)) {
  for (int b : {2, 0x7f, 0x80, 0xff}) {
    BOOST_CHECK_THROW(isola::decode<bool>(raw({b})), isola::decode_error);
    // inside a vector<bool>, an optional's flag and a struct
    auto vb = isola::encode(std::vector<bool>{true, false});
    vb.back() = static_cast<std::byte>(b);
    BOOST_CHECK_THROW(isola::decode<std::vector<bool>>(vb), isola::decode_error);
    auto opt = isola::encode(std::optional<int>{5});
    opt.front() = static_cast<std::byte>(b);
    BOOST_CHECK_THROW(isola::decode<std::optional<int>>(opt), isola::decode_error);
    auto sh = isola::encode(shape{"s", {}, std::nullopt, {}, true});
    sh.back() = static_cast<std::byte>(b);
    BOOST_CHECK_THROW(isola::decode<shape>(sh), isola::decode_error);
  }
  BOOST_TEST(decode_error_of<bool>(raw({2})).find("bool") != std::string::npos);
  BOOST_TEST(isola::decode<bool>(raw({1})) == true);
  BOOST_TEST(isola::decode<bool>(raw({0})) == false);
}

BOOST_AUTO_TEST_CASE(decode_rejects_trailing_garbage, *boost::unit_test::timeout(30)) {
  auto b = isola::encode(42);
  b.push_back(std::byte{0});
  BOOST_CHECK_THROW(isola::decode<int>(b), isola::decode_error);
  BOOST_TEST(decode_error_of<int>(b).find("trailing") != std::string::npos);

  auto d = isola::encode(sample_drawing());
  for (std::size_t extra : {1u, 7u, 8u, 100u}) {
    auto g = d;
    g.insert(g.end(), extra, std::byte{0x5a});
    BOOST_CHECK_THROW(isola::decode<drawing>(g), isola::decode_error);
  }
  // An empty type accepts nothing but nothing.
  BOOST_CHECK_THROW(isola::decode<empty_tag>(raw({0})), isola::decode_error);
}

BOOST_AUTO_TEST_CASE(decode_rejects_every_truncation_of_a_valid_encoding,
                     *boost::unit_test::timeout(30)) {
  auto full = isola::encode(sample_drawing());
  BOOST_TEST_REQUIRE(full.size() > 100u);
  for (std::size_t n = 0; n < full.size(); ++n) {
    std::span<const std::byte> prefix(full.data(), n);
    BOOST_CHECK_THROW(isola::decode<drawing>(prefix), isola::decode_error);
  }
  BOOST_CHECK_THROW(isola::decode<int>(isola::bytes{}), isola::decode_error);
  BOOST_CHECK_THROW(isola::decode<std::uint64_t>(raw({1, 2, 3, 4, 5, 6, 7})), isola::decode_error);
  BOOST_TEST(decode_error_of<int>(raw({1, 2})).find("truncated") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(decode_rejects_a_length_prefix_larger_than_the_input,
                     *boost::unit_test::timeout(10)) {
  // vector<uint64_t> claiming 2^40 elements (8 TiB) in a 100-byte buffer.
  isola::bytes b;
  append_pod(b, std::uint64_t{1} << 40);
  b.resize(100, std::byte{1});
  auto started = std::chrono::steady_clock::now();
  auto what = decode_error_of<std::vector<std::uint64_t>>(b);
  auto took = std::chrono::steady_clock::now() - started;
  // Rejected by the bound check before allocating, not by a failed
  // allocation ("decoding would exhaust memory") or by running out of input.
  BOOST_TEST(what.find("corrupt length") != std::string::npos, what);
  BOOST_TEST(std::chrono::duration<double>(took).count() < 1.0);

  for (std::uint64_t n : {std::uint64_t{1} << 31, std::uint64_t{1} << 62, UINT64_MAX}) {
    isola::bytes c;
    append_pod(c, n);
    c.resize(100, std::byte{1});
    BOOST_TEST(decode_error_of<std::vector<std::uint64_t>>(c).find("corrupt length") !=
               std::string::npos);
    BOOST_TEST(decode_error_of<std::string>(c).find("corrupt length") != std::string::npos);
    BOOST_TEST(decode_error_of<std::vector<std::string>>(c).find("corrupt length") !=
               std::string::npos);
    BOOST_TEST(
        (decode_error_of<std::map<int, int>>(c).find("corrupt length") != std::string::npos));
    BOOST_TEST(decode_error_of<std::vector<empty_tag>>(c).find("corrupt length") !=
               std::string::npos);
  }
}

BOOST_AUTO_TEST_CASE(decode_rejects_a_forged_length_inside_a_nested_structure,
                     *boost::unit_test::timeout(10)) {
  // shape{"s", one vertex}: name prefix at 0, "s" at 8, vertices prefix at 9.
  auto b = isola::encode(shape{"s", {{1, 2}}, std::nullopt, {}, false});
  std::uint64_t n = 0;
  std::memcpy(&n, b.data() + 9, 8);
  BOOST_TEST_REQUIRE(n == 1u);
  n = std::uint64_t{1} << 40;
  std::memcpy(b.data() + 9, &n, 8);
  auto what = decode_error_of<shape>(b);
  BOOST_TEST(what.find("corrupt length") != std::string::npos, what);
}

BOOST_AUTO_TEST_CASE(decode_bounds_lengths_by_the_bytes_left_exactly,
                     *boost::unit_test::timeout(30)) {
  // 10 one-byte elements after the prefix: 10 is accepted, 11 is not.
  auto b = isola::encode(std::vector<std::uint8_t>(10, 3));
  BOOST_TEST(isola::decode<std::vector<std::uint8_t>>(b).size() == 10u);
  std::uint64_t n = 11;
  std::memcpy(b.data(), &n, 8);
  BOOST_TEST(decode_error_of<std::vector<std::uint8_t>>(b).find("corrupt length") !=
             std::string::npos);
  // A length within the bound but larger than the real count still fails
  // (the elements run out), and so does a smaller one (trailing bytes).
  auto w = isola::encode(std::vector<std::uint32_t>{1, 2, 3, 4});
  for (std::uint64_t m : {5u, 16u, 3u, 0u}) {
    auto c = w;
    std::memcpy(c.data(), &m, 8);
    BOOST_CHECK_THROW(isola::decode<std::vector<std::uint32_t>>(c), isola::decode_error);
  }
}

BOOST_AUTO_TEST_CASE(decode_rejects_a_variant_index_out_of_range, *boost::unit_test::timeout(30)) {
  using v = std::variant<int, std::string>;
  for (std::int32_t index : {2, 100, -1, std::numeric_limits<std::int32_t>::min()}) {
    isola::bytes b;
    append_pod(b, index);
    append_pod(b, std::int32_t{0});
    BOOST_CHECK_THROW(isola::decode<v>(b), isola::decode_error);
  }
}

BOOST_AUTO_TEST_CASE(decode_turns_an_exception_from_a_user_load_into_a_decode_error,
                     *boost::unit_test::timeout(30)) {
  BOOST_TEST(isola::decode<positive>(isola::encode(positive{3})).v == 3);
  auto b = isola::encode(positive{-1});
  std::string what;
  try {
    (void)isola::decode<positive>(b);
  } catch (const isola::decode_error& e) {
    what = e.what();
  }
  BOOST_TEST(what.find("positive: got -1") != std::string::npos, what);
}

BOOST_AUTO_TEST_CASE(decode_error_belongs_to_the_isola_error_hierarchy,
                     *boost::unit_test::timeout(30)) {
  BOOST_CHECK_THROW(isola::decode<int>(isola::bytes{}), isola::error);
  BOOST_CHECK_THROW(isola::decode<int>(isola::bytes{}), std::runtime_error);
}

BOOST_AUTO_TEST_CASE(try_decode_returns_nullopt_instead_of_throwing,
                     *boost::unit_test::timeout(30)) {
  static_assert(noexcept(isola::try_decode<int>(std::span<const std::byte>{})));
  BOOST_TEST(!isola::try_decode<int>(isola::bytes{}).has_value());
  BOOST_TEST(!isola::try_decode<bool>(raw({9})).has_value());
  auto trailing = isola::encode(std::string("x"));
  trailing.push_back(std::byte{0});
  BOOST_TEST(!isola::try_decode<std::string>(trailing).has_value());
  isola::bytes huge;
  append_pod(huge, UINT64_MAX);
  BOOST_TEST(!isola::try_decode<std::vector<double>>(huge).has_value());

  auto ok = isola::try_decode<std::string>(isola::encode(std::string("fine")));
  BOOST_TEST_REQUIRE(ok.has_value());
  BOOST_TEST(*ok == "fine");
  auto d = isola::try_decode<drawing>(isola::encode(sample_drawing()));
  BOOST_TEST_REQUIRE(d.has_value());
  BOOST_TEST((*d == sample_drawing()));
}

BOOST_AUTO_TEST_CASE(is_serializable_v_tells_serializable_types_from_the_others,
                     *boost::unit_test::timeout(30)) {
  static_assert(isola::is_serializable_v<int>);
  static_assert(isola::is_serializable_v<double>);
  static_assert(isola::is_serializable_v<std::string>);
  static_assert(isola::is_serializable_v<std::vector<int>>);
  static_assert(isola::is_serializable_v<std::map<std::string, std::vector<int>>>);
  static_assert(isola::is_serializable_v<std::optional<point>>);
  static_assert(isola::is_serializable_v<std::tuple<int, std::string>>);
  static_assert(isola::is_serializable_v<point>);
  static_assert(isola::is_serializable_v<drawing>);
  static_assert(isola::is_serializable_v<temperature>);
  static_assert(isola::is_serializable_v<rgb>);
  static_assert(isola::is_serializable_v<empty_tag>);

  static_assert(!isola::is_serializable_v<not_serializable>);
  static_assert(!isola::is_serializable_v<not_default_constructible>);
  static_assert(!isola::is_serializable_v<std::unique_ptr<int>>);
  BOOST_TEST(isola::is_serializable_v<point>);
  BOOST_TEST(!isola::is_serializable_v<not_serializable>);
}

BOOST_AUTO_TEST_SUITE_END()
