// isola/detail/queue_codec.hpp — how a queue<T> turns values into ring bytes
// and back.
//
// The type of a queue is static, so its records carry no frame header or type
// tag; only the two ends of one queue<T> need to agree. Four encodings, picked
// at compile time:
// - raw: arithmetic types and enums (std::byte too): the object's bytes;
// - bulk: std::vector and std::basic_string of raw elements: u64 count, then
//   the elements' bytes, written straight from the container and read straight
//   into the result (no intermediate buffer, whatever the size);
// - message: u64 type tag, then the payload, likewise without a copy;
// - anything else: the cereal encoding (isola::encode), built in a reusable
//   per-thread buffer and decoded in place from the ring where it is
//   contiguous.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "isola/codec.hpp"
#include "isola/detail/shm_ring.hpp"
#include "isola/error.hpp"
#include "isola/message.hpp"

namespace isola::detail {

template <class T>
inline constexpr bool queue_raw_v = ((std::is_arithmetic_v<T> && !std::is_same_v<T, bool>) ||
                                     std::is_enum_v<T>)&&sizeof(T) <= 16;

template <class T>
struct queue_bulk : std::false_type {};
template <class E>
struct queue_bulk<std::vector<E>> : std::bool_constant<queue_raw_v<E>> {
  using element = E;
};
template <class C, class Tr>
struct queue_bulk<std::basic_string<C, Tr>> : std::bool_constant<queue_raw_v<C>> {
  using element = C;
};

/// A per-thread buffer for encodings, reused so that a put allocates nothing
/// once warm.
inline bytes& queue_scratch() {
  thread_local bytes buf;
  return buf;
}
/// Don't let one huge message pin its buffer for the thread's lifetime.
inline void trim_queue_scratch() {
  auto& buf = queue_scratch();
  if (buf.capacity() > (std::size_t{4} << 20)) bytes().swap(buf);
}

/// The bytes of one message: a short prefix and a body.
struct put_parts {
  std::array<std::byte, 16> prefix{};
  std::size_t prefix_len = 0;
  std::span<const std::byte> body;
  std::span<const std::byte> head() const noexcept { return {prefix.data(), prefix_len}; }
};

template <class T>
put_parts queue_encode(const T& v) {
  put_parts p;
  if constexpr (queue_raw_v<T>) {
    std::memcpy(p.prefix.data(), &v, sizeof(T));
    p.prefix_len = sizeof(T);
  } else if constexpr (queue_bulk<T>::value) {
    std::uint64_t n = v.size();
    std::memcpy(p.prefix.data(), &n, 8);
    p.prefix_len = 8;
    p.body = std::as_bytes(std::span(v.data(), v.size()));
  } else if constexpr (std::is_same_v<T, message>) {
    std::uint64_t tag = v.type_tag();
    std::memcpy(p.prefix.data(), &tag, 8);
    p.prefix_len = 8;
    p.body = v.payload();
  } else {
    auto& buf = queue_scratch();
    buf.clear();
    encode_into(v, buf);
    p.body = buf;
  }
  return p;
}

/// Receives one T from the ring (see ring_sink): into `value` (get), or, when
/// constructed with a target, into that object (get_into), reusing its
/// memory where the encoding allows: a bulk container keeps its capacity
/// (it is cleared, and reallocated only if too small), a cereal type is
/// decoded in place (its containers keep theirs); a raw value or a message
/// is assigned.
template <class T>
class queue_sink final : public ring_sink {
 public:
  queue_sink() = default;
  explicit queue_sink(T& into) : into_(&into) {}

  std::optional<T> value;

  void whole(std::span<const std::byte> a, std::span<const std::byte> b) override {
    if constexpr (queue_raw_v<T>) {
      if (a.size() + b.size() != sizeof(T)) bad_size(a.size() + b.size());
      T v;
      std::memcpy(&v, a.data(), a.size());
      if (!b.empty()) std::memcpy(reinterpret_cast<std::byte*>(&v) + a.size(), b.data(), b.size());
      deliver(std::move(v));
    } else if constexpr (!queue_bulk<T>::value && !std::is_same_v<T, message>) {
      if (b.empty()) {
        decode_value(a);  // straight from the ring
      } else {
        auto& buf = queue_scratch();
        buf.assign(a.begin(), a.end());
        buf.insert(buf.end(), b.begin(), b.end());
        decode_value(buf);
      }
    } else {
      ring_sink::whole(a, b);
    }
  }

  void begin(std::uint64_t total) override {
    total_ = total;
    got_ = 0;
    if constexpr (queue_raw_v<T>) {
      if (total != sizeof(T)) bad_size(total);
    } else if constexpr (queue_bulk<T>::value || std::is_same_v<T, message>) {
      if (total < 8) bad_size(total);
    } else {
      buf_.clear();
      buf_.reserve(total);
    }
  }

