#include "isola/frame.hpp"

#include <cstdio>
#include <mutex>
#include <string>
#include <unordered_map>

#include "isola/codec.hpp"
#include "isola/type_name.hpp"

namespace isola {

namespace {

// Table for the software CRC-32C (reflected polynomial 0x82F63B78).
struct crc_table {
  std::uint32_t t[8][256];
  crc_table() {
    for (std::uint32_t i = 0; i < 256; ++i) {
      std::uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
      t[0][i] = c;
    }
    for (std::uint32_t i = 0; i < 256; ++i)
      for (int s = 1; s < 8; ++s) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xff];
  }
};

std::uint32_t crc32c_soft(const unsigned char* p, std::size_t n, std::uint32_t c) noexcept {
  static const crc_table table;
  const auto& t = table.t;
  while (n >= 8) {
    std::uint64_t w;
    std::memcpy(&w, p, 8);
    w ^= c;
    c = t[7][w & 0xff] ^ t[6][(w >> 8) & 0xff] ^ t[5][(w >> 16) & 0xff] ^ t[4][(w >> 24) & 0xff] ^
        t[3][(w >> 32) & 0xff] ^ t[2][(w >> 40) & 0xff] ^ t[1][(w >> 48) & 0xff] ^ t[0][w >> 56];
    p += 8;
    n -= 8;
  }
  while (n--) c = (c >> 8) ^ t[0][(c ^ *p++) & 0xff];
  return c;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) std::uint32_t crc32c_hw(const unsigned char* p, std::size_t n,
                                                          std::uint32_t c) noexcept {
  std::uint64_t c64 = c;
  while (n >= 8) {
    std::uint64_t w;
    std::memcpy(&w, p, 8);
    c64 = __builtin_ia32_crc32di(c64, w);
    p += 8;
    n -= 8;
  }
  auto c32 = static_cast<std::uint32_t>(c64);
  while (n--) c32 = __builtin_ia32_crc32qi(c32, *p++);
  return c32;
}
// Large buffers: three independent streams over consecutive blocks of
// `stripe` bytes keep the crc32 unit busy (one instruction's latency is three
// cycles, its throughput one per cycle), then the three registers are joined.
// Joining needs "this register, followed by `stripe` zero bytes": a linear
// map over GF(2)^32, tabulated once per byte position.
constexpr std::size_t stripe = 8192;

struct zeros_shift {
  std::uint32_t t[4][256];
  __attribute__((target("sse4.2"))) zeros_shift() {
    static const unsigned char zeros[stripe] = {};
    std::uint32_t basis[32];
    for (int i = 0; i < 32; ++i) basis[i] = crc32c_hw(zeros, stripe, 1u << i);
    for (int k = 0; k < 4; ++k)
      for (std::uint32_t b = 0; b < 256; ++b) {
        std::uint32_t v = 0;
        for (int bit = 0; bit < 8; ++bit)
          if (b & (1u << bit)) v ^= basis[k * 8 + bit];
        t[k][b] = v;
      }
  }
  std::uint32_t operator()(std::uint32_t c) const noexcept {
    return t[0][c & 0xff] ^ t[1][(c >> 8) & 0xff] ^ t[2][(c >> 16) & 0xff] ^ t[3][c >> 24];
  }
};

__attribute__((target("sse4.2"))) std::uint32_t crc32c_hw3(const unsigned char* p, std::size_t n,
                                                           std::uint32_t c) noexcept {
  if (n >= 3 * stripe) {
    static const zeros_shift shift;
    while (n >= 3 * stripe) {
      std::uint64_t c0 = c, c1 = 0, c2 = 0;
      for (std::size_t i = 0; i < stripe; i += 8) {
        std::uint64_t a, b, d;
        std::memcpy(&a, p + i, 8);
        std::memcpy(&b, p + stripe + i, 8);
        std::memcpy(&d, p + 2 * stripe + i, 8);
        c0 = __builtin_ia32_crc32di(c0, a);
        c1 = __builtin_ia32_crc32di(c1, b);
        c2 = __builtin_ia32_crc32di(c2, d);
      }
      c = shift(shift(static_cast<std::uint32_t>(c0)) ^ static_cast<std::uint32_t>(c1)) ^
          static_cast<std::uint32_t>(c2);
      p += 3 * stripe;
      n -= 3 * stripe;
    }
  }
  return crc32c_hw(p, n, c);
}

const bool have_sse42 = __builtin_cpu_supports("sse4.2");
#endif

}  // namespace

