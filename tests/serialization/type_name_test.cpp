// Tests of isola/type_name.hpp: the pinned names of fundamental types and
// standard containers, ISOLA_TYPE_NAME, compiler-derived names, and the
// FNV-1a tags derived from them.
#include <boost/test/unit_test.hpp>

#include <isola/type_name.hpp>

#include <array>
#include <cstdint>
#include <cstdio>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

namespace type_name_test {
struct pinned_point {
  int x = 0;
};
struct unpinned_point {
  int x = 0;
};
template <class T>
struct box {
  T v;
};
struct used_during_static_init {};
}  // namespace type_name_test

ISOLA_TYPE_NAME(type_name_test::pinned_point, "demo.point")

namespace type_name_test {
// Computed while the program's static objects are initialised, before main.
const std::uint64_t tag_at_static_init = isola::type_tag<used_during_static_init>();
const std::uint64_t int_tag_at_static_init = isola::type_tag<int>();
}  // namespace type_name_test

using namespace type_name_test;
using isola::detail::fnv1a64;

BOOST_AUTO_TEST_SUITE(type_name)

BOOST_AUTO_TEST_CASE(fnv1a64_matches_the_published_test_vectors, *boost::unit_test::timeout(30)) {
  BOOST_TEST(fnv1a64("") == 0xcbf29ce484222325ull);
  BOOST_TEST(fnv1a64("a") == 0xaf63dc4c8601ec8cull);
  BOOST_TEST(fnv1a64("foobar") == 0x85944171f73967e8ull);
  static_assert(fnv1a64("a") == 0xaf63dc4c8601ec8cull);  // usable at compile time
}

BOOST_AUTO_TEST_CASE(fundamental_types_have_portable_names, *boost::unit_test::timeout(30)) {
  BOOST_TEST(isola::type_name<bool>() == "bool");
  BOOST_TEST(isola::type_name<char>() == "char");
  BOOST_TEST(isola::type_name<std::int8_t>() == "int8");
  BOOST_TEST(isola::type_name<std::uint8_t>() == "uint8");
  BOOST_TEST(isola::type_name<std::int16_t>() == "int16");
  BOOST_TEST(isola::type_name<std::uint16_t>() == "uint16");
  BOOST_TEST(isola::type_name<std::int32_t>() == "int32");
  BOOST_TEST(isola::type_name<std::uint32_t>() == "uint32");
  BOOST_TEST(isola::type_name<std::int64_t>() == "int64");
  BOOST_TEST(isola::type_name<std::uint64_t>() == "uint64");
  BOOST_TEST(isola::type_name<long long>() == "int64");
  BOOST_TEST(isola::type_name<unsigned long long>() == "uint64");
  BOOST_TEST(isola::type_name<float>() == "float32");
  BOOST_TEST(isola::type_name<double>() == "float64");
  BOOST_TEST(isola::type_name<std::string>() == "string");
  BOOST_TEST(isola::type_name<std::byte>() == "byte");
}

BOOST_AUTO_TEST_CASE(long_and_long_long_of_the_same_width_share_a_tag,
                     *boost::unit_test::timeout(30)) {
  if constexpr (sizeof(long) == sizeof(long long)) {
    BOOST_TEST(isola::type_tag<long>() == isola::type_tag<long long>());
    BOOST_TEST(isola::type_tag<unsigned long>() == isola::type_tag<unsigned long long>());
  } else {
    BOOST_TEST(isola::type_tag<long>() == isola::type_tag<int>());
  }
  BOOST_TEST(isola::type_tag<long>() != isola::type_tag<unsigned long>());
}

BOOST_AUTO_TEST_CASE(standard_containers_are_named_after_their_elements,
                     *boost::unit_test::timeout(30)) {
  BOOST_TEST(isola::type_name<std::vector<int>>() == "vector<int32>");
  BOOST_TEST(isola::type_name<std::vector<std::vector<double>>>() == "vector<vector<float64>>");
  BOOST_TEST((isola::type_name<std::array<std::uint8_t, 16>>() == "array<uint8,16>"));
  BOOST_TEST(
      (isola::type_name<std::map<std::string, std::vector<int>>>() == "map<string,vector<int32>>"));
  BOOST_TEST(
      (isola::type_name<std::unordered_map<int, std::string>>() == "unordered_map<int32,string>"));
  BOOST_TEST(isola::type_name<std::set<std::string>>() == "set<string>");
  BOOST_TEST(isola::type_name<std::optional<bool>>() == "optional<bool>");
  BOOST_TEST((isola::type_name<std::pair<int, std::string>>() == "pair<int32,string>"));
  BOOST_TEST(
      (isola::type_name<std::tuple<int, double, std::string>>() == "tuple<int32,float64,string>"));
  BOOST_TEST(isola::type_name<std::tuple<>>() == "tuple<>");
  BOOST_TEST(isola::type_name<std::vector<pinned_point>>() == "vector<demo.point>");
}

