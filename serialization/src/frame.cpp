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
        t[3][(w >> 32) & 0xff] ^ t[2][(w >> 40) & 0xff] ^ t[1][(w >> 48) & 0xff] ^
        t[0][w >> 56];
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
const bool have_sse42 = __builtin_cpu_supports("sse4.2");
#endif

}  // namespace

std::uint32_t crc32c(std::span<const std::byte> data, std::uint32_t crc) noexcept {
  auto p = reinterpret_cast<const unsigned char*>(data.data());
  crc = ~crc;
#if defined(__x86_64__)
  if (have_sse42) return ~crc32c_hw(p, data.size(), crc);
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
  throw type_error("type mismatch: expected " + expected_name + ", got " +
                   type_name_for_tag(got));
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
