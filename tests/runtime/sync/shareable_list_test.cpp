// isola::shareable_list between real processes: a port of CPython's
// _TestSharedMemory cases for ShareableList (Lib/test/_test_multiprocessing.py:
// test_shared_memory_ShareableList_basics, its empty-list part,
// test_shared_memory_ShareableList_pickling and _pickling_dead_object — a
// pickle is a process argument here, or a name), and the hostile cases: a
// child writing garbage into the list's header or into a string's length,
// attaching with the wrong element type, indices out of range. Children run
// under every start method where the method matters.
#include <boost/test/unit_test.hpp>

#include <isola/process.hpp>
#include <isola/shareable_list.hpp>
#include <isola/shared_memory.hpp>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "test_util.hpp"

using namespace std::chrono_literals;
namespace utf = boost::unit_test;

namespace {

isola::process_options with(isola::start_method m) { return {.method = m}; }

// Offsets of the header's fields (shareable_list.hpp).
enum field : std::size_t { magic = 0, tag = 8, length = 16, item = 24, stride = 32, data = 40 };

void poke(isola::shared_memory shm, std::size_t offset, std::uint64_t v) {
  std::memcpy(shm.buf().data() + offset, &v, sizeof v);
}
std::uint64_t peek(const isola::shared_memory& shm, std::size_t offset) {
  std::uint64_t v = 0;
  std::memcpy(&v, shm.buf().data() + offset, sizeof v);
  return v;
}

// --- children -------------------------------------------------------------------

// The port of _pickling: the list the child received is the parent's.
int check_and_change(isola::shareable_list<long long> sl) {
  if (sl.size() != 10 || sl[-1] != 9) return 2;
  sl[4] = 444;  // seen by the parent
  return 0;
}

// By name, in another process.
int attach_by_name_and_change(std::string name) {
  isola::shareable_list<std::string> sl(name);
  if (sl.size() != 3 || std::string(sl[1]) != "HoWdY") return 2;
  sl[2] = "from-child";
  return 0;
}

// Attaches with the wrong element type: 0 if that is a type_error.
int attach_as_double(std::string name) {
  try {
    isola::shareable_list<double> sl(name);
  } catch (const isola::type_error&) {
    return 0;
  }
  return 3;
}

// A sharer writing garbage over the header's field at offset.
int corrupt(isola::shared_memory shm, std::size_t offset, std::uint64_t v) {
  poke(shm, offset, v);
  return 0;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(shareable_list_suite)

// CPython: test_shared_memory_ShareableList_basics (one type per list here:
// the str/bytes items in a list of strings, the numbers in a list of ints).
BOOST_AUTO_TEST_CASE(basics_as_in_cpythons_shareable_list_test, *utf::timeout(30)) {
  isola::shareable_list<std::string> sl{"howdy", "HoWdY", "some", "x"};
  // Index out of range, get and set (IndexError).
  BOOST_CHECK_THROW(sl.get(4), isola::index_error);
  BOOST_CHECK_THROW(sl[4] = "x", isola::index_error);
  BOOST_CHECK_THROW(sl.get(-5), isola::index_error);
  BOOST_TEST(sl.size() == 4u);
  BOOST_TEST(sl.format() == "string[8]");  // Python's "8s": 5 bytes round up to 8
  BOOST_TEST(sl[0] == "howdy");
  BOOST_TEST(sl[-1] == "x");
  BOOST_TEST((sl.to_vector() == std::vector<std::string>{"howdy", "HoWdY", "some", "x"}));
  BOOST_TEST(sl.index("some") == 2u);
  BOOST_CHECK_THROW(sl.index("100"), isola::value_error);
  // A value longer than the slot: ValueError "exceeds available storage",
  // and the item keeps its value.
  try {
    sl[2] = "far too many";
    BOOST_ERROR("a value larger than its slot was accepted");
  } catch (const isola::value_error& e) {
    BOOST_TEST(std::string(e.what()).find("exceeds available storage") != std::string::npos);
  }
  BOOST_TEST(sl[2] == "some");
  sl[0] = "encod\xc3\xa9s";  // exactly 8 bytes of UTF-8
  BOOST_TEST(sl[0] == "encod\xc3\xa9s");
  BOOST_TEST(sl[1] == "HoWdY");                                         // no spillage
  BOOST_CHECK_THROW(sl[0] = "encod\xc3\xa9\x65s", isola::value_error);  // 9 bytes
  BOOST_TEST(sl[1] == "HoWdY");

  isola::shareable_list<long long> nums{-273, 100, 0, 1, 42};
  BOOST_TEST(nums.index(100) == 1u);
  BOOST_TEST(nums[-2] == 1);
  nums[3] = 42;
  BOOST_TEST(nums[3] == 42);
  BOOST_TEST(nums.count(42) == 2u);
  BOOST_TEST(nums.count(7) == 0u);
  BOOST_TEST(nums.format() == "int64");

  // A duplicate: another block, the same items, independent.
  isola::shareable_list<long long> copy(nums.to_vector());
  BOOST_TEST(copy.shm().name() != nums.shm().name());
  BOOST_TEST((copy.to_vector() == nums.to_vector()));
  BOOST_TEST(copy.format() == nums.format());
  copy[-1] = 77;
  BOOST_TEST(copy[-1] == 77);
  BOOST_TEST(nums[-1] != 77);

  // A second handle on the same list, by name.
  isola::shareable_list<long long> tethered(nums.shm().name());
  BOOST_TEST(tethered.shm().name() == nums.shm().name());
  tethered[-1] = 880;
  BOOST_TEST(nums[-1] == 880);
  tethered.shm().close();
  BOOST_CHECK_THROW(tethered.size(), isola::value_error);  // closed in this handle
  BOOST_TEST(nums[-1] == 880);
}

// CPython: the empty-list part of test_shared_memory_ShareableList_basics.
BOOST_AUTO_TEST_CASE(an_empty_list_has_no_items_and_index_is_a_value_error, *utf::timeout(30)) {
  isola::shareable_list<int> empty;
  BOOST_TEST(empty.size() == 0u);
  BOOST_TEST(empty.count(0) == 0u);
  BOOST_CHECK_THROW(empty.index(0), isola::value_error);
  BOOST_CHECK_THROW(empty.get(0), isola::index_error);
  BOOST_CHECK_THROW(empty.get(-1), isola::index_error);
  BOOST_TEST(empty.to_vector().empty());
  isola::shareable_list<std::string> empty_strings(std::vector<std::string>{});
  BOOST_TEST(empty_strings.size() == 0u);
  BOOST_TEST(empty_strings.count("any") == 0u);
  BOOST_CHECK_THROW(empty_strings.index(""), isola::value_error);
  empty.shm().unlink();
  empty.shm().close();
  BOOST_CHECK_THROW(empty.size(), isola::value_error);  // closed
}

struct point {
  double x;
  int tag;
  friend bool operator==(const point&, const point&) = default;
};

int move_point(isola::shareable_list<point> sl) {
  point p = sl[1];
  sl[1] = point{p.x + 1, p.tag + 1};
  return 0;
}

BOOST_AUTO_TEST_CASE(a_list_of_a_trivially_copyable_struct, *utf::timeout(60)) {
  isola::shareable_list<point> sl{{1.5, 1}, {2.5, 2}};
  BOOST_TEST(sl.item_size() == sizeof(point));
  BOOST_TEST(sl.index(point{2.5, 2}) == 1u);
  isola::process p(with(isola::start_method::spawn), move_point, sl);
  p.start();
  BOOST_TEST(p.join(30s));
  BOOST_TEST(p.exitcode() == 0);
  BOOST_TEST((sl.get(1) == point{3.5, 3}));
  BOOST_TEST(sl.count(point{1.5, 1}) == 1u);
}

// CPython: test_shared_memory_ShareableList_pickling. The list travels to a
// child as a process argument (the memfd itself under spawn and forkserver).
BOOST_AUTO_TEST_CASE(a_list_passed_to_a_child_is_the_same_list, *utf::timeout(120)) {
  for (auto m : isola::all_start_methods()) {
    BOOST_TEST_CONTEXT("start method " << m) {
      std::vector<long long> init(10);
      for (int i = 0; i < 10; ++i) init[static_cast<std::size_t>(i)] = i;
      isola::shareable_list<long long> sl(init);
      isola::process p(with(m), check_and_change, sl);
      p.start();
      BOOST_TEST(p.join(30s));
      BOOST_TEST(p.exitcode() == 0);
      BOOST_TEST(sl[4] == 444);
    }
  }
}

BOOST_AUTO_TEST_CASE(a_child_attaches_by_name, *utf::timeout(120)) {
  for (auto m : isola::all_start_methods()) {
    BOOST_TEST_CONTEXT("start method " << m) {
      isola::shareable_list<std::string> sl({"howdy", "HoWdY", "x"}, 16);
      BOOST_TEST(sl.item_size() == 16u);
      isola::process p(with(m), attach_by_name_and_change, sl.shm().name());
      p.start();
      BOOST_TEST(p.join(30s));
      BOOST_TEST(p.exitcode() == 0);
      BOOST_TEST(sl[2] == "from-child");
    }
  }
}

// CPython: test_shared_memory_ShareableList_pickling_dead_object.
BOOST_AUTO_TEST_CASE(after_close_and_unlink_the_name_is_not_found, *utf::timeout(30)) {
  isola::shareable_list<int> sl{1, 2, 3};
  std::string name = sl.shm().name();
  // (Python closes first; here a creator's close() ends the name by itself,
  // so unlink() comes first.)
  sl.shm().unlink();
  sl.shm().close();
  BOOST_CHECK_THROW(isola::shareable_list<int>{name}, isola::file_not_found_error);
  isola::shareable_list<int> other{4, 5};
  isola::shareable_list<int> tethered(other.shm().name());
  other.shm().close();  // the creator's handle: the name ends with it
  BOOST_CHECK_THROW(isola::shareable_list<int>{other.shm().name()}, isola::file_not_found_error);
  BOOST_TEST(tethered[1] == 5);
}

BOOST_AUTO_TEST_CASE(attaching_with_the_wrong_type_is_a_type_error, *utf::timeout(60)) {
  isola::shareable_list<int> ints{1, 2, 3};
  try {
    isola::shareable_list<double> d(ints.shm().name());
    BOOST_ERROR("a list of int32 attached as a list of double");
  } catch (const isola::type_error& e) {
    BOOST_TEST(std::string(e.what()).find("int32") != std::string::npos);
  }
  BOOST_CHECK_THROW(isola::shareable_list<std::string>(ints.shm()), isola::type_error);
  BOOST_CHECK_THROW(isola::shareable_list<unsigned>(ints.shm()), isola::type_error);
  // In another process, by name.
  isola::process p(with(isola::start_method::spawn), attach_as_double, ints.shm().name());
  p.start();
  BOOST_TEST(p.join(30s));
  BOOST_TEST(p.exitcode() == 0);
  // A block that holds no list, or is too small for one.
  isola::shared_memory plain(4096);
  BOOST_CHECK_THROW(isola::shareable_list<int>{plain}, isola::decode_error);
  isola::shared_memory tiny(8);
  BOOST_CHECK_THROW(isola::shareable_list<int>{tiny}, isola::decode_error);
}

BOOST_AUTO_TEST_CASE(indices_out_of_range_are_index_errors, *utf::timeout(30)) {
  isola::shareable_list<int> sl{10, 20, 30};
  BOOST_TEST(sl.get(std::size_t{2}) == 30);
  BOOST_TEST(sl.get(-3) == 10);
  BOOST_CHECK_THROW(sl.get(3), isola::index_error);
  BOOST_CHECK_THROW(sl.get(std::size_t{3}), isola::index_error);
  BOOST_CHECK_THROW(sl.get(std::numeric_limits<std::size_t>::max()), isola::index_error);
  BOOST_CHECK_THROW(sl.get(std::numeric_limits<long long>::min()), isola::index_error);
  BOOST_CHECK_THROW(sl.get(-4), isola::index_error);
  BOOST_CHECK_THROW(sl.set(3, 1), isola::index_error);
  BOOST_CHECK_THROW(sl.set(-4, 1), isola::index_error);
  BOOST_TEST((sl.to_vector() == std::vector<int>{10, 20, 30}));
}

// The header is shared memory any sharer can write. Garbage in any field is
// a clear error at the next access — never a read or write outside the
// block (an unchecked length of 2^40 items would read far past the mapping).
BOOST_AUTO_TEST_CASE(a_child_corrupting_the_header_gives_an_error_not_a_stray_access,
                     *utf::timeout(120)) {
  struct garbage {
    std::size_t offset;
    std::uint64_t value;
    const char* what;
  };
  const garbage cases[] = {
      {length, std::uint64_t{1} << 40, "length"},
      {length, std::numeric_limits<std::uint64_t>::max(), "length (max)"},
      {stride, 1, "stride"},
      {stride, 0, "stride 0"},
      {item, 1u << 20, "item size"},
      {data, 1u << 30, "data offset"},
      {magic, 0x1234, "magic"},
  };
  for (auto m : {isola::start_method::fork, isola::start_method::spawn}) {
    for (const auto& g : cases) {
      BOOST_TEST_CONTEXT("start method " << m << ", " << g.what) {
        isola::shareable_list<std::uint64_t> sl{1, 2, 3, 4};
        const std::uint64_t saved = peek(sl.shm(), g.offset);
        isola::process p(with(m), corrupt, sl.shm(), g.offset, g.value);
        p.start();
        BOOST_TEST(p.join(30s));
        BOOST_REQUIRE(p.exitcode() == 0);
        BOOST_CHECK_THROW(sl.get(1'000'000'000), isola::decode_error);
        BOOST_CHECK_THROW(sl.get(2), isola::decode_error);
        BOOST_CHECK_THROW(sl.set(1'000'000'000, 9), isola::decode_error);
        BOOST_CHECK_THROW(sl.size(), isola::decode_error);
        BOOST_CHECK_THROW(sl.to_vector(), isola::decode_error);
        BOOST_CHECK_THROW(isola::shareable_list<std::uint64_t>{sl.shm().name()},
                          isola::decode_error);
        // Put right again, the list works again.
        poke(sl.shm(), g.offset, saved);
        BOOST_TEST((sl.to_vector() == std::vector<std::uint64_t>{1, 2, 3, 4}));
      }
    }
  }
}

// A string item's stored length is shared memory too.
BOOST_AUTO_TEST_CASE(a_child_corrupting_a_strings_length_gives_an_error, *utf::timeout(60)) {
  isola::shareable_list<std::string> sl{"alpha", "beta"};
  // Item 1's length: after the 64-byte header and item 0 (8 + 8 bytes).
  const std::size_t at = 64 + 16;
  isola::process p(with(isola::start_method::spawn), corrupt, sl.shm(), at, std::uint64_t{1} << 62);
  p.start();
  BOOST_TEST(p.join(30s));
  BOOST_REQUIRE(p.exitcode() == 0);
  BOOST_TEST(sl[0] == "alpha");
  BOOST_CHECK_THROW(sl.get(1), isola::decode_error);
  BOOST_CHECK_THROW(sl.count("beta"), isola::decode_error);
  sl[1] = "gamma";  // a write puts it right
  BOOST_TEST(sl[1] == "gamma");
}

BOOST_AUTO_TEST_SUITE_END()
