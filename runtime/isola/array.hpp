// isola/array.hpp — a fixed number of objects of a trivially copyable type in
// memory shared by processes (Python's multiprocessing.Array).
//
//   isola::array<double> a(10);               // Array('d', 10): ten zeros
//   isola::array<int> b{1, 2, 3};             // Array('i', [1, 2, 3])
//   isola::process p(work, a);                // a copy goes to the child
//   a.store(3, 1.5);  double x = a.load(3);   // a[3] = 1.5; x = a[3]
//   std::vector<double> all = a.to_vector();  // a[:]
//   { std::scoped_lock g(a.get_lock()); for (auto& e : a.get_obj()) e *= 2; }
//
// The elements live in a memfd shared by every process that has the array,
// exactly like value<T> (see value.hpp): copies made by fork share the
// mapping, forkserver and spawn children receive the memfd as a process
// argument, nothing has a name in /dev/shm.
//
// What every process sees:
// - size() elements, fixed at creation. An index out of range is a
//   value_error (Python: IndexError), and so is assign() of a different size.
// - Synchronized (the default): one rlock guards the whole array; load,
//   store, to_vector and assign take it, so to_vector() is a consistent
//   snapshot. Raw (isola::raw): no lock, get_lock() is a value_error;
//   elements of 1, 2, 4 or 8 bytes are still read and written atomically.
// - Integral T: fetch_add, fetch_sub, exchange, compare_exchange on one
//   element, lock-free (they do not take the lock; see value.hpp).
// - A dead lock holder is reported as for value<T>: lock_owner_died.
#pragma once

#include <atomic>
#include <concepts>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <type_traits>
#include <vector>

#include "isola/detail/shared_data.hpp"
#include "isola/error.hpp"
#include "isola/lock.hpp"
#include "isola/type_name.hpp"

namespace isola {

template <class T>
class array {
  static_assert(std::is_trivially_copyable_v<T>,
                "isola::array<T>: T must be trivially copyable: the elements live in shared "
                "memory that other processes read as bytes. Types that own memory (std::string, "
                "std::vector, ...) cannot be shared this way; send them through an isola::queue "
                "or a pipe instead");
  static_assert(!std::is_const_v<T> && !std::is_volatile_v<T> && !std::is_reference_v<T>,
                "isola::array<T>: T must be a plain object type");

 public:
  using value_type = T;

  /// An empty synchronized array (for decoding; Python: Array(typecode, 0)).
  array() : array(std::size_t{0}) {}
  /// n elements, each T{} (Array(typecode, n)).
  explicit array(std::size_t n) { create(n, true); }
  array(std::size_t n, raw_t) { create(n, false); }
  /// A copy of init (Array(typecode, sequence)).
  array(std::initializer_list<T> init) : array(std::span<const T>(init.begin(), init.size())) {}
  array(std::initializer_list<T> init, raw_t)
      : array(std::span<const T>(init.begin(), init.size()), raw) {}
  explicit array(std::span<const T> init) {
    create(init.size(), true);
    copy_in(init);
  }
  array(std::span<const T> init, raw_t) {
    create(init.size(), false);
    copy_in(init);
  }

  /// Copies share the elements.
  array(const array&) = default;
  array& operator=(const array&) = default;
  array(array&&) noexcept = default;
  array& operator=(array&&) noexcept = default;

  std::size_t size() const noexcept { return size_; }

  /// Element i (under the lock if synchronized).
  T load(std::size_t i) const {
    check(i);
    detail::op_guard g(lock_ptr(), "array::load");
    return detail::load_element(data_ + i);
  }
  /// Replaces element i (under the lock if synchronized).
  void store(std::size_t i, const T& v) {
    check(i);
    detail::op_guard g(lock_ptr(), "array::store");
    detail::store_element(data_ + i, v);
  }
  /// Every element, copied at one instant (if synchronized).
  std::vector<T> to_vector() const {
    std::vector<T> out(size_);
    auto* p = ptr();
    detail::op_guard g(lock_ptr(), "array::to_vector");
    for (std::size_t i = 0; i < size_; ++i) out[i] = detail::load_element(p + i);
    return out;
  }
  /// Replaces every element (a[:] = values); value_error if the sizes differ.
  void assign(std::span<const T> values) {
    if (values.size() != size_)
      throw value_error("array::assign: " + std::to_string(values.size()) +
                        " values for an array of " + std::to_string(size_));
    auto* p = ptr();
    detail::op_guard g(lock_ptr(), "array::assign");
    for (std::size_t i = 0; i < size_; ++i) detail::store_element(p + i, values[i]);
  }

