// isola/frame.hpp — one message on the wire: a checked header and a payload.
//
// Layout (host byte order, 24 bytes of header):
//   u32 magic "ISL1" | u32 crc32c(tag, size, payload) | u64 type tag | u64 size
// followed by `size` payload bytes (the codec encoding of the value).
//
// The checksum makes any corruption — a flipped byte anywhere, a truncated or
// over-long frame, a forged length — a decode_error before a single payload
// byte is interpreted, so a receiver can tell "corrupt" from "wrong type":
// only an intact frame of the wrong type is a type_error.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include "isola/codec.hpp"
#include "isola/error.hpp"
#include "isola/type_name.hpp"

namespace isola {

inline constexpr std::uint32_t frame_magic = 0x314c5349;  // "ISL1" little-endian
inline constexpr std::size_t frame_header_size = 24;

struct frame_header {
  std::uint32_t magic = frame_magic;
  std::uint32_t crc = 0;
  std::uint64_t tag = 0;
  std::uint64_t size = 0;
};
static_assert(sizeof(frame_header) == frame_header_size);

/// An intact frame, its payload pointing into the bytes it was parsed from.
struct frame_view {
  std::uint64_t tag;
  std::span<const std::byte> payload;
};

/// CRC-32C (Castagnoli); hardware-accelerated where the CPU has SSE4.2.
std::uint32_t crc32c(std::span<const std::byte> data, std::uint32_t crc = 0) noexcept;

namespace detail {
std::uint32_t frame_crc(std::uint64_t tag, std::span<const std::byte> payload) noexcept;
}  // namespace detail

/// Reads and validates a header: magic, and a size no larger than max_size.
/// Throws decode_error. Lets a stream reader learn how much to read next
/// before allocating for it.
frame_header parse_frame_header(std::span<const std::byte> header,
                                std::uint64_t max_size = UINT64_MAX);

/// Validates a whole frame (header, exact length, checksum); throws
/// decode_error.
frame_view parse_frame(std::span<const std::byte> frame);

/// Checks a payload against a header already parsed; throws decode_error.
void verify_frame(const frame_header& h, std::span<const std::byte> payload);

/// Appends a frame of an already-encoded payload with the given tag.
void append_frame(std::uint64_t tag, std::span<const std::byte> payload, bytes& out);

/// Appends the frame of v to out.
template <class T>
void encode_frame_into(const T& v, bytes& out) {
  auto start = out.size();
  out.resize(start + frame_header_size);
  encode_into(v, out);
  frame_header h;
  h.tag = type_tag<T>();
  h.size = out.size() - start - frame_header_size;
  h.crc =
      detail::frame_crc(h.tag, std::span<const std::byte>(out).subspan(start + frame_header_size));
  std::memcpy(out.data() + start, &h, sizeof h);
}

/// The frame of v.
template <class T>
bytes encode_frame(const T& v) {
  bytes out;
  encode_frame_into(v, out);
  return out;
}

namespace detail {
[[noreturn]] void throw_type_mismatch(std::uint64_t expected, const std::string& expected_name,
                                      std::uint64_t got);
}  // namespace detail

/// Decodes a frame holding a T. Corruption is a decode_error; an intact frame
/// of another type is a type_error naming both types.
template <class T>
T decode_frame(std::span<const std::byte> frame) {
  auto v = parse_frame(frame);
  if (v.tag != type_tag<T>()) detail::throw_type_mismatch(type_tag<T>(), type_name<T>(), v.tag);
  return decode<T>(v.payload);
}

}  // namespace isola
