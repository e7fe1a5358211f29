// isola/lock.hpp — a lock between processes: isola::lock (Python's
// multiprocessing.Lock) and isola::rlock (RLock, recursive).
//
//   isola::lock l;
//   isola::process p(worker, l);             // a copy goes to the child
//   { std::scoped_lock g(l); ... }           // or l.acquire() / l.release()
//   if (l.acquire(2s)) { ...; l.release(); } // timed; try_acquire() never waits
//
// A lock is a robust, process-shared pthread mutex in a memfd shared by every
// process that has the lock (fork shares the mapping; a lock given to a
// forkserver or spawn child as a process argument sends the memfd along).
// Nothing has a name in /dev/shm: nothing can leak, even after a SIGKILL.
//
// What every process sees:
// - At most one thread of one process holds it; lock() waits, try_lock()
//   does not, try_lock_for/until and acquire(timeout) wait at most that long.
//   Both types are BasicLockable and TimedLockable (std::scoped_lock,
//   std::unique_lock work).
// - The holder releases it. Releasing a lock this thread does not hold (never
//   acquired, or held by another thread or process) is a value_error (Python
//   lets another process release a Lock; isola does not, which is what makes
//   the recovery below possible).
// - An rlock may be acquired again by its holder; it is free once released
//   as many times. A plain lock acquired again by its holder would deadlock:
//   acquire() and acquire(t) throw value_error instead, try_acquire() is false.
// - If the holder dies holding it (SIGKILL, crash, a thread that ends), the
//   next acquirer gets it and is told: acquire(), lock(), try_acquire() and
//   the timed forms throw isola::lock_owner_died AFTER taking the lock — the caller holds it
//   when it catches the exception, as with EOWNERDEAD. What the lock guards
//   may be half-updated; repair it, then release. Only that one acquirer is
//   told; the lock works normally afterwards. Never a deadlock.
//
//     try { l.lock(); } catch (const isola::lock_owner_died&) { repair(); }
//     std::unique_lock g(l, std::adopt_lock);      // held either way
//
//   std::scoped_lock g(l) lets the exception out of its constructor with the
//   lock held and no guard to release it: catch it and release (or adopt).
//   acquire_status() reports the same without an exception. try_lock(),
//   try_lock_for() and try_lock_until() throw it too.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "isola/detail/handle_transfer.hpp"
#include "isola/detail/sync_segment.hpp"

namespace isola {

using duration = std::chrono::duration<double>;

/// What acquire_status() found.
enum class lock_status {
  acquired,    ///< taken
  owner_died,  ///< taken, and the previous holder had died holding it
  timed_out,   ///< not taken (busy until the deadline; at once for try_)
};

namespace detail {

struct mutex_cell;

/// The calling thread's kernel id, cached (0: not looked up yet; a fork
/// child's thread starts again at 0).
extern __thread int cached_tid;
int fetch_tid() noexcept;
inline int this_tid() noexcept {
  int t = cached_tid;
  return t ? t : fetch_tid();
}
/// Where a lock cell keeps its holder's thread id: glibc's robust mutex
/// futex word (checked in lock.cpp), FUTEX_TID_MASK bits.
inline constexpr std::size_t mutex_owner_word_offset = 16;
/// The holder's thread id in the owner word (0: free; a holder that died
/// holding it leaves 0 there too, with the owner-died bit).
inline unsigned cell_holder(const mutex_cell* c) noexcept {
  const int* w =
      reinterpret_cast<const int*>(reinterpret_cast<const char*>(c) + mutex_owner_word_offset);
  return static_cast<unsigned>(__atomic_load_n(w, __ATOMIC_ACQUIRE)) & 0x3fffffffu;
}
inline bool cell_held_by_this_thread(const mutex_cell* c) noexcept {
  const int* w =
      reinterpret_cast<const int*>(reinterpret_cast<const char*>(c) + mutex_owner_word_offset);
  return (static_cast<unsigned>(__atomic_load_n(w, __ATOMIC_RELAXED)) & 0x3fffffffu) ==
         static_cast<unsigned>(this_tid());
}

/// Tag for the constructors that make a lock handle on a cell inside another
/// object's segment (value, array, condition).
struct in_segment_t {
  explicit in_segment_t() = default;
};
inline constexpr in_segment_t in_segment{};

/// Everything lock and rlock share: a handle on a robust mutex cell.
class lock_base {
 public:
  /// Takes the lock, waiting as long as it takes. lock_owner_died if the
  /// previous holder died (the lock is then held by the caller).
  void acquire();
  /// Takes the lock if it can by the timeout: false if not.
  /// lock_owner_died as acquire(); value_error for a negative timeout.
  bool acquire(duration timeout);
  /// Takes the lock if it is free now. lock_owner_died as acquire().
  bool try_acquire();
  /// Releases it; value_error if this thread does not hold it.
  void release();

