// Container bombs: a small encoding whose length prefix claims as many
// elements as there are bytes left, for every standard container cereal
// encodes with a size prefix (and nested ones). The bounded archive must turn
// each into a decode_error after allocating no more than the input warrants,
// where cereal's own loaders resize first (64 KiB of deque<array<char, 4096>>
// took 256 MiB).
//
// Every check runs in a forked child whose allocations are capped twice: by
// RLIMIT_AS (its size at the start + 256 MiB; not under AddressSanitizer,
// whose shadow memory reserves terabytes of address space) and by a counting
// operator new that refuses any request above the bound and any that would
// take the live total above it. A refused request surfaces as a decode_error
// saying "exhaust memory", which these tests count as a failure: the decoder
// asked for what the input could not justify.
//
// The fuzz case mutates valid encodings of each container type with a fixed
// seed (printed; ISOLA_FUZZ_SEED overrides it) and accepts only success or
// decode_error.
#include <boost/test/unit_test.hpp>

#include <sys/resource.h>

#include <isola/codec.hpp>
#include <isola/error.hpp>
#include <isola/process.hpp>

#include <cereal/types/array.hpp>
#include <cereal/types/deque.hpp>
#include <cereal/types/forward_list.hpp>
#include <cereal/types/list.hpp>
#include <cereal/types/map.hpp>
#include <cereal/types/queue.hpp>
#include <cereal/types/set.hpp>
#include <cereal/types/stack.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/unordered_map.hpp>
#include <cereal/types/unordered_set.hpp>
#include <cereal/types/utility.hpp>
#include <cereal/types/valarray.hpp>
#include <cereal/types/vector.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <forward_list>
#include <functional>
#include <list>
#include <map>
#include <optional>
#include <queue>
#include <random>
#include <set>
#include <span>
#include <sstream>
#include <stack>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <valarray>
#include <vector>

#include "alloc_count.hpp"

