// Tests of isola/message.hpp: wrapping any serializable value, asking for its
// type, getting it back, matching handlers on the type held, and carrying a
// message through the codec and through frames.
#include <boost/test/unit_test.hpp>

#include <isola/codec.hpp>
#include <isola/error.hpp>
#include <isola/frame.hpp>
#include <isola/message.hpp>
#include <isola/type_name.hpp>

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

// A user type at global scope with a pinned wire name.
struct order_placed {
  std::string id;
  std::vector<std::string> items;
  double total = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(id, items, total);
  }
  bool operator==(const order_placed&) const = default;
};
ISOLA_TYPE_NAME(order_placed, "shop.order_placed")

namespace message_test {

struct ping {
  int seq = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(seq);
  }
};

// What a caller of a function taking a message passes: any value.
std::uint64_t tag_of(const isola::message& m) { return m.type_tag(); }

std::string type_error_of(auto&& f) {
  try {
    f();
  } catch (const isola::type_error& e) {
    return e.what();
  }
  return "(no type_error)";
}

}  // namespace message_test

using namespace message_test;

BOOST_AUTO_TEST_SUITE(message)

BOOST_AUTO_TEST_CASE(a_default_message_is_empty_and_holds_no_type, *boost::unit_test::timeout(30)) {
  isola::message m;
  BOOST_TEST(m.empty());
  BOOST_TEST(m.type_tag() == 0u);
  BOOST_TEST(m.type_name() == "empty message");
  BOOST_TEST(!m.is<int>());
  BOOST_CHECK_THROW(m.get<int>(), isola::type_error);
  BOOST_TEST(type_error_of([&] { m.match([](int) {}); }).find("empty message") !=
             std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_message_is_constructed_implicitly_from_any_serializable_value,
                     *boost::unit_test::timeout(30)) {
  isola::message a = 42;
  BOOST_TEST(!a.empty());
  BOOST_TEST(a.type_tag() == isola::type_tag<int>());
  BOOST_TEST(a.type_name() == "int32");
  BOOST_TEST(tag_of(std::string("x")) == isola::type_tag<std::string>());
  BOOST_TEST(tag_of(order_placed{}) == isola::type_tag<order_placed>());
  std::vector<isola::message> box{1, std::string("two"), 3.0, order_placed{"o", {}, 0}};
  BOOST_TEST(box[0].is<int>());
  BOOST_TEST(box[1].is<std::string>());
  BOOST_TEST(box[2].is<double>());
  BOOST_TEST(box[3].is<order_placed>());
  // The payload is the codec's encoding of the value.
  BOOST_TEST((std::vector<std::byte>(a.payload().begin(), a.payload().end()) == isola::encode(42)));
}

BOOST_AUTO_TEST_CASE(is_is_true_only_for_the_type_held, *boost::unit_test::timeout(30)) {
  isola::message m = std::string("hello");
  BOOST_TEST(m.is<std::string>());
  BOOST_TEST(!m.is<int>());
  BOOST_TEST(!m.is<std::vector<char>>());
  BOOST_TEST(!m.is<isola::message>());
  isola::message n = std::uint32_t{1};
  BOOST_TEST(n.is<std::uint32_t>());
  BOOST_TEST(!n.is<std::int32_t>());
}

BOOST_AUTO_TEST_CASE(get_returns_the_value_held, *boost::unit_test::timeout(30)) {
  isola::message m = 42;
  BOOST_TEST(m.get<int>() == 42);
  BOOST_TEST(m.get<int>() == 42);  // repeatable
  order_placed o{"A-17", {"apple", "pear"}, 3.5};
  isola::message mo = o;
  BOOST_TEST((mo.get<order_placed>() == o));
  std::map<std::string, std::vector<int>> big{{"a", {1, 2, 3}}};
  BOOST_TEST((isola::message(big).get<decltype(big)>() == big));
}

BOOST_AUTO_TEST_CASE(get_of_the_wrong_type_is_a_type_error_and_leaves_the_message_usable,
                     *boost::unit_test::timeout(30)) {
  isola::message m = 42;
  const isola::message before = m;
  auto what = type_error_of([&] { (void)m.get<std::string>(); });
  BOOST_TEST(what.find("string") != std::string::npos, what);
  BOOST_TEST(what.find("int32") != std::string::npos, what);
  BOOST_TEST((m == before));
  BOOST_TEST(m.is<int>());
  BOOST_TEST(m.get<int>() == 42);

  isola::message o = order_placed{};
  auto w = type_error_of([&] { (void)o.get<int>(); });
  BOOST_TEST(w.find("shop.order_placed") != std::string::npos, w);
}

BOOST_AUTO_TEST_CASE(get_of_a_corrupt_payload_is_a_decode_error, *boost::unit_test::timeout(30)) {
  isola::message m(isola::type_tag<int>(), isola::bytes{std::byte{1}, std::byte{2}});
  BOOST_TEST(m.is<int>());
  BOOST_CHECK_THROW(m.get<int>(), isola::decode_error);
  BOOST_CHECK_THROW(m.match([](int) {}), isola::decode_error);
}

BOOST_AUTO_TEST_CASE(match_calls_the_handler_for_the_type_held, *boost::unit_test::timeout(30)) {
  auto describe = [](const isola::message& m) {
    return m.match([](int i) { return "int " + std::to_string(i); },
                   [](const std::string& s) { return "string " + s; },
                   [](const order_placed& o) { return "order " + o.id; },
                   [](double d) { return "double " + std::to_string(static_cast<int>(d)); });
  };
  BOOST_TEST(describe(7) == "int 7");
  BOOST_TEST(describe(std::string("abc")) == "string abc");
  BOOST_TEST(describe(order_placed{"B-2", {}, 0}) == "order B-2");
  BOOST_TEST(describe(2.0) == "double 2");

  // Handlers returning void, and taking by value or by const reference.
  int got = 0;
  isola::message(5).match([&](std::string) { got = -1; }, [&](const int& i) { got = i; });
  BOOST_TEST(got == 5);
}

BOOST_AUTO_TEST_CASE(match_calls_the_first_handler_that_fits, *boost::unit_test::timeout(30)) {
  isola::message m = 3;
  int r = m.match([](int) { return 1; }, [](int) { return 2; },
                  [](const isola::message&) { return 3; });
  BOOST_TEST(r == 1);
  // A catch-all first takes everything.
  r = m.match([](const isola::message&) { return 4; }, [](int) { return 5; });
  BOOST_TEST(r == 4);
}

BOOST_AUTO_TEST_CASE(match_falls_back_to_a_catch_all_message_handler,
                     *boost::unit_test::timeout(30)) {
  isola::message m = ping{9};
  std::uint64_t seen = 0;
  std::string r = m.match([](int) { return std::string("int"); },
                          [&](const isola::message& other) {
                            seen = other.type_tag();
                            return "other " + other.type_name();
                          });
  BOOST_TEST(seen == isola::type_tag<ping>());
  BOOST_TEST(r == "other message_test::ping");
  // The catch-all can decode what it got.
  int seq = m.match([](const std::string&) { return -1; },
                    [](const isola::message& x) { return x.get<ping>().seq; });
  BOOST_TEST(seq == 9);
}

BOOST_AUTO_TEST_CASE(match_with_no_fitting_handler_is_a_type_error_naming_the_type,
                     *boost::unit_test::timeout(30)) {
  isola::message m = std::vector<int>{1, 2};
  bool called = false;
  auto what = type_error_of(
      [&] { m.match([&](int) { called = true; }, [&](const std::string&) { called = true; }); });
  BOOST_TEST(!called);
  BOOST_TEST(what.find("vector<int32>") != std::string::npos, what);
  BOOST_TEST(m.get<std::vector<int>>().size() == 2u);  // still usable
}

BOOST_AUTO_TEST_CASE(a_message_round_trips_through_encode_and_decode,
                     *boost::unit_test::timeout(30)) {
  isola::message m = order_placed{"C-3", {"x", "y"}, 9.25};
  auto b = isola::encode(m);
  auto back = isola::decode<isola::message>(b);
  BOOST_TEST((back == m));
  BOOST_TEST(back.is<order_placed>());
  BOOST_TEST((back.get<order_placed>() == order_placed{"C-3", {"x", "y"}, 9.25}));

  // Heterogeneous collections of messages, and the empty message.
  std::vector<isola::message> v{1, std::string("s"), isola::message{}, std::vector<double>{0.5}};
  auto v2 = isola::decode<std::vector<isola::message>>(isola::encode(v));
  BOOST_TEST_REQUIRE(v2.size() == 4u);
  BOOST_TEST(v2[0].get<int>() == 1);
  BOOST_TEST(v2[1].get<std::string>() == "s");
  BOOST_TEST(v2[2].empty());
  BOOST_TEST((v2[3].get<std::vector<double>>() == std::vector<double>{0.5}));

  // Truncated encodings of a message are decode_errors.
  for (std::size_t n = 0; n < b.size(); ++n)
    BOOST_CHECK_THROW(isola::decode<isola::message>(std::span<const std::byte>(b).first(n)),
                      isola::decode_error);
}

BOOST_AUTO_TEST_CASE(a_message_round_trips_through_to_frame_and_from_frame,
                     *boost::unit_test::timeout(30)) {
  isola::message m = std::map<std::string, int>{{"k", 1}};
  auto f = m.to_frame();
  auto back = isola::message::from_frame(f);
  BOOST_TEST((back == m));
  BOOST_TEST((back.get<std::map<std::string, int>>() == std::map<std::string, int>{{"k", 1}}));

  // A message's frame is the frame of the value it holds, both ways.
  BOOST_TEST((f == isola::encode_frame(std::map<std::string, int>{{"k", 1}})));
  BOOST_TEST(isola::message::from_frame(isola::encode_frame(17)).get<int>() == 17);
  BOOST_TEST(isola::decode_frame<int>(isola::message(17).to_frame()) == 17);

  // A message inside a frame of its own type.
  auto nested = isola::encode_frame(m);
  BOOST_TEST((isola::decode_frame<isola::message>(nested) == m));
  BOOST_TEST(isola::type_name<isola::message>() == "isola.message");
}

BOOST_AUTO_TEST_CASE(from_frame_rejects_a_corrupt_frame, *boost::unit_test::timeout(30)) {
  auto f = isola::message(std::string("payload")).to_frame();
  for (std::size_t i = 0; i < f.size(); ++i) {
    auto g = f;
    g[i] ^= std::byte{0x01};
    BOOST_CHECK_THROW(isola::message::from_frame(g), isola::decode_error);
  }
  BOOST_CHECK_THROW(isola::message::from_frame(std::span<const std::byte>(f).first(f.size() - 1)),
                    isola::decode_error);
}

BOOST_AUTO_TEST_CASE(isola_type_name_pins_the_name_a_message_reports,
                     *boost::unit_test::timeout(30)) {
  isola::message m = order_placed{};
  BOOST_TEST(m.type_name() == "shop.order_placed");
  BOOST_TEST(m.type_tag() == isola::detail::fnv1a64("shop.order_placed"));
  // A message built from the tag alone (as a receiver does) knows the name.
  isola::message r(isola::detail::fnv1a64("shop.order_placed"), isola::encode(order_placed{}));
  BOOST_TEST(r.type_name() == "shop.order_placed");
  BOOST_TEST(r.is<order_placed>());
}

BOOST_AUTO_TEST_SUITE_END()