std::uint32_t crc32c(std::span<const std::byte> data, std::uint32_t crc) noexcept {
  auto p = reinterpret_cast<const unsigned char*>(data.data());
  crc = ~crc;
#if defined(__x86_64__)
  if (have_sse42) return ~crc32c_hw3(p, data.size(), crc);
#endif
  return ~crc32c_soft(p, data.size(), crc);
}

namespace detail {

std::uint32_t frame_crc(std::uint64_t tag, std::span<const std::byte> payload) noexcept {
  std::uint64_t head[2] = {tag, payload.size()};
  auto c = crc32c(std::as_bytes(std::span(head)));
  return crc32c(payload, c);
}

namespace {
struct type_registry {
  std::mutex mutex;
  std::unordered_map<std::uint64_t, std::string> names;
};
type_registry& registry() {
  static auto* r = new type_registry;  // never destroyed: used during static init and exit
  return *r;
}
}  // namespace

std::uint64_t register_type_name(std::uint64_t tag, std::string_view name) {
  auto& r = registry();
  std::lock_guard g(r.mutex);
  r.names.emplace(tag, std::string(name));
  return tag;
}

void throw_type_mismatch(std::uint64_t, const std::string& expected_name, std::uint64_t got) {
  throw type_error("type mismatch: expected " + expected_name + ", got " + type_name_for_tag(got));
}

}  // namespace detail

std::string type_name_for_tag(std::uint64_t tag) {
  auto& r = detail::registry();
  {
    std::lock_guard g(r.mutex);
    if (auto it = r.names.find(tag); it != r.names.end()) return it->second;
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "unknown type (tag 0x%016llx)",
                static_cast<unsigned long long>(tag));
  return buf;
}

frame_header parse_frame_header(std::span<const std::byte> header, std::uint64_t max_size) {
  if (header.size() < frame_header_size)
    throw decode_error("truncated frame: " + std::to_string(header.size()) +
                       " bytes is shorter than a frame header");
  frame_header h;
  std::memcpy(&h, header.data(), sizeof h);
  if (h.magic != frame_magic) throw decode_error("corrupt frame: bad magic");
  if (h.size > max_size)
    throw decode_error("oversize frame: " + std::to_string(h.size) + " bytes, the limit is " +
                       std::to_string(max_size));
  return h;
}

void verify_frame(const frame_header& h, std::span<const std::byte> payload) {
  if (payload.size() != h.size)
    throw decode_error("corrupt frame: header says " + std::to_string(h.size) +
                       " payload bytes, got " + std::to_string(payload.size()));
  if (detail::frame_crc(h.tag, payload) != h.crc)
    throw decode_error("corrupt frame: checksum mismatch");
}

frame_view parse_frame(std::span<const std::byte> frame) {
  auto h = parse_frame_header(frame);
  verify_frame(h, frame.subspan(frame_header_size));
  return {h.tag, frame.subspan(frame_header_size)};
}

void append_frame(std::uint64_t tag, std::span<const std::byte> payload, bytes& out) {
  frame_header h;
  h.tag = tag;
  h.size = payload.size();
  h.crc = detail::frame_crc(tag, payload);
  auto p = reinterpret_cast<const std::byte*>(&h);
  out.insert(out.end(), p, p + sizeof h);
  out.insert(out.end(), payload.begin(), payload.end());
}

}  // namespace isola