namespace bomb_test {

using page = std::array<char, 4096>;  // 4 KiB in memory and on the wire

// An empty type: its elements take no bytes on the wire.
struct nothing {
  template <class A>
  void serialize(A&) {}
  auto operator<=>(const nothing&) const = default;
};

// --- decoding under caps ---------------------------------------------------------

enum class outcome { decoded, decode_error, other_error };

struct result {
  outcome what = outcome::decoded;
  std::string error;
  alloc_count::stats alloc;
};

using decoder = std::function<void(std::span<const std::byte>)>;

template <class T>
decoder decoder_of() {
  return [](std::span<const std::byte> in) { (void)isola::decode<T>(in); };
}

// Any single request above `single_cap`, and any that would take the bytes
// live above `live_cap`, is refused (std::bad_alloc, which the codec reports
// as "decoding would exhaust memory").
result run_capped(const decoder& d, std::span<const std::byte> in, std::size_t single_cap,
                  std::size_t live_cap) {
  result r;
  alloc_count::window w(single_cap, live_cap);
  try {
    d(in);
  } catch (const isola::decode_error& e) {
    r.what = outcome::decode_error;
    r.error = e.what();
  } catch (const std::exception& e) {
    r.what = outcome::other_error;
    r.error = e.what();
  } catch (...) {
    r.what = outcome::other_error;
    r.error = "(not a std::exception)";
  }
  r.alloc = alloc_count::current();
  return r;
}

bool refused_for_memory(const result& r) {
  return r.alloc.refused != 0 || r.error.find("exhaust memory") != std::string::npos;
}

// --- the bombs -------------------------------------------------------------------

struct bomb {
  std::string name;
  isola::bytes payload;
  decoder decode;
};

void put_u64(isola::bytes& out, std::uint64_t v) {
  auto p = reinterpret_cast<const std::byte*>(&v);
  out.insert(out.end(), p, p + 8);
}

// `head` (the encoding up to the forged prefix), then a prefix claiming
// `claim` elements, then `filler` zero bytes.
isola::bytes forge(const isola::bytes& head, std::uint64_t claim, std::size_t filler) {
  isola::bytes b = head;
  put_u64(b, claim);
  b.resize(b.size() + filler);
  return b;
}

isola::bytes u64_head(std::uint64_t v) {
  isola::bytes b;
  put_u64(b, v);
  return b;
}

constexpr std::size_t filler_bytes = 64 * 1024;

template <class T>
void add_bombs(std::vector<bomb>& out, std::string name, const isola::bytes& head = {}) {
  // As many elements as bytes left (passes "one byte per element"), half as
  // many, and counts that cannot fit at all.
  for (std::uint64_t claim : {std::uint64_t{filler_bytes}, std::uint64_t{filler_bytes / 2},
                              std::uint64_t{1} << 32, std::uint64_t{1} << 62, UINT64_MAX})
    out.push_back({name + " claiming " + std::to_string(claim),
                   forge(head, claim, filler_bytes), decoder_of<T>()});
}

std::vector<bomb> all_bombs() {
  std::vector<bomb> b;
  add_bombs<std::vector<page>>(b, "vector<page>");
  add_bombs<std::deque<page>>(b, "deque<page>");
  add_bombs<std::list<page>>(b, "list<page>");
  add_bombs<std::forward_list<page>>(b, "forward_list<page>");
  add_bombs<std::valarray<page>>(b, "valarray<page>");
  add_bombs<std::set<page>>(b, "set<page>");
  add_bombs<std::multiset<page>>(b, "multiset<page>");
  add_bombs<std::unordered_set<std::string>>(b, "unordered_set<string>");
  add_bombs<std::unordered_multiset<std::uint64_t>>(b, "unordered_multiset<uint64>");
  add_bombs<std::map<int, page>>(b, "map<int,page>");
  add_bombs<std::multimap<int, page>>(b, "multimap<int,page>");
  add_bombs<std::unordered_map<int, page>>(b, "unordered_map<int,page>");
  add_bombs<std::unordered_multimap<int, page>>(b, "unordered_multimap<int,page>");
  add_bombs<std::stack<page>>(b, "stack<page> (over a deque)");
  add_bombs<std::queue<page>>(b, "queue<page> (over a deque)");
  add_bombs<std::stack<page, std::list<page>>>(b, "stack<page> (over a list)");
  add_bombs<std::priority_queue<page>>(b, "priority_queue<page> (over a vector)");
  // Arithmetic elements: sizeof(T) bytes each on the wire.
  add_bombs<std::vector<double>>(b, "vector<double>");
  add_bombs<std::deque<double>>(b, "deque<double>");
  add_bombs<std::valarray<double>>(b, "valarray<double>");
  add_bombs<std::u32string>(b, "u32string");
  add_bombs<std::wstring>(b, "wstring");
  // Nested: the inner container's prefix is the lie.
  add_bombs<std::vector<std::deque<page>>>(b, "vector<deque<page>>", u64_head(1));
  add_bombs<std::vector<std::list<page>>>(b, "vector<list<page>>", u64_head(1));
  add_bombs<std::deque<std::valarray<page>>>(b, "deque<valarray<page>>", u64_head(1));
  {
    auto head = u64_head(1);
    head.resize(head.size() + sizeof(int));  // the key, 0
    add_bombs<std::map<int, std::deque<page>>>(b, "map<int,deque<page>>", head);
  }
  // Elements of an empty type take no bytes: each inner vector may claim
  // every byte left, and nesting multiplies (old: 64 KiB took ~256 MiB).
  {
    isola::bytes p;
    const std::uint64_t outer = filler_bytes / 8;
    put_u64(p, outer);
    for (std::uint64_t i = 0; i < outer; ++i) put_u64(p, (outer - 1 - i) * 8);
    b.push_back({"vector<vector<nothing>>, every inner claiming the bytes left", p,
                 decoder_of<std::vector<std::vector<nothing>>>()});
    b.push_back({"deque<deque<nothing>>, every inner claiming the bytes left", p,
                 decoder_of<std::deque<std::deque<nothing>>>()});
    b.push_back({"list<multiset<nothing>>, every inner claiming the bytes left", p,
                 decoder_of<std::list<std::multiset<nothing>>>()});
  }
  return b;
}

// The bounds a bomb's decode must respect: no single request above twice the
// input (a reservation never exceeds the bytes left), nothing near the
// gigabytes claimed live at once (node-based containers cost a few times
// their wire size per element).
std::size_t bomb_single_cap(std::size_t n) { return 2 * n + 1024; }
std::size_t bomb_live_cap(std::size_t n) { return 64 * n + (64 << 10); }

// --- the fuzz corpus ---------------------------------------------------------------

struct sample {
  std::string name;
  isola::bytes encoding;
  decoder decode;
};

template <class T>
sample make_sample(std::string name, const T& v) {
  return {std::move(name), isola::encode(v), decoder_of<T>()};
}

std::vector<sample> fuzz_corpus() {
  std::vector<sample> c;
  c.push_back(make_sample("deque<string>", std::deque<std::string>{"a", "", "bcd", "efghij"}));
  c.push_back(make_sample("deque<int>", std::deque<int>{1, -2, 3, 40000}));
  c.push_back(make_sample("list<array<char,16>>", std::list<std::array<char, 16>>(3)));
  // Elements large in memory and on the wire: a count that lies costs their
  // size per byte left where a loader resizes first.
  using chunk = std::array<char, 512>;
  c.push_back(make_sample("deque<array<char,512>>", std::deque<chunk>(2)));
  c.push_back(make_sample("forward_list<array<char,512>>", std::forward_list<chunk>(2)));
  c.push_back(make_sample("valarray<array<char,512>>", std::valarray<chunk>(2)));
  c.push_back(make_sample("vector<list<array<char,512>>>",
                          std::vector<std::list<chunk>>{std::list<chunk>(2)}));
  c.push_back(make_sample("forward_list<string>",
                          std::forward_list<std::string>{"x", "yy", "", "zzzz"}));
  c.push_back(make_sample("valarray<double>", std::valarray<double>{0.5, 1.5, -2.0}));
  c.push_back(make_sample("valarray<string>", std::valarray<std::string>{"p", "qq"}));
  c.push_back(make_sample("set<string>", std::set<std::string>{"a", "b", "cc"}));
  c.push_back(make_sample("multiset<int>", std::multiset<int>{1, 1, 2, 3}));
  c.push_back(make_sample("unordered_set<string>",
                          std::unordered_set<std::string>{"one", "two", "three"}));
  c.push_back(make_sample("unordered_multiset<int>", std::unordered_multiset<int>{5, 5, 6}));
  c.push_back(make_sample("map<string,deque<int>>",
                          std::map<std::string, std::deque<int>>{{"a", {1, 2}}, {"b", {}}}));
  c.push_back(make_sample("multimap<int,string>",
                          std::multimap<int, std::string>{{1, "a"}, {1, "b"}, {2, ""}}));
  c.push_back(make_sample("unordered_map<string,list<int>>",
                          std::unordered_map<std::string, std::list<int>>{{"k", {7, 8}}}));
  c.push_back(make_sample("unordered_multimap<int,int>",
                          std::unordered_multimap<int, int>{{1, 2}, {1, 3}}));
  {
    std::stack<std::string> s;
    s.push("bottom");
    s.push("top");
    c.push_back(make_sample("stack<string>", s));
  }
  {
    std::queue<int> q;
    q.push(1);
    q.push(2);
    c.push_back(make_sample("queue<int>", q));
  }
  {
    std::priority_queue<std::string> q;
    q.push("m");
    q.push("zz");
    c.push_back(make_sample("priority_queue<string>", q));
  }
  c.push_back(make_sample("u32string", std::u32string(U"wide text")));
  c.push_back(make_sample("vector<deque<string>>",
                          std::vector<std::deque<std::string>>{{"a", "b"}, {}, {"c"}}));
  // Elements of an empty type: a count needs as many bytes after it (the
  // bounded archive's rule), here the string's.
  c.push_back(make_sample("pair<vector<vector<nothing>>,string>",
                          std::pair<std::vector<std::vector<nothing>>, std::string>{
                              {{nothing{}, nothing{}}, {}}, "padding"}));
  return c;
}

std::size_t fuzz_single_cap(std::size_t n) { return 8 * n + 1024; }
std::size_t fuzz_live_cap(std::size_t n) { return 64 * n + (64 << 10); }

constexpr std::uint64_t default_seed = 0xb0bb1e5eed2024ull;
std::uint64_t fuzz_seed() {
  if (const char* s = std::getenv("ISOLA_FUZZ_SEED")) return std::strtoull(s, nullptr, 0);
  return default_seed;
}

// One random mutation of `in`.
isola::bytes mutate(const isola::bytes& in, std::mt19937_64& rng) {
  auto below = [&](std::size_t n) { return n == 0 ? 0 : static_cast<std::size_t>(rng() % n); };
  isola::bytes g = in;
  switch (rng() % 5) {
    case 0:  // truncate
      g.resize(below(g.size()));
      break;
    case 1: {  // flip a few bytes
      auto flips = 1 + below(8);
      for (std::size_t i = 0; i < flips && !g.empty(); ++i)
        g[below(g.size())] ^= static_cast<std::byte>(1 + below(255));
      break;
    }
    case 2: {  // overwrite 8 bytes with a length, plausible or not
      if (g.size() < 8) break;
      // Half of the time the first bytes: the outermost length prefix.
      auto at = rng() % 2 ? 0 : below(g.size() - 7);
      std::uint64_t v = 0;
      switch (rng() % 4) {
        case 0: v = g.size() - at - 8; break;  // exactly the bytes left
        case 1: v = below(2 * g.size() + 1); break;
        case 2: v = std::uint64_t{1} << (20 + below(44)); break;
        default: v = rng(); break;
      }
      std::memcpy(g.data() + at, &v, 8);
      break;
    }
    case 3: {  // insert random bytes
      auto at = below(g.size() + 1);
      auto n = 1 + below(16);
      isola::bytes extra(n);
      for (auto& x : extra) x = static_cast<std::byte>(rng() & 0xff);
      g.insert(g.begin() + static_cast<std::ptrdiff_t>(at), extra.begin(), extra.end());
      break;
    }
    default: {  // delete a range
      if (g.empty()) break;
      auto at = below(g.size());
      auto n = 1 + below(std::min<std::size_t>(16, g.size() - at));
      g.erase(g.begin() + static_cast<std::ptrdiff_t>(at),
              g.begin() + static_cast<std::ptrdiff_t>(at + n));
      break;
    }
  }
  return g;
}

// --- the child ----------------------------------------------------------------------

#if ISOLA_FUZZ_ASAN
constexpr bool address_space_limit = false;
#else
constexpr bool address_space_limit = true;
#endif

std::optional<std::uint64_t> vm_size_bytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmSize:", 0) == 0) {
      std::istringstream fields(line.substr(7));
      std::uint64_t kib = 0;
      fields >> kib;
      return kib * 1024;
    }
  return std::nullopt;
}