BOOST_AUTO_TEST_CASE(isola_type_name_pins_the_name_and_tag_of_a_user_type,
                     *boost::unit_test::timeout(30)) {
  BOOST_TEST(isola::type_name<pinned_point>() == "demo.point");
  BOOST_TEST(isola::type_tag<pinned_point>() == fnv1a64("demo.point"));
  BOOST_TEST(isola::type_name_for_tag(isola::type_tag<pinned_point>()) == "demo.point");
}

BOOST_AUTO_TEST_CASE(an_unpinned_user_type_is_named_by_the_compiler,
                     *boost::unit_test::timeout(30)) {
  auto n = isola::type_name<unpinned_point>();
  BOOST_TEST(n == "type_name_test::unpinned_point");
  BOOST_TEST(isola::type_tag<unpinned_point>() == fnv1a64(n));
  BOOST_TEST(isola::type_name<box<int>>() == "type_name_test::box<int>");
  BOOST_TEST(isola::type_tag<box<int>>() != isola::type_tag<box<long>>());
}

BOOST_AUTO_TEST_CASE(tags_are_the_fnv1a_hash_of_the_name, *boost::unit_test::timeout(30)) {
  BOOST_TEST(isola::type_tag<int>() == fnv1a64("int32"));
  BOOST_TEST(isola::type_tag<std::string>() == fnv1a64("string"));
  BOOST_TEST(isola::type_tag<std::vector<int>>() == fnv1a64("vector<int32>"));
  BOOST_TEST(isola::type_tag<int>() != 0u);
}

BOOST_AUTO_TEST_CASE(distinct_types_get_distinct_tags, *boost::unit_test::timeout(30)) {
  std::set<std::uint64_t> tags{isola::type_tag<bool>(),
                               isola::type_tag<char>(),
                               isola::type_tag<std::int8_t>(),
                               isola::type_tag<std::uint8_t>(),
                               isola::type_tag<std::int16_t>(),
                               isola::type_tag<std::int32_t>(),
                               isola::type_tag<std::uint32_t>(),
                               isola::type_tag<std::int64_t>(),
                               isola::type_tag<float>(),
                               isola::type_tag<double>(),
                               isola::type_tag<std::string>(),
                               isola::type_tag<std::vector<int>>(),
                               isola::type_tag<std::vector<unsigned>>(),
                               isola::type_tag<pinned_point>(),
                               isola::type_tag<unpinned_point>()};
  BOOST_TEST(tags.size() == 15u);
}

BOOST_AUTO_TEST_CASE(type_name_for_tag_names_every_type_this_program_uses,
                     *boost::unit_test::timeout(30)) {
  BOOST_TEST(isola::type_name_for_tag(isola::type_tag<int>()) == "int32");
  BOOST_TEST(isola::type_name_for_tag(isola::type_tag<std::map<std::string, double>>()) ==
             "map<string,float64>");
  BOOST_TEST(isola::type_name_for_tag(isola::type_tag<unpinned_point>()) ==
             "type_name_test::unpinned_point");
  BOOST_TEST(isola::type_name_for_tag(0x00000000000000ffull) ==
             "unknown type (tag 0x00000000000000ff)");
  BOOST_TEST(isola::type_name_for_tag(fnv1a64("never.used")) == "unknown type (tag 0x" + [] {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx",
                  static_cast<unsigned long long>(fnv1a64("never.used")));
    return std::string(buf);
  }() + ")");
}

BOOST_AUTO_TEST_CASE(type_tag_is_right_when_called_during_static_initialisation,
                     *boost::unit_test::timeout(30)) {
  BOOST_TEST(tag_at_static_init == fnv1a64("type_name_test::used_during_static_init"));
  BOOST_TEST(tag_at_static_init == isola::type_tag<used_during_static_init>());
  BOOST_TEST(int_tag_at_static_init == fnv1a64("int32"));
  BOOST_TEST(isola::type_name_for_tag(tag_at_static_init) ==
             "type_name_test::used_during_static_init");
}

BOOST_AUTO_TEST_SUITE_END()