  /// The lock that guards the elements (an rlock). value_error if raw.
  rlock& get_lock() const {
    if (lock_.empty()) detail::throw_raw_has_no_lock("array");
    return lock_;
  }
  bool synchronized() const noexcept { return !lock_.empty(); }

  /// The shared elements themselves (Python's get_obj()), for access under
  /// get_lock(): reads and writes through the span take no lock.
  std::span<T> get_obj() const { return {ptr(), size_}; }

  T fetch_add(std::size_t i, T d) requires std::integral<T> {
    return ref(i).fetch_add(d, std::memory_order_seq_cst);
  }
  T fetch_sub(std::size_t i, T d) requires std::integral<T> {
    return ref(i).fetch_sub(d, std::memory_order_seq_cst);
  }
  T exchange(std::size_t i, T v) requires std::integral<T> {
    return ref(i).exchange(v, std::memory_order_seq_cst);
  }
  bool compare_exchange(std::size_t i, T& expected, T desired) requires std::integral<T> {
    return ref(i).compare_exchange_strong(expected, desired, std::memory_order_seq_cst);
  }

  /// Only while process arguments are encoded/decoded (handle_transfer.hpp).
  template <class Archive>
  void save(Archive& ar) const {
    if (!seg_) detail::throw_handle_empty("array");
    ar(seg_->export_fd());
  }
  // Only an archive (a class): otherwise a.load(i) on a non-const array
  // with a std::size_t lvalue would pick this template over load(i) const.
  template <class Archive>
    requires std::is_class_v<Archive>
  void load(Archive& ar) {
    std::uint32_t index = 0;
    ar(index);
    adopt(detail::adopt_shared_data(index, detail::sync_kind::array, type_tag<T>(), sizeof(T),
                                    alignof(T)));
  }

 private:
  void create(std::size_t n, bool synchronized) {
    adopt(detail::make_shared_data(detail::sync_kind::array, type_tag<T>(), sizeof(T), alignof(T),
                                   n, synchronized, "isola-array"));
    if constexpr (std::is_default_constructible_v<T>) {
      // The memory is zero-filled; T{} may be something else.
      const T zero{};
      for (std::size_t i = 0; i < n; ++i)
        std::memcpy(static_cast<void*>(data_ + i), &zero, sizeof(T));
    }
  }
  void copy_in(std::span<const T> init) {
    if (!init.empty()) std::memcpy(static_cast<void*>(data_), init.data(), init.size_bytes());
  }
  void adopt(detail::shared_data d) {
    seg_ = std::move(d.seg);
    data_ = reinterpret_cast<T*>(d.data);
    size_ = d.count;
    lock_ = rlock(detail::in_segment, d.cell ? seg_ : nullptr, d.cell);
  }
  T* ptr() const {
    if (!seg_) detail::throw_handle_empty("array");
    return data_;
  }
  void check(std::size_t i) const {
    ptr();
    if (i >= size_) detail::throw_index_error(i, size_);
  }
  rlock* lock_ptr() const { return lock_.empty() ? nullptr : &lock_; }
  std::atomic_ref<T> ref(std::size_t i) const {
    static_assert(std::atomic_ref<T>::is_always_lock_free,
                  "isola::array<T>: atomic operations need a lock-free T");
    check(i);
    return std::atomic_ref<T>(data_[i]);
  }

  std::shared_ptr<detail::sync_segment> seg_;
  T* data_ = nullptr;
  std::size_t size_ = 0;
  // Empty for a raw object. A handle: locking it changes shared memory, not this.
  mutable rlock lock_{detail::in_segment, nullptr, nullptr};
};

}  // namespace isola
