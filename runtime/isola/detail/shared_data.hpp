// isola/detail/shared_data.hpp — the segment under value<T> and array<T>:
// an optional lock cell, then `count` elements of one trivially copyable type.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>

#include "isola/detail/sync_segment.hpp"
#include "isola/lock.hpp"
#include "isola/type_name.hpp"

namespace isola {

/// Asks value<T> / array<T> for memory without a lock (Python's lock=False).
struct raw_t {
  explicit raw_t() = default;
};
inline constexpr raw_t raw{};

namespace detail {

struct shared_data {
  std::shared_ptr<sync_segment> seg;
  std::byte* data = nullptr;
  mutex_cell* cell = nullptr;  // null for raw
  std::size_t count = 0;
};

/// A new segment: a recursive lock (if synchronized) and count elements of
/// elem_size bytes aligned to align, zero-filled.
shared_data make_shared_data(sync_kind kind, std::uint64_t type_tag, std::size_t elem_size,
                             std::size_t align, std::size_t count, bool synchronized,
                             const char* memfd_name);
/// In a child decoding its arguments: checks that the segment holds elements
/// of this type (decode_error naming what it holds otherwise).
shared_data adopt_shared_data(std::uint32_t index, sync_kind kind, std::uint64_t type_tag,
                              std::size_t elem_size, std::size_t align);

[[noreturn]] void throw_raw_has_no_lock(const char* what);
[[noreturn]] void throw_index_error(std::size_t i, std::size_t n);
[[noreturn]] void throw_handle_empty(const char* what);
[[noreturn]] void throw_owner_died_in(const char* what);

/// Element access shared by value and array: a lock-free atomic access where
/// the type allows it (so fetch_add never races with load/store), bytes
/// otherwise.
template <class T>
inline constexpr bool atomic_capable_v = std::is_trivially_copyable_v<T> &&
                                         (sizeof(T) == 1 || sizeof(T) == 2 || sizeof(T) == 4 ||
                                          sizeof(T) == 8) &&
                                         std::atomic_ref<T>::is_always_lock_free;

template <class T>
T load_element(const T* p) noexcept {
  if constexpr (atomic_capable_v<T>)
    return std::atomic_ref<T>(*const_cast<T*>(p)).load(std::memory_order_relaxed);
  else
    return *p;
}

template <class T>
void store_element(T* p, const T& v) noexcept {
  if constexpr (atomic_capable_v<T>)
    std::atomic_ref<T>(*p).store(v, std::memory_order_relaxed);
  else
    *p = v;
}

/// Holds a value's or array's lock for one operation. A dead previous holder
/// is reported after the lock is released again: the operation is not done
/// (what the lock guards may be half-updated), and the next call works.
class op_guard {
 public:
  op_guard(rlock* l, const char* what) : l_(l) {
    if (!l_) return;
    // Under get_lock() already (a read-modify-write): nobody else can touch
    // the object, and taking the rlock once more would only cost time.
    if (l_->held_by_this_thread()) {
      l_ = nullptr;
      return;
    }
    if (l_->acquire_status() == lock_status::owner_died) {
      l_->release();
      throw_owner_died_in(what);
    }
  }
  ~op_guard() {
    if (!l_) return;
    try {
      l_->release();
    } catch (...) {  // cannot happen: this thread holds it
    }
  }
  op_guard(const op_guard&) = delete;
  op_guard& operator=(const op_guard&) = delete;

 private:
  rlock* l_;
};

}  // namespace detail
}  // namespace isola
