// lock and rlock: a robust, process-shared pthread mutex in a memfd.
//
// Why pthread and not a futex word of our own: a robust mutex is on its
// holder thread's robust list, which the kernel walks when the thread dies
// (SIGKILL included): it marks the mutex FUTEX_OWNER_DIED and wakes a waiter,
// whose lock then returns EOWNERDEAD. No polling, no pid that could be
// reused. The costs: the holder must release (no release by another process,
// as Python allows), and glibc's mutex is a little slower than a bare futex
// (bench/sync measures it against a plain process-shared mutex).
#include "isola/lock.hpp"

#include <pthread.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <new>
#include <string>

#include "isola/error.hpp"
#include "sync/sync_util.hpp"
#include "sys/os.hpp"

namespace isola {
namespace detail {

static_assert(offsetof(mutex_cell, m) + offsetof(pthread_mutex_t, __data.__lock) ==
                  mutex_owner_word_offset,
              "lock.hpp's mutex_owner_word_offset does not match glibc's pthread_mutex_t");

void init_mutex_cell(mutex_cell* c, bool recursive) {
  c->recursive = recursive ? 1 : 0;
  c->depth = 0;
  init_robust_mutex(&c->m, recursive ? PTHREAD_MUTEX_RECURSIVE : PTHREAD_MUTEX_ERRORCHECK);
  c->tag = mutex_cell_tag;
}

mutex_cell* mutex_cell_at(const sync_segment& seg, std::uint64_t offset, int expect) {
  auto* c = reinterpret_cast<mutex_cell*>(seg.at(offset, mutex_cell_bytes, 64));
  if (c->tag != mutex_cell_tag || c->recursive > 1)
    throw decode_error("lock: the descriptor received does not hold a lock at that place");
  if (expect >= 0 && static_cast<int>(c->recursive) != expect)
    throw decode_error(expect ? "rlock: the lock received is a plain lock, not an rlock"
                              : "lock: the lock received is an rlock, not a plain lock");
  return c;
}

lock_base::lock_base(bool recursive, const char* memfd_name) {
  seg_ = sync_segment::create(recursive ? sync_kind::rlock : sync_kind::lock, mutex_cell_bytes,
                              memfd_name);
  cell_ = reinterpret_cast<mutex_cell*>(seg_->payload());
  init_mutex_cell(cell_, recursive);
  seg_->header_for_init().lock_offset = seg_->offset_of(cell_);
}

void lock_base::adopt(std::uint32_t index, std::uint64_t off, int expect) {
  auto seg = sync_segment::adopt(index);
  cell_ = mutex_cell_at(*seg, off, expect);
  seg_ = std::move(seg);
}

sync_segment& lock_base::segment() const {
  if (!seg_ || seg_->closed()) throw value_error("lock: this handle is empty");
  return *seg_;
}

mutex_cell& lock_base::cell() const {
  if (!cell_) throw_empty();
  return *cell_;
}

std::uint64_t lock_base::offset() const { return segment().offset_of(cell_); }

bool lock_base::recursive() const { return cell().recursive != 0; }

lock_status lock_base::take(const deadline& d) {
  mutex_cell& c = cell();
  switch (take_mutex(&c.m, d)) {
    case take_result::ok:
      if (c.recursive) ++c.depth;
      return lock_status::acquired;
    case take_result::owner_died:
      c.depth = 1;  // the dead holder's count means nothing now
      return lock_status::owner_died;
    case take_result::timed_out: return lock_status::timed_out;
    case take_result::deadlock:
      if (d.mode == deadline::nowait) return lock_status::timed_out;
      throw value_error(
          "lock: this thread already holds this lock; acquiring it again would deadlock "
          "(use an isola::rlock to acquire a lock recursively)");
  }
  return lock_status::timed_out;
}

[[noreturn]] void lock_base::throw_owner_died() {
  throw lock_owner_died(
      "lock: its previous holder died while holding it; the lock is now held by this "
      "thread, and what it guards may be half-updated (repair it, then release the lock)");
}

void lock_base::acquire() {
  if (take(deadline::forever()) == lock_status::owner_died) throw_owner_died();
}

bool lock_base::acquire(duration timeout) {
  auto s = take(deadline::after(timeout));
  if (s == lock_status::owner_died) throw_owner_died();
  return s == lock_status::acquired;
}

bool lock_base::try_acquire() {
  auto s = take(deadline::now());
  if (s == lock_status::owner_died) throw_owner_died();
  return s == lock_status::acquired;
}

lock_status lock_base::acquire_status() { return take(deadline::forever()); }
lock_status lock_base::acquire_status(duration timeout) { return take(deadline::after(timeout)); }
lock_status lock_base::try_acquire_status() { return take(deadline::now()); }

void lock_base::release() {
  mutex_cell& c = cell();
  // A robust mutex checks its owner on unlock (EPERM otherwise); the depth is
  // ours to keep, and only the holder may touch it.
  if (!cell_held_by_this_thread(&c))
    throw value_error(
        "lock: release() of a lock this thread does not hold (it was never acquired, was "
        "already released, or is held by another thread or process)");
  if (c.recursive && c.depth > 0) --c.depth;
  int r = ::pthread_mutex_unlock(&c.m);
  if (r == EPERM) throw value_error("lock: release() of a lock this thread does not hold");
  if (r != 0) throw_errno("pthread_mutex_unlock", r);
}

void lock_base::throw_empty() { throw value_error("lock: this handle is empty"); }

unsigned lock_base::depth() const {
  const mutex_cell& c = cell();
  if (!cell_held_by_this_thread(&c)) return 0;
  return c.recursive ? c.depth : 1;
}

unsigned lock_base::release_all() {
  unsigned d = depth();
  for (unsigned i = 0; i < d; ++i) release();
  return d;
}

lock_status lock_base::reacquire(unsigned d, const deadline& dl) {
  lock_status first = take(dl);
  if (first == lock_status::timed_out) return first;
  for (unsigned i = 1; i < d; ++i) take(deadline::forever());  // recursive: at once
  return first;
}

}  // namespace detail
}  // namespace isola