// Exit codes of the children.
constexpr int child_ok = 0;
constexpr int child_limit_failed = 20;
constexpr int child_failures = 21;

int limit_address_space() {
  if (!address_space_limit) return child_ok;
  auto vm = vm_size_bytes();
  rlimit lim{};
  if (!vm || getrlimit(RLIMIT_AS, &lim) != 0) return child_limit_failed;
  lim.rlim_cur = *vm + (std::uint64_t{256} << 20);
  if (lim.rlim_max != RLIM_INFINITY && lim.rlim_max < lim.rlim_cur) lim.rlim_cur = lim.rlim_max;
  if (setrlimit(RLIMIT_AS, &lim) != 0) return child_limit_failed;
  return child_ok;
}

int decode_bombs() {
  if (int rc = limit_address_space(); rc != child_ok) return rc;
  int failures = 0;
  for (const auto& b : all_bombs()) {
    const auto n = b.payload.size();
    auto r = run_capped(b.decode, b.payload, bomb_single_cap(n), bomb_live_cap(n));
    bool ok = r.what == outcome::decode_error && !refused_for_memory(r);
    if (!ok) {
      ++failures;
      std::fprintf(stderr,
                   "bomb %s (%zu bytes): %s, %s; largest request %zu bytes, peak live %lld "
                   "bytes, %zu refused\n",
                   b.name.c_str(), n,
                   r.what == outcome::decoded        ? "decoded"
                   : r.what == outcome::decode_error ? "decode_error"
                                                     : "another exception",
                   r.error.c_str(), r.alloc.largest, static_cast<long long>(r.alloc.peak),
                   r.alloc.refused);
    }
  }
  return failures == 0 ? child_ok : child_failures;
}

