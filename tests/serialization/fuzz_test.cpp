// Deterministic fuzz of the frame and codec decoders.
//
// A handful of valid frames of varied types is mutated thousands of times
// (truncations, flipped bytes and bits, forged header sizes and in-payload
// length prefixes, appended garbage), both as they are (the checksum catches
// the damage) and re-sealed with a correct checksum (so the bounded decoder
// itself sees the damage). Every mutation must end in isola::decode_error —
// never another exception, never a crash — or, for a re-sealed random flip
// that happens to spell another valid value, in success.
//
// Memory: this file replaces the global operator new/delete with counting
// versions, so each decode is measured: no single allocation may exceed
// 8x the frame size (plus a small constant), and no more than 16x may be live
// at once. Requests above the bound are refused (std::bad_alloc) rather than
// served, so a decoder that regresses fails this test instead of exhausting
// the machine's memory. A child process then decodes frames that claim
// multi-GiB containers under an RLIMIT_AS of its current size + 256 MiB, and
// shows that the limit does stop plain cereal.
//
// The PRNG is std::mt19937_64 with a fixed seed, printed at the start; set
// ISOLA_FUZZ_SEED to run with another one.
#include <boost/test/unit_test.hpp>

#include <malloc.h>
#include <sys/resource.h>

#include <isola/codec.hpp>
#include <isola/error.hpp>
#include <isola/frame.hpp>
#include <isola/message.hpp>
#include <isola/process.hpp>
#include <isola/type_name.hpp>

#include <cereal/archives/binary.hpp>
#include <cereal/cereal.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <new>
#include <optional>
#include <random>
#include <span>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "alloc_count.hpp"

// --- an output archive that records where the length prefixes are ----------

namespace fuzz_test {

// Writes exactly what isola's output_archive writes, and remembers the offset
// of every container size it writes: those are the length prefixes a forger
// would aim at.
class recording_archive
    : public cereal::OutputArchive<recording_archive, cereal::AllowEmptyClassElision> {
 public:
  recording_archive()
      : cereal::OutputArchive<recording_archive, cereal::AllowEmptyClassElision>(this) {}
  void save_binary(const void* data, std::size_t size) {
    auto p = static_cast<const std::byte*>(data);
    out_.insert(out_.end(), p, p + size);
  }
  isola::bytes out_;
  std::vector<std::size_t> size_offsets_;
};

template <class T>
std::enable_if_t<std::is_arithmetic_v<T>> CEREAL_SAVE_FUNCTION_NAME(recording_archive& ar,
                                                                    const T& t) {
  ar.save_binary(std::addressof(t), sizeof t);
}
template <class T>
void CEREAL_SAVE_FUNCTION_NAME(recording_archive& ar, const cereal::NameValuePair<T>& t) {
  ar(t.value);
}
template <class T>
void CEREAL_SAVE_FUNCTION_NAME(recording_archive& ar, const cereal::SizeTag<T>& t) {
  ar.size_offsets_.push_back(ar.out_.size());
  auto n = static_cast<std::uint64_t>(t.size);
  ar.save_binary(&n, sizeof n);
}
template <class T>
void CEREAL_SAVE_FUNCTION_NAME(recording_archive& ar, const cereal::BinaryData<T>& bd) {
  ar.save_binary(bd.data, static_cast<std::size_t>(bd.size));
}

}  // namespace fuzz_test

CEREAL_REGISTER_ARCHIVE(fuzz_test::recording_archive)

// --- the corpus ----------------------------------------------------------------

namespace fuzz_test {

struct position {
  double lat = 0;
  double lon = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(lat, lon);
  }
  bool operator==(const position&) const = default;
};

struct record {
  std::string name;
  position where;
  std::vector<double> samples;
  std::optional<std::string> note;
  std::map<std::string, std::vector<int>> tags;
  std::vector<std::string> aliases;
  std::vector<position> track;
  bool active = false;
  std::tuple<int, std::uint64_t> ids;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(name, where, samples, note, tags, aliases, track, active, ids);
  }
  bool operator==(const record&) const = default;
};

