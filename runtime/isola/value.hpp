// isola/value.hpp — one object of a trivially copyable type in memory shared
// by processes (Python's multiprocessing.Value).
//
//   isola::value<int> counter{0};            // Value('i', 0)
//   isola::process p(work, counter);         // a copy goes to the child
//   {
//     std::scoped_lock g(counter.get_lock());  // with counter.get_lock():
//     counter.store(counter.load() + 1);       //     counter.value += 1
//   }
//   counter.fetch_add(1);                    // the same, lock-free (integral T)
//   isola::value<double> x(0.5, isola::raw); // Value('d', 0.5, lock=False)
//
// The object lives in a memfd shared by every process that has the value
// (fork shares the mapping; a value given to a forkserver or spawn child as a
// process argument sends the memfd along and the child maps it). Nothing has
// a name in /dev/shm: nothing can leak, even after a SIGKILL.
//
// What every process sees:
// - One object: a store() by any process is what the next load() anywhere
//   returns. Only trivially copyable types can be shared this way (checked at
//   compile time): their bytes are the value. A pointer inside one means
//   nothing in another process; std::string and other types that own memory
//   do not compile — send those through a queue.
// - Synchronized (the default, as in Python): an rlock in the same memory
//   guards it. load() and store() take that lock for the copy, so no process
//   ever sees half of a store. A read-modify-write needs the lock held around
//   it: std::scoped_lock g(v.get_lock()); then load()/store() (recursive, so
//   they work under it) or get_obj(). Without the lock, concurrent "+= 1"s
//   lose updates, exactly as in Python.
// - Raw (isola::raw): no lock; get_lock() is a value_error. load() and
//   store() of a type of 1, 2, 4 or 8 bytes are still single atomic accesses
//   (never torn); larger types can be torn by a concurrent store.
// - Integral T (beyond Python): fetch_add, fetch_sub, exchange and
//   compare_exchange are lock-free atomic operations on the shared object.
//   They do not take the lock: they are atomic with respect to each other and
//   to load()/store(), but a read-modify-write done under get_lock() can
//   still overwrite one of them. Use one style per value.
// - If a process dies holding the lock, the next acquirer of get_lock() gets
//   lock_owner_died (see lock.hpp); a load() or store() that is the first to
//   take the lock after such a death releases it again, does nothing and
//   throws lock_owner_died; calling it again works.
#pragma once

#include <atomic>
#include <concepts>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <type_traits>

#include "isola/detail/shared_data.hpp"
#include "isola/error.hpp"
#include "isola/lock.hpp"
#include "isola/type_name.hpp"

namespace isola {

template <class T>
class value {
  static_assert(std::is_trivially_copyable_v<T>,
                "isola::value<T>: T must be trivially copyable: the object lives in shared "
                "memory that other processes read as bytes. Types that own memory (std::string, "
                "std::vector, ...) cannot be shared this way; send them through an isola::queue "
                "or a pipe instead");
  static_assert(!std::is_const_v<T> && !std::is_volatile_v<T> && !std::is_reference_v<T>,
                "isola::value<T>: T must be a plain object type");

 public:
  using value_type = T;

  /// A synchronized value holding T{} (Python: Value(typecode)).
  value() : value(T{}) {}
  /// A synchronized value holding init (Value(typecode, init)).
  explicit value(const T& init) { create(init, true); }
  /// A value without a lock (Value(typecode, init, lock=False)).
  value(const T& init, raw_t) { create(init, false); }

  /// Copies share the object.
  value(const value&) = default;
  value& operator=(const value&) = default;
  value(value&&) noexcept = default;
  value& operator=(value&&) noexcept = default;

  /// The object's current value (under the lock if synchronized).
  T load() const {
    detail::op_guard g(lock_ptr(), "value::load");
    return detail::load_element(ptr());
  }
  /// Replaces the object (under the lock if synchronized).
  void store(const T& v) {
    detail::op_guard g(lock_ptr(), "value::store");
    detail::store_element(ptr(), v);
  }

  /// The lock that guards the object (Python's get_lock()): an rlock, so
  /// load() and store() work while it is held. value_error if raw.
  rlock& get_lock() const {
    if (lock_.empty()) detail::throw_raw_has_no_lock("value");
    return lock_;
  }
  /// Whether the value has a lock (it was not made raw).
  bool synchronized() const noexcept { return !lock_.empty(); }

  /// The shared object itself (Python's get_obj()), for access under
  /// get_lock(): reads and writes through it take no lock.
  T& get_obj() const { return *ptr(); }

  // Lock-free atomic operations for integral T (they do not take the lock).
  T fetch_add(T d) requires std::integral<T> {
    return ref().fetch_add(d, std::memory_order_seq_cst);
  }
  T fetch_sub(T d) requires std::integral<T> {
    return ref().fetch_sub(d, std::memory_order_seq_cst);
  }
  T exchange(T v) requires std::integral<T> { return ref().exchange(v, std::memory_order_seq_cst); }
  /// If the object equals expected, replaces it with desired and returns
  /// true; otherwise loads it into expected and returns false.
  bool compare_exchange(T& expected, T desired) requires std::integral<T> {
    return ref().compare_exchange_strong(expected, desired, std::memory_order_seq_cst);
  }

  /// Only while process arguments are encoded/decoded (handle_transfer.hpp).
  template <class Archive>
  void save(Archive& ar) const {
    if (!seg_) detail::throw_handle_empty("value");
    ar(seg_->export_fd());
  }
  template <class Archive>
  void load(Archive& ar) {
    std::uint32_t index = 0;
    ar(index);
    adopt(detail::adopt_shared_data(index, detail::sync_kind::value, type_tag<T>(), sizeof(T),
                                    alignof(T)));
  }

 private:
  void create(const T& init, bool synchronized) {
    adopt(detail::make_shared_data(detail::sync_kind::value, type_tag<T>(), sizeof(T), alignof(T),
                                   1, synchronized, "isola-value"));
    std::memcpy(static_cast<void*>(data_), &init, sizeof(T));
  }
  void adopt(detail::shared_data d) {
    seg_ = std::move(d.seg);
    data_ = reinterpret_cast<T*>(d.data);
    lock_ = rlock(detail::in_segment, d.cell ? seg_ : nullptr, d.cell);
  }
  T* ptr() const {
    if (!data_) detail::throw_handle_empty("value");
    return data_;
  }
  rlock* lock_ptr() const { return lock_.empty() ? nullptr : &lock_; }
  std::atomic_ref<T> ref() const {
    static_assert(std::atomic_ref<T>::is_always_lock_free,
                  "isola::value<T>: atomic operations need a lock-free T (shared memory between "
                  "processes cannot use a lock-based std::atomic)");
    return std::atomic_ref<T>(*ptr());
  }

  std::shared_ptr<detail::sync_segment> seg_;
  T* data_ = nullptr;
  // Empty for a raw object. A handle: locking it changes shared memory, not this.
  mutable rlock lock_{detail::in_segment, nullptr, nullptr};
};

}  // namespace isola