int fuzz_containers(std::uint64_t seed, int rounds) {
  if (int rc = limit_address_space(); rc != child_ok) return rc;
  std::mt19937_64 rng(seed);
  int failures = 0, decoded = 0, errors = 0;
  const auto corpus = fuzz_corpus();
  for (int i = 0; i < rounds; ++i) {
    const auto& s = corpus[static_cast<std::size_t>(i) % corpus.size()];
    auto g = mutate(s.encoding, rng);
    // A second mutation now and then, so damage combines.
    if (rng() % 4 == 0) g = mutate(g, rng);
    const auto n = g.size();
    auto r = run_capped(s.decode, g, fuzz_single_cap(n), fuzz_live_cap(n));
    if (r.what == outcome::decoded) ++decoded;
    if (r.what == outcome::decode_error) ++errors;
    if (r.what == outcome::other_error || refused_for_memory(r)) {
      if (++failures <= 20)
        std::fprintf(stderr, "fuzz %s, round %d (%zu bytes): %s (%s); largest request %zu\n",
                     s.name.c_str(), i, n,
                     r.what == outcome::other_error ? "an exception other than decode_error"
                                                    : "refused for memory",
                     r.error.c_str(), r.alloc.largest);
    }
  }
  std::fprintf(stderr, "fuzz: %d rounds, %d decoded, %d decode_errors, %d failures\n", rounds,
               decoded, errors, failures);
  return failures == 0 && decoded > 0 && errors > 0 ? child_ok : child_failures;
}