  void append(std::span<const std::byte> piece) override {
    if constexpr (queue_raw_v<T>) {
      std::memcpy(reinterpret_cast<std::byte*>(&raw_) + got_, piece.data(), piece.size());
      got_ += piece.size();
    } else if constexpr (queue_bulk<T>::value || std::is_same_v<T, message>) {
      // The first 8 bytes are the count (or tag), possibly split.
      while (got_ < 8 && !piece.empty()) {
        lead_[got_++] = piece.front();
        piece = piece.subspan(1);
        if (got_ == 8) start_body();
      }
      if (piece.empty()) return;
      got_ += piece.size();
      append_body(piece);
    } else {
      buf_.insert(buf_.end(), piece.begin(), piece.end());
    }
  }

  void end() override {
    if constexpr (queue_raw_v<T>) {
      deliver(T(raw_));
    } else if constexpr (queue_bulk<T>::value) {
      if (!into_) value.emplace(std::move(bulk_));
    } else if constexpr (std::is_same_v<T, message>) {
      std::uint64_t tag;
      std::memcpy(&tag, lead_.data(), 8);
      deliver(message(tag, std::move(payload_)));
    } else {
      decode_value(buf_);
      bytes().swap(buf_);
    }
  }

  void reset() noexcept override {
    got_ = 0;
    carry_len_ = 0;
    if constexpr (queue_bulk<T>::value) {
      if (into_)
        into_->clear();  // a message that was aborted: keep the capacity for the next
      else
        bulk_ = T();
    }
    if constexpr (std::is_same_v<T, message>) bytes().swap(payload_);
    if constexpr (!queue_raw_v<T> && !queue_bulk<T>::value && !std::is_same_v<T, message>)
      bytes().swap(buf_);
  }

 private:
  [[noreturn]] static void bad_size(std::uint64_t n) {
    throw decode_error("queue: a message of " + std::to_string(n) +
                       " bytes is not an encoding of the queue's type");
  }

  void deliver(T&& v) {
    if (into_)
      *into_ = std::move(v);
    else
      value.emplace(std::move(v));
  }

  void decode_value(std::span<const std::byte> in) {
    if (into_)
      decode_into(in, *into_);
    else
      value.emplace(decode<T>(in));
  }

  // Where a bulk value is assembled: the caller's object, or our own.
  auto& bulk() noexcept {
    if constexpr (queue_bulk<T>::value)
      return into_ ? *into_ : bulk_;
    else
      return bulk_;
  }

  // The container is reserved, not resized: the bytes are appended straight
  // from the ring, so the memory is written once, not zeroed first. A
  // caller's container that is large enough is reused as it is: no
  // allocation, and its pages are already there.
  void start_body() {
    std::uint64_t n;
    std::memcpy(&n, lead_.data(), 8);
    if constexpr (queue_bulk<T>::value) {
      using E = typename queue_bulk<T>::element;
      if (n > (total_ - 8) / sizeof(E) || 8 + n * sizeof(E) != total_) bad_size(total_);
      auto& out = bulk();
      out.clear();
      if (out.capacity() < n) {
        if (into_) T().swap(out);  // free the old block before taking a larger one
        out.reserve(static_cast<std::size_t>(n));
        prepare_receive_buffer(out.data(), n * sizeof(E));
      }
    } else {
      payload_.reserve(static_cast<std::size_t>(total_ - 8));
      prepare_receive_buffer(payload_.data(), total_ - 8);
    }
  }

  // Pieces start at 8-aligned ring offsets and hold whole elements when
  // sizeof(E) divides 8; other element sizes go through a carry buffer.
  void append_body(std::span<const std::byte> piece) {
    if constexpr (queue_bulk<T>::value) {
      using E = typename queue_bulk<T>::element;
      auto& out = bulk();
      if constexpr (8 % sizeof(E) == 0) {
        auto first = reinterpret_cast<const E*>(piece.data());
        out.insert(out.end(), first, first + piece.size() / sizeof(E));
      } else {
        for (std::byte b : piece) {
          carry_[carry_len_++] = b;
          if (carry_len_ == sizeof(E)) {
            E e;
            std::memcpy(&e, carry_.data(), sizeof(E));
            out.push_back(e);
            carry_len_ = 0;
          }
        }
      }
    } else {
      payload_.insert(payload_.end(), piece.begin(), piece.end());
    }
  }

  T* into_ = nullptr;
  std::uint64_t total_ = 0, got_ = 0;
  std::array<std::byte, 8> lead_{};
  std::array<std::byte, 16> carry_{};
  std::size_t carry_len_ = 0;
  [[no_unique_address]] std::conditional_t<queue_raw_v<T>, T, std::byte> raw_{};
  [[no_unique_address]] std::conditional_t<queue_bulk<T>::value, T, std::byte> bulk_{};
  bytes payload_;  // message
  bytes buf_;      // cereal encodings that arrive in chunks
};

}  // namespace isola::detail