// Large in memory, and exactly as large on the wire.
struct blob {
  std::array<std::uint64_t, 32> words{};
  template <class Archive>
  void serialize(Archive& ar) {
    ar(words);
  }
  bool operator==(const blob&) const = default;
};

}  // namespace fuzz_test

ISOLA_TYPE_NAME(fuzz_test::record, "fuzz.record")
ISOLA_TYPE_NAME(fuzz_test::blob, "fuzz.blob")

namespace fuzz_test {

using decode_fn = std::function<void(std::span<const std::byte>)>;

struct sample {
  std::string name;
  std::uint64_t tag = 0;
  isola::bytes frame;
  std::vector<std::size_t> prefix_offsets;  // length prefixes, as offsets into the payload
  decode_fn decode;                         // decode_frame<T>, and for a message get<T>
  std::span<const std::byte> payload() const {
    return std::span<const std::byte>(frame).subspan(isola::frame_header_size);
  }
};

template <class T>
std::vector<std::size_t> prefix_offsets_of(const T& v) {
  recording_archive ar;
  ar(v);
  BOOST_TEST_REQUIRE((ar.out_ == isola::encode(v)), "recording archive disagrees with encode");
  return ar.size_offsets_;
}

template <class T>
sample make_sample(std::string name, const T& v) {
  sample s;
  s.name = std::move(name);
  s.tag = isola::type_tag<T>();
  s.frame = isola::encode_frame(v);
  s.prefix_offsets = prefix_offsets_of(v);
  s.decode = [](std::span<const std::byte> f) { (void)isola::decode_frame<T>(f); };
  BOOST_TEST_REQUIRE((isola::decode_frame<T>(s.frame) == v), s.name << " does not round-trip");
  return s;
}

// A message holding an Inner: decoding also takes the inner value out when the
// tag still says Inner, so damage behind the inner length prefixes is seen.
template <class Inner>
sample make_message_sample(std::string name, const Inner& inner) {
  isola::message m = inner;
  sample s;
  s.name = std::move(name);
  s.tag = isola::type_tag<isola::message>();
  s.frame = isola::encode_frame(m);
  auto outer = prefix_offsets_of(m);
  BOOST_TEST_REQUIRE(outer.size() == 1u);  // the payload vector's length, after the tag
  s.prefix_offsets = outer;
  for (auto o : prefix_offsets_of(inner)) s.prefix_offsets.push_back(outer[0] + 8 + o);
  s.decode = [](std::span<const std::byte> f) {
    auto got = isola::decode_frame<isola::message>(f);
    if (got.is<Inner>()) (void)got.get<Inner>();
  };
  BOOST_TEST_REQUIRE((isola::decode_frame<isola::message>(s.frame).get<Inner>() == inner));
  return s;
}

record sample_record() {
  record r;
  r.name = "station-42";
  r.where = {52.52, 13.405};
  r.samples = {1.5, -2.25, 3.0, 1e-9};
  r.note = "calibrated";
  r.tags = {{"alpha", {1, 2, 3}}, {"beta", {}}, {"", {-7}}};
  r.aliases = {"s42", "", "berlin-mitte"};
  r.track = {{1, 2}, {3, 4}};
  r.active = true;
  r.ids = {7, 0xfeedfacecafebeefull};
  return r;
}

std::vector<sample> corpus() {
  std::vector<sample> c;
  c.push_back(make_sample("int", 42));
  c.push_back(make_sample("string", std::string("The quick brown fox jumps over the lazy dog")));
  c.push_back(make_sample("vector<double>",
                          std::vector<double>{0.5, -1.25, 3.75, 1e300, -1e-300, 0.0, 42.0, 7.5}));
  c.push_back(
      make_sample("map<string,vector<int>>",
                  std::map<std::string, std::vector<int>>{
                      {"alpha", {1, 2, 3}}, {"beta", {}}, {"gamma", {-1, 40000}}, {"", {7}}}));
  c.push_back(make_sample("record", sample_record()));
  c.push_back(make_sample("vector<blob>", std::vector<blob>(2)));
  c.push_back(make_message_sample("message<record>", sample_record()));
  c.push_back(make_message_sample("message<vector<string>>",
                                  std::vector<std::string>{"x", "yy", "zzz", ""}));
  return c;
}

// --- running one decode --------------------------------------------------------

enum class outcome { decoded, decode_error, type_error, other_error };

const char* to_string(outcome o) {
  switch (o) {
    case outcome::decoded: return "decoded without error";
    case outcome::decode_error: return "decode_error";
    case outcome::type_error: return "type_error";
    case outcome::other_error: return "an exception other than decode_error";
  }
  return "?";
}

struct result {
  outcome what;
  std::string error;  // what() of the exception, if any
  alloc_count::stats alloc;
};

// Decodes with every allocation counted, and any request above `cap` refused.
result run_decode(const sample& s, std::span<const std::byte> frame, std::size_t cap) {
  result r{outcome::decoded, {}, {}};
  alloc_count::window w(cap);
  try {
    s.decode(frame);
  } catch (const isola::decode_error& e) {
    r.what = outcome::decode_error;
    r.error = e.what();
  } catch (const isola::type_error& e) {
    r.what = outcome::type_error;
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

// --- bookkeeping -----------------------------------------------------------------

// The allocation bound every decode must respect.
constexpr std::size_t alloc_factor = 8;
constexpr std::size_t alloc_slack = 1024;
constexpr std::size_t alloc_bound(std::size_t frame_size) {
  return alloc_factor * frame_size + alloc_slack;
}
// And the bound on all the memory live at once while decoding.
constexpr std::size_t peak_factor = 16;
constexpr std::size_t peak_slack = 4096;

struct tally {
  std::size_t mutations = 0;
  std::size_t decode_errors = 0;
  std::size_t decoded = 0;
  std::size_t failures = 0;
  double worst_single_ratio = 0;  // largest single allocation / frame size
  double worst_peak_ratio = 0;    // peak live bytes / frame size
  std::string worst_single_what;
  std::vector<std::string> first_failures;

  void fail(std::string msg) {
    ++failures;
    if (first_failures.size() < 20) first_failures.push_back(std::move(msg));
  }

  // must_fail: only decode_error is acceptable; otherwise decoding to some
  // other valid value is acceptable too.
  void check(const sample& s, std::span<const std::byte> frame, const std::string& what,
             bool must_fail) {
    ++mutations;
    auto r = run_decode(s, frame, alloc_bound(frame.size()));
    if (r.what == outcome::decode_error) ++decode_errors;
    if (r.what == outcome::decoded) ++decoded;
    bool ok = r.what == outcome::decode_error || (!must_fail && r.what == outcome::decoded);
    if (!ok)
      fail(s.name + ", " + what + ": " + to_string(r.what) +
           (r.error.empty() ? "" : " (" + r.error + ")"));
    // Ratios for the report (frames too short to say much left out: their
    // allocations are the error message).
    if (frame.size() >= 64) {
      auto n = static_cast<double>(frame.size());
      double single = static_cast<double>(r.alloc.largest) / n;
      if (single > worst_single_ratio) {
        worst_single_ratio = single;
        worst_single_what = s.name + ", " + what;
      }
      worst_peak_ratio = std::max(worst_peak_ratio, static_cast<double>(r.alloc.peak) / n);
    }
    if (r.alloc.largest > alloc_bound(frame.size()))
      fail(s.name + ", " + what + ": an allocation of " + std::to_string(r.alloc.largest) +
           " bytes while decoding a " + std::to_string(frame.size()) + "-byte frame" +
           (r.alloc.refused ? " (refused by the test)" : ""));
    if (r.alloc.peak > static_cast<std::int64_t>(peak_factor * frame.size() + peak_slack))
      fail(s.name + ", " + what + ": " + std::to_string(r.alloc.peak) +
           " bytes live at the peak while decoding a " + std::to_string(frame.size()) +
           "-byte frame");
  }

  void report(const char* label) const {
    BOOST_TEST_MESSAGE(label << ": " << mutations << " mutations, " << decode_errors
                             << " decode_errors, " << decoded << " decoded to another value; "
                             << "largest single allocation " << worst_single_ratio
                             << "x the frame (" << worst_single_what << "), peak live "
                             << worst_peak_ratio << "x the frame");
    for (const auto& f : first_failures) BOOST_ERROR(f);
    BOOST_TEST(failures == 0u);
  }
};

// --- the PRNG and the mutations -----------------------------------------------------

constexpr std::uint64_t default_seed = 0x15014a5eed2024ull;

std::uint64_t fuzz_seed() {
  if (const char* s = std::getenv("ISOLA_FUZZ_SEED")) return std::strtoull(s, nullptr, 0);
  return default_seed;
}

struct prng {
  std::mt19937_64 gen_;
  explicit prng(std::uint64_t seed) : gen_(seed) {}
  std::uint64_t next() { return gen_(); }
  // Uniform enough in [0, n) for n far below 2^64.
  std::size_t below(std::size_t n) { return static_cast<std::size_t>(gen_() % n); }
  std::byte byte() { return static_cast<std::byte>(gen_() & 0xff); }
  std::byte nonzero_byte() { return static_cast<std::byte>(1 + below(255)); }
};

isola::bytes reseal(std::uint64_t tag, std::span<const std::byte> payload) {
  isola::bytes f;
  isola::append_frame(tag, payload, f);
  return f;
}

void put_u64(std::span<std::byte> at, std::uint64_t v) { std::memcpy(at.data(), &v, 8); }

// Lengths larger than anything that can follow them.
std::vector<std::uint64_t> huge_lengths(std::uint64_t bytes_left, prng& rng) {
  return {bytes_left + 1,
          bytes_left + 8,
          std::uint64_t{1} << 31,
          (std::uint64_t{1} << 31) + 1,
          std::uint64_t{3} << 30,
          (std::uint64_t{1} << 32) + 8,
          std::uint64_t{1} << 33,
          std::uint64_t{1} << 40,
          std::uint64_t{1} << 62,
          std::uint64_t{1} << 63,
          UINT64_MAX,
          UINT64_MAX - 7,
          (rng.next() | (std::uint64_t{1} << 40))};
}

// Damage the checksum does not cover up: every one must be a decode_error.
void raw_mutations(const sample& s, prng& rng, tally& t) {
  const auto& f = s.frame;
  const std::size_t n = f.size();

  for (std::size_t len = 0; len < n; ++len)
    t.check(s, std::span<const std::byte>(f).first(len), "truncated to " + std::to_string(len),
            true);

  for (std::size_t i = 0; i < n; ++i)
    for (int bit = 0; bit < 8; ++bit) {
      auto g = f;
      g[i] ^= static_cast<std::byte>(1 << bit);
      t.check(s, g, "bit " + std::to_string(bit) + " of byte " + std::to_string(i) + " flipped",
              true);
    }

  for (int k = 0; k < 200; ++k) {
    auto g = f;
    auto i = rng.below(n);
    g[i] ^= rng.nonzero_byte();
    t.check(s, g, "byte " + std::to_string(i) + " overwritten", true);
  }

  for (int k = 0; k < 300; ++k) {
    auto g = f;
    auto flips = 2 + rng.below(15);
    for (std::size_t j = 0; j < flips; ++j) g[rng.below(n)] ^= rng.nonzero_byte();
    if (g == f) continue;
    t.check(s, g, std::to_string(flips) + " random bytes flipped", true);
  }

  // Header size field (offset 16).
  const auto payload_size = n - isola::frame_header_size;
  std::vector<std::uint64_t> sizes = huge_lengths(payload_size, rng);
  sizes.insert(sizes.end(), {0, payload_size - 1, payload_size + 1, payload_size * 2});
  for (int k = 0; k < 8; ++k) sizes.push_back(rng.next());
  for (auto v : sizes) {
    if (v == payload_size) continue;
    auto g = f;
    put_u64(std::span<std::byte>(g).subspan(16, 8), v);
    t.check(s, g, "header size set to " + std::to_string(v), true);
  }

  // In-payload length prefixes, checksum left as it was.
  for (auto off : s.prefix_offsets)
    for (auto v : huge_lengths(payload_size - off - 8, rng)) {
      auto g = f;
      put_u64(std::span<std::byte>(g).subspan(isola::frame_header_size + off, 8), v);
      t.check(s, g, "prefix at " + std::to_string(off) + " set to " + std::to_string(v), true);
    }

  for (int k = 0; k < 100; ++k) {
    auto g = f;
    auto extra = 1 + rng.below(64);
    for (std::size_t j = 0; j < extra; ++j) g.push_back(rng.byte());
    t.check(s, g, std::to_string(extra) + " garbage bytes appended", true);
  }
  // A second, valid frame right behind the first one.
  auto twice = f;
  twice.insert(twice.end(), f.begin(), f.end());
  t.check(s, twice, "two frames back to back", true);
}

// Damage behind a valid checksum: the codec must catch it. Truncation,
// garbage and impossible lengths must be decode_errors; a random flip may
// also spell another valid value.
void resealed_mutations(const sample& s, prng& rng, tally& t) {
  const auto p = s.payload();
  const std::size_t n = p.size();

  for (std::size_t len = 0; len < n; ++len)
    t.check(s, reseal(s.tag, p.first(len)), "resealed, payload truncated to " + std::to_string(len),
            true);

  for (int k = 0; k < 50; ++k) {
    isola::bytes g(p.begin(), p.end());
    auto extra = 1 + rng.below(64);
    for (std::size_t j = 0; j < extra; ++j) g.push_back(rng.byte());
    t.check(s, reseal(s.tag, g), "resealed, " + std::to_string(extra) + " garbage bytes appended",
            true);
  }

  for (auto off : s.prefix_offsets) {
    const std::uint64_t left = n - off - 8;
    for (auto v : huge_lengths(left, rng)) {
      isola::bytes g(p.begin(), p.end());
      put_u64(std::span<std::byte>(g).subspan(off, 8), v);
      t.check(s, reseal(s.tag, g),
              "resealed, prefix at " + std::to_string(off) + " set to " + std::to_string(v), true);
    }
    // Lengths that pass the bound but lie: as many as the bytes left, and
    // random ones below.
    std::vector<std::uint64_t> plausible{left, left - left / 2, left / 8 + 1, 0};
    for (int k = 0; k < 6; ++k) plausible.push_back(rng.below(left + 1));
    for (auto v : plausible) {
      isola::bytes g(p.begin(), p.end());
      std::uint64_t was;
      std::memcpy(&was, g.data() + off, 8);
      if (v == was) continue;
      put_u64(std::span<std::byte>(g).subspan(off, 8), v);
      t.check(s, reseal(s.tag, g),
              "resealed, prefix at " + std::to_string(off) + " set to " + std::to_string(v), false);
    }
  }

  for (std::size_t i = 0; i < n; ++i)
    for (int bit = 0; bit < 8; ++bit) {
      isola::bytes g(p.begin(), p.end());
      g[i] ^= static_cast<std::byte>(1 << bit);
      t.check(s, reseal(s.tag, g),
              "resealed, bit " + std::to_string(bit) + " of payload byte " + std::to_string(i) +
                  " flipped",
              false);
    }

  for (int k = 0; k < 200; ++k) {
    isola::bytes g(p.begin(), p.end());
    if (g.empty()) break;
    auto flips = 1 + rng.below(16);
    for (std::size_t j = 0; j < flips; ++j) g[rng.below(n)] ^= rng.nonzero_byte();
    t.check(s, reseal(s.tag, g), "resealed, " + std::to_string(flips) + " payload bytes flipped",
            false);
  }
}

// Frames that claim multi-GiB containers, for the child under RLIMIT_AS.
struct forged {
  std::size_t sample_index;
  std::string what;
  isola::bytes frame;
};

std::vector<forged> multi_gib_forgeries(const std::vector<sample>& c, prng& rng) {
  std::vector<forged> out;
  const std::uint64_t gib_claims[] = {std::uint64_t{1} << 31, std::uint64_t{3} << 30,
                                      std::uint64_t{1} << 32, (std::uint64_t{1} << 34) + 8,
                                      std::uint64_t{1} << 40, UINT64_MAX / 8};
  for (std::size_t i = 0; i < c.size(); ++i) {
    const auto& s = c[i];
    auto p = s.payload();
    for (auto off : s.prefix_offsets)
      for (auto v : gib_claims) {
        isola::bytes g(p.begin(), p.end());
        put_u64(std::span<std::byte>(g).subspan(off, 8), v);
        out.push_back(
            {i, s.name + ": prefix at " + std::to_string(off) + " claims " + std::to_string(v),
             reseal(s.tag, g)});
      }
    // The header claiming a multi-GiB payload.
    for (auto v : gib_claims) {
      auto g = s.frame;
      put_u64(std::span<std::byte>(g).subspan(16, 8), v);
      out.push_back({i, s.name + ": header size " + std::to_string(v), g});
    }
    // And random truncations of the resealed payload.
    for (int k = 0; k < 20 && !p.empty(); ++k) {
      auto len = rng.below(p.size());
      out.push_back({i, s.name + ": resealed truncation to " + std::to_string(len),
                     reseal(s.tag, p.first(len))});
    }
  }
  return out;
}

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

// Exit codes of the child below.
enum child_exit : int {
  child_ok = 0,
  child_no_vm_size = 20,
  child_setrlimit_failed = 21,
  child_limit_does_not_bite = 22,
  child_forgery_not_rejected = 23,
  child_plain_cereal_succeeded = 24,
  child_plain_cereal_wrong_error = 25,
  child_oversize_request = 26,
};

const char* describe_child_exit(int code) {
  switch (code) {
    case child_ok: return "every forgery gave decode_error and the limit stopped plain cereal";
    case child_no_vm_size: return "could not read VmSize from /proc/self/status";
    case child_setrlimit_failed: return "setrlimit(RLIMIT_AS) failed";
    case child_limit_does_not_bite: return "a 512 MiB allocation succeeded under the limit";
    case child_forgery_not_rejected: return "a forged frame did not give decode_error";
    case child_plain_cereal_succeeded: return "plain cereal decoded a 2^31-element claim";
    case child_plain_cereal_wrong_error: return "plain cereal failed with an unexpected exception";
    case child_oversize_request:
      return "decoding a forged frame asked for more memory than the bound (it failed only "
             "because the address-space limit refused it)";
  }
  return "unexpected exit code (an uncaught exception is 1, a signal -N)";
}

// Runs in the child: limits the address space, then decodes.
int decode_under_address_space_limit(const std::vector<sample>& c,
                                     const std::vector<forged>& frames) {
  auto vm = vm_size_bytes();
  if (!vm) return child_no_vm_size;
  rlimit lim{};
  if (getrlimit(RLIMIT_AS, &lim) != 0) return child_setrlimit_failed;
  lim.rlim_cur = *vm + (std::uint64_t{256} << 20);
  if (lim.rlim_max != RLIM_INFINITY && lim.rlim_max < lim.rlim_cur) lim.rlim_cur = lim.rlim_max;
  if (setrlimit(RLIMIT_AS, &lim) != 0) return child_setrlimit_failed;

  // The limit bites: 512 MiB cannot be had.
  try {
    void* p = ::operator new (std::size_t{512} << 20);
    ::operator delete(p);
    return child_limit_does_not_bite;
  } catch (const std::bad_alloc&) {}

  // No cap here: what stops an oversize request is the address-space limit,
  // and the request is then seen in the counts and in the error.
  for (const auto& f : frames) {
    auto r = run_decode(c[f.sample_index], f.frame, SIZE_MAX);
    if (r.what != outcome::decode_error) {
      std::fprintf(stderr, "forged frame (%s): %s %s\n", f.what.c_str(), to_string(r.what),
                   r.error.c_str());
      return child_forgery_not_rejected;
    }
    if (r.alloc.largest > alloc_bound(f.frame.size()) ||
        r.error.find("exhaust memory") != std::string::npos) {
      std::fprintf(stderr, "forged frame (%s): asked for %zu bytes (%s)\n", f.what.c_str(),
                   r.alloc.largest, r.error.c_str());
      return child_oversize_request;
    }
  }

  // Plain cereal, which trusts the length prefix: vector<uint64_t> claiming
  // 2^31 elements (16 GiB) in a 100-byte stream.
  std::stringstream ss;
  std::uint64_t claim = std::uint64_t{1} << 31;
  ss.write(reinterpret_cast<const char*>(&claim), sizeof claim);
  ss.write(std::string(92, '\x01').data(), 92);
  try {
    cereal::BinaryInputArchive ar(ss);
    std::vector<std::uint64_t> v;
    ar(v);
    return child_plain_cereal_succeeded;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "plain cereal: std::bad_alloc, as expected under the limit\n");
  } catch (const cereal::Exception& e) {
    std::fprintf(stderr, "plain cereal: cereal::Exception (%s)\n", e.what());
  } catch (...) {
    return child_plain_cereal_wrong_error;
  }
  return child_ok;
}

}  // namespace fuzz_test

using namespace fuzz_test;

namespace {
// Keeps the compiler from eliding an allocation whose memory is never used.
void escape(void* p) { asm volatile("" : : "g"(p) : "memory"); }
}  // namespace

BOOST_AUTO_TEST_SUITE(fuzz)

BOOST_AUTO_TEST_CASE(the_counting_allocator_sees_what_an_unbounded_decoder_allocates,
                     *boost::unit_test::timeout(30)) {
  // The instrument works: a 1 MiB vector is one 1 MiB allocation.
  alloc_count::stats st;
  {
    alloc_count::window w;
    std::vector<char> v(std::size_t{1} << 20);
    escape(v.data());
    st = alloc_count::current();
  }
  BOOST_TEST(st.largest == std::size_t{1} << 20);
  BOOST_TEST(st.peak >= std::int64_t{1} << 20);

  // Plain cereal, given a 100-byte stream claiming 2^20 uint64s, allocates
  // 8 MiB first and notices the missing bytes afterwards: the bound below
  // would catch a decoder like that.
  std::stringstream ss;
  std::uint64_t claim = std::uint64_t{1} << 20;
  ss.write(reinterpret_cast<const char*>(&claim), sizeof claim);
  ss.write(std::string(92, '\x01').data(), 92);
  bool threw = false;
  {
    alloc_count::window w;
    try {
      cereal::BinaryInputArchive ar(ss);
      std::vector<std::uint64_t> v;
      ar(v);
    } catch (const cereal::Exception&) {
      threw = true;
    }
    st = alloc_count::current();
  }
  BOOST_TEST(threw);
  BOOST_TEST(st.largest >= std::size_t{8} << 20);
  BOOST_TEST(st.largest > alloc_bound(100));

  // A capped window refuses a request above its cap, as a failed allocation,
  // and still counts it.
  bool refused = false;
  {
    alloc_count::window w(1000);
    try {
      std::vector<char> v(std::size_t{1} << 40);
      escape(v.data());
    } catch (const std::bad_alloc&) {
      refused = true;
    }
    st = alloc_count::current();
  }
  BOOST_TEST(refused);
  BOOST_TEST(st.refused == 1u);
  BOOST_TEST(st.largest == std::size_t{1} << 40);
}

BOOST_AUTO_TEST_CASE(an_allocation_failure_while_decoding_is_a_decode_error,
                     *boost::unit_test::timeout(30)) {
  auto s = make_sample("vector<double>", std::vector<double>(100, 1.0));
  // Refuse the 800-byte vector, but not the few bytes the error message needs.
  auto r = run_decode(s, s.frame, 256);
  BOOST_TEST((r.what == outcome::decode_error), to_string(r.what) << " " << r.error);
  BOOST_TEST(r.alloc.refused >= 1u);
  BOOST_TEST(r.error.find("exhaust memory") != std::string::npos, r.error);
  // And with memory to spare, the same frame decodes.
  auto ok = run_decode(s, s.frame, SIZE_MAX);
  BOOST_TEST((ok.what == outcome::decoded), to_string(ok.what) << " " << ok.error);
}

BOOST_AUTO_TEST_CASE(every_mutation_of_a_valid_frame_is_a_decode_error,
                     *boost::unit_test::timeout(300)) {
  const auto seed = fuzz_seed();
  BOOST_TEST_MESSAGE("fuzz seed: 0x" << std::hex << seed << std::dec
                                     << " (set ISOLA_FUZZ_SEED to change it)");
  prng rng(seed);
  auto c = corpus();
  tally t;
  for (const auto& s : c) {
    BOOST_TEST_MESSAGE("  " << s.name << ": " << s.frame.size() << "-byte frame, "
                            << s.prefix_offsets.size() << " length prefixes");
    raw_mutations(s, rng, t);
  }
  t.report("checksummed frames");
  BOOST_TEST(t.mutations >= 5000u);
  BOOST_TEST(t.decode_errors == t.mutations);
}

BOOST_AUTO_TEST_CASE(every_mutation_behind_a_valid_checksum_is_a_decode_error_or_a_valid_value,
                     *boost::unit_test::timeout(300)) {
  const auto seed = fuzz_seed() ^ 0x9e3779b97f4a7c15ull;
  BOOST_TEST_MESSAGE("fuzz seed: 0x" << std::hex << seed << std::dec);
  prng rng(seed);
  auto c = corpus();
  tally t;
  for (const auto& s : c) resealed_mutations(s, rng, t);
  t.report("resealed frames");
  BOOST_TEST(t.mutations >= 5000u);
  // Both outcomes occur: flips inside numbers and strings spell other valid
  // values, the rest is caught.
  BOOST_TEST(t.decode_errors > 0u);
  BOOST_TEST(t.decoded > 0u);
}

BOOST_AUTO_TEST_CASE(
    a_forged_length_of_a_vector_of_large_elements_allocates_in_proportion_to_the_input,
    *boost::unit_test::timeout(30)) {
  // Each blob is 256 bytes in memory and on the wire. A vector<blob> whose
  // length says "as many as there are bytes left" must not make the decoder
  // allocate 256 bytes per byte of input.
  std::vector<blob> v(4);
  auto payload = isola::encode(v);
  const std::uint64_t left = payload.size() - 8;
  put_u64(std::span<std::byte>(payload).first(8), left);
  auto f = reseal(isola::type_tag<std::vector<blob>>(), payload);
  sample s;
  s.name = "vector<blob>";
  s.decode = [](std::span<const std::byte> fr) {
    (void)isola::decode_frame<std::vector<blob>>(fr);
  };
  auto r = run_decode(s, f, SIZE_MAX);
  BOOST_TEST((r.what == outcome::decode_error), to_string(r.what));
  BOOST_TEST(r.alloc.largest <= alloc_bound(f.size()), "largest allocation "
                                                           << r.alloc.largest << " bytes for a "
                                                           << f.size() << "-byte frame");
  BOOST_TEST(r.alloc.peak <= static_cast<std::int64_t>(peak_factor * f.size() + peak_slack),
             "peak " << r.alloc.peak << " bytes for a " << f.size() << "-byte frame");
}

BOOST_AUTO_TEST_CASE(forged_multi_gib_lengths_are_rejected_under_an_address_space_limit,
                     *boost::unit_test::timeout(120)) {
#if ISOLA_FUZZ_ASAN
  BOOST_TEST_MESSAGE(
      "skipped: built with AddressSanitizer, whose shadow memory reserves terabytes of address "
      "space, so an RLIMIT_AS of the process size + 256 MiB cannot be applied");
  BOOST_TEST(true);
#else
  prng rng(fuzz_seed() ^ 0x5bd1e995ull);
  auto c = corpus();
  auto frames = multi_gib_forgeries(c, rng);
  BOOST_TEST_MESSAGE("decoding " << frames.size() << " forged frames in a child under RLIMIT_AS");
  BOOST_TEST_REQUIRE(frames.size() > 100u);

  isola::process_options opts;
  opts.name = "rlimit-decoder";
  opts.method = isola::start_method::fork;
  isola::process child(
      opts, [&c, &frames]() -> int { return decode_under_address_space_limit(c, frames); });
  child.start();
  bool ended = child.join(isola::duration(90));
  if (!ended) {
    child.kill();
    child.join();
  }
  BOOST_TEST_REQUIRE(ended, "the child did not finish within 90 s");
  auto code = child.exitcode();
  BOOST_TEST_REQUIRE(code.has_value());
  BOOST_TEST(*code == 0, "child exit code " << *code << ": " << describe_child_exit(*code));
#endif
}

BOOST_AUTO_TEST_SUITE_END()