int run_in_child(const char* name, std::function<int()> body) {
  isola::process_options opts;
  opts.name = name;
  opts.method = isola::start_method::fork;
  isola::process child(opts, [&body]() -> int { return body(); });
  child.start();
  bool ended = child.join(isola::duration(60));
  if (!ended) {
    child.kill();
    child.join();
    BOOST_ERROR(name << " did not finish within 60 s");
    return -1;
  }
  return child.exitcode().value_or(-1);
}

template <class T>
bool same(const T& a, const T& b) {
  if constexpr (requires { (a == b).min(); })
    return a.size() == b.size() && (a.size() == 0 || (a == b).min());
  else if constexpr (requires(T t) {
                       t.top();
                       t.pop();
                     }) {  // stack, priority_queue
    T x = a, y = b;
    for (; !x.empty() && !y.empty(); x.pop(), y.pop())
      if (!(x.top() == y.top())) return false;
    return x.empty() && y.empty();
  } else
    return a == b;
}

template <class T>
void check_round_trip(const std::string& name, const T& v) {
  auto b = isola::encode(v);
  T back{};
  BOOST_CHECK_NO_THROW(back = isola::decode<T>(b));
  BOOST_TEST(same(v, back), name << " does not round-trip");
}

}  // namespace bomb_test

using namespace bomb_test;

BOOST_AUTO_TEST_SUITE(container_bomb)