  /// The same three, reporting a dead previous holder instead of throwing.
  lock_status acquire_status();
  lock_status acquire_status(duration timeout);
  lock_status try_acquire_status();

  // BasicLockable, Lockable, TimedLockable.
  void lock() { acquire(); }
  void unlock() { release(); }
  bool try_lock() { return try_acquire(); }
  template <class Rep, class Period>
  bool try_lock_for(const std::chrono::duration<Rep, Period>& timeout) {
    auto st = take(deadline::after_clamped(timeout));
    if (st == lock_status::owner_died) throw_owner_died();
    return st == lock_status::acquired;
  }
  template <class Clock, class Dur>
  bool try_lock_until(const std::chrono::time_point<Clock, Dur>& t) {
    return try_lock_for(t - Clock::now());
  }

  /// Whether some thread of some process holds it now (Python 3.14's
  /// Lock.locked() and RLock.locked()). A holder that died holding it does
  /// not count: the next acquirer gets it.
  bool locked() const {
    if (!cell_) throw_empty();
    return cell_holder(cell_) != 0;
  }
  /// Whether the calling thread holds it.
  bool held_by_this_thread() const {
    if (!cell_) throw_empty();
    return cell_held_by_this_thread(cell_);
  }
  /// rlock: how many times the calling thread holds it (0 if it does not).
  unsigned depth() const;

  /// Only while process arguments are encoded/decoded (handle_transfer.hpp).
  template <class Archive>
  void save(Archive& ar) const {
    ar(segment().export_fd(), offset());
  }
  /// Adopts a lock or an rlock (condition keeps either); plain_lock and rlock
  /// accept only their own kind.
  template <class Archive>
  void load(Archive& ar) {
    load_kind(ar, -1);
  }

  /// An empty handle: only for the objects that load() into one.
  lock_base() = default;

 protected:
  /// Adopts the lock a process argument names; expect: 0 plain, 1 recursive,
  /// -1 either (decode_error for another kind).
  template <class Archive>
  void load_kind(Archive& ar, int expect) {
    std::uint32_t index = 0;
    std::uint64_t off = 0;
    ar(index, off);
    adopt(index, off, expect);
  }

 public:
  lock_base(in_segment_t, std::shared_ptr<sync_segment> seg, mutex_cell* cell) noexcept
      : seg_(std::move(seg)), cell_(cell) {}

  /// Whether this handle refers to no lock (a raw value's, or a moved-from one).
  bool empty() const noexcept { return cell_ == nullptr; }

  // For condition.
  bool recursive() const;
  /// Releases the lock all the way; returns the depth it had.
  unsigned release_all();
  /// Takes it back to that depth.
  lock_status reacquire(unsigned depth, const deadline& d);

 protected:
  lock_base(bool recursive, const char* memfd_name);
  /// expect: 0 a plain lock, 1 an rlock, -1 either.
  void adopt(std::uint32_t index, std::uint64_t offset, int expect);
  lock_status take(const deadline& d);
  [[noreturn]] static void throw_empty();
  [[noreturn]] static void throw_owner_died();
  sync_segment& segment() const;
  mutex_cell& cell() const;
  std::uint64_t offset() const;

 private:
  std::shared_ptr<sync_segment> seg_;
  mutex_cell* cell_ = nullptr;
};

}  // namespace detail

/// A non-recursive lock (Python's multiprocessing.Lock). isola::lock names
/// this class: a class cannot have a member function named like itself, and
/// BasicLockable needs lock().
class plain_lock : public detail::lock_base {
 public:
  /// A new, free lock.
  plain_lock() : lock_base(false, "isola-lock") {}
  plain_lock(detail::in_segment_t t, std::shared_ptr<detail::sync_segment> seg,
             detail::mutex_cell* cell) noexcept
      : lock_base(t, std::move(seg), cell) {}

  template <class Archive>
  void load(Archive& ar) {
    load_kind(ar, 0);
  }
};

using lock = plain_lock;

/// A recursive lock (Python's multiprocessing.RLock): its holder may acquire
/// it again, and must release it as many times.
class rlock : public detail::lock_base {
 public:
  /// A new, free recursive lock.
  rlock() : lock_base(true, "isola-rlock") {}
  rlock(detail::in_segment_t t, std::shared_ptr<detail::sync_segment> seg,
        detail::mutex_cell* cell) noexcept
      : lock_base(t, std::move(seg), cell) {}

  template <class Archive>
  void load(Archive& ar) {
    load_kind(ar, 1);
  }
};

}  // namespace isola