BOOST_AUTO_TEST_CASE(every_standard_container_round_trips_through_the_bounded_archive,
                     *boost::unit_test::timeout(30)) {
  check_round_trip("vector<page>", std::vector<page>(3));
  check_round_trip("vector<double>", std::vector<double>{1, 2.5, -3});
  check_round_trip("deque<string>", std::deque<std::string>{"a", "", "bcd"});
  check_round_trip("list<int>", std::list<int>{3, 1, 2});
  check_round_trip("forward_list<string>", std::forward_list<std::string>{"x", "y", "z"});
  check_round_trip("valarray<double>", std::valarray<double>{1.5, 2.5});
  check_round_trip("valarray<double> (empty)", std::valarray<double>{});
  check_round_trip("valarray<string>", std::valarray<std::string>{"p", "q", "r"});
  check_round_trip("set<string>", std::set<std::string>{"b", "a"});
  check_round_trip("multiset<int>", std::multiset<int>{2, 2, 1});
  check_round_trip("unordered_set<string>", std::unordered_set<std::string>{"u", "v", "w"});
  check_round_trip("unordered_multiset<int>", std::unordered_multiset<int>{4, 4, 4});
  check_round_trip("map<string,deque<int>>",
                   std::map<std::string, std::deque<int>>{{"a", {1}}, {"b", {2, 3}}});
  check_round_trip("multimap<int,string> (equal keys keep their order)",
                   std::multimap<int, std::string>{{1, "first"}, {1, "second"}, {0, "zero"}});
  check_round_trip("unordered_map<int,string>",
                   std::unordered_map<int, std::string>{{1, "a"}, {2, "b"}});
  check_round_trip("unordered_multimap<int,int>",
                   std::unordered_multimap<int, int>{{1, 1}, {1, 2}, {2, 3}});
  std::stack<int> st;
  st.push(1);
  st.push(2);
  check_round_trip("stack<int>", st);
  std::priority_queue<std::string> pq;
  pq.push("b");
  pq.push("c");
  pq.push("a");
  check_round_trip("priority_queue<string>", pq);
  check_round_trip("u32string", std::u32string(U"caf\u00e9"));
  check_round_trip("wstring", std::wstring(L"wide"));
  // Elements of an empty type take no bytes; a count of them needs as many
  // bytes after it (the bounded archive's rule), here the string's.
  check_round_trip("pair<vector<vector<nothing>>,string>",
                   std::pair<std::vector<std::vector<nothing>>, std::string>{
                       {{nothing{}}, {}, {nothing{}, nothing{}}}, "padding"});
  check_round_trip("pair<deque<nothing>,string>",
                   std::pair<std::deque<nothing>, std::string>{std::deque<nothing>(10),
                                                                std::string(20, 'x')});
}

BOOST_AUTO_TEST_CASE(
    a_container_bomb_of_every_type_is_a_decode_error_under_an_address_space_limit,
    *boost::unit_test::timeout(120)) {
  BOOST_TEST_MESSAGE(all_bombs().size()
                     << " bombs of " << filler_bytes << "+ bytes, in a child"
                     << (address_space_limit ? " under RLIMIT_AS of its size + 256 MiB"
                                             : " (no RLIMIT_AS under AddressSanitizer)")
                     << " with every allocation counted and capped");
  int code = run_in_child("container-bombs", [] { return decode_bombs(); });
  BOOST_TEST(code == child_ok, "child exit code " << code
                                                  << (code == child_limit_failed
                                                          ? ": setrlimit(RLIMIT_AS) failed"
                                                          : " (see the bombs it named above)"));
}

BOOST_AUTO_TEST_CASE(mutated_container_encodings_decode_or_fail_with_decode_error_under_the_cap,
                     *boost::unit_test::timeout(120)) {
  const auto seed = fuzz_seed();
  constexpr int rounds = 20000;
  BOOST_TEST_MESSAGE("container fuzz seed: 0x" << std::hex << seed << std::dec << ", " << rounds
                                               << " rounds (set ISOLA_FUZZ_SEED to change it)");
  int code = run_in_child("container-fuzz", [seed] { return fuzz_containers(seed, rounds); });
  BOOST_TEST(code == child_ok, "child exit code " << code);
}

BOOST_AUTO_TEST_SUITE_END()
