// The kinds of managed object, each holding only its own state, with its
// op handlers (in managed_<kind>.cpp). Every kind answers:
//   handle(cx, r)          one of its ops (r.op lies in its block of mgr_op)
//   peer_lost(cx, peer)    a peer died: drop its waiters, release what it held
//   expire(cx, wid)        waiter wid's deadline passed: false if not ours
//   waiting()              how many blocked calls it holds (for stats)
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "isola/codec.hpp"
#include "isola/detail/manager_wire.hpp"
#include "manager/object_context.hpp"

// The manager server's internals live in their own namespace: names such
// as peer and waiter are taken in isola::detail by the actor layer.
namespace isola::detail::mgr {

/// For the kinds whose calls never block.
struct never_waits {
  void peer_lost(object_context&, std::uint64_t) {}
  bool expire(object_context&, std::uint64_t) { return false; }
  std::size_t waiting() const noexcept { return 0; }
};

/// Insertion-ordered like a Python dict: keys() etc. sort by seq.
struct managed_dict : never_waits {
  struct entry {
    std::uint64_t seq = 0;
    bytes value;
  };
  explicit managed_dict(mgr_create_spec&) {}
  void handle(object_context& cx, const request& r);

 private:
  void reply_elements(object_context& cx, const request& r);
  void update(object_context& cx, const request& r);
  std::unordered_map<std::string, entry> entries_;
  std::uint64_t seq_ = 0;
};

/// spec.maxsize > 0 makes Python's Manager().Array: that many copies of
/// spec.init, and a size that never changes (append, pop, clear refused).
struct managed_list : never_waits {
  explicit managed_list(mgr_create_spec& spec);
  void handle(object_context& cx, const request& r);

 private:
  void at_index(object_context& cx, const request& r);
  std::vector<bytes> items_;
  bool fixed_ = false;
};

/// A getter waits while it is empty; a putter while it is full (maxsize > 0).
/// Every queue counts its unfinished items as Python's queue.Queue does (what
/// Manager().Queue() and JoinableQueue() both serve): task_done() and join().
struct managed_queue {
  explicit managed_queue(mgr_create_spec& spec) : maxsize_(spec.maxsize) {}
  void handle(object_context& cx, const request& r);
  void peer_lost(object_context& cx, std::uint64_t peer);
  bool expire(object_context& cx, std::uint64_t wid);
  std::size_t waiting() const noexcept {
    return getters_.size() + putters_.size() + joiners_.size();
  }

 private:
  void put(object_context& cx, const request& r);
  void get(object_context& cx, const request& r);
  void task_done(object_context& cx, const request& r);
  std::deque<bytes> items_;
  std::uint64_t maxsize_ = 0;
  std::uint64_t unfinished_ = 0;  // put and not yet task_done()
  waiter_queue getters_;
  waiter_queue putters_;  // each with its item
  waiter_queue joiners_;
};

/// Held by a peer (a process's connection); released when that peer dies,
/// and the next holder is told owner_died.
struct managed_lock {
  explicit managed_lock(mgr_create_spec&) {}
  void handle(object_context& cx, const request& r);
  void peer_lost(object_context& cx, std::uint64_t peer);
  bool expire(object_context& cx, std::uint64_t wid) { return cx.expire(acquirers_, wid); }
  std::size_t waiting() const noexcept { return acquirers_.size(); }

 private:
  void acquire(object_context& cx, const request& r);
  void release(object_context& cx, const request& r);
  void grant(object_context& cx);
  std::uint64_t holder_ = 0;
  bool owner_died_ = false;
  waiter_queue acquirers_;
};

struct managed_event {
  explicit managed_event(mgr_create_spec&) {}
  void handle(object_context& cx, const request& r);
  void peer_lost(object_context& cx, std::uint64_t peer) { cx.forget_waiters(waiters_, peer); }
  bool expire(object_context& cx, std::uint64_t wid) { return cx.expire(waiters_, wid); }
  std::size_t waiting() const noexcept { return waiters_.size(); }

 private:
  bool flag_ = false;
  waiter_queue waiters_;
};

struct managed_value : never_waits {
  explicit managed_value(mgr_create_spec& spec) : value_(std::move(spec.init)) {}
  void handle(object_context& cx, const request& r);

 private:
  bytes value_;
};

/// Python's Semaphore / BoundedSemaphore (spec.maxsize: the initial value;
/// spec.init: one byte, 1 if bounded). Like Python's manager, a semaphore has
/// no owner: a peer that dies after acquiring does not give its count back
/// (a dead peer's blocked acquires are dropped).
struct managed_semaphore {
  explicit managed_semaphore(mgr_create_spec& spec)
      : value_(spec.maxsize),
        bound_(spec.maxsize),
        bounded_(!spec.init.empty() && spec.init[0] != std::byte{0}) {}
  void handle(object_context& cx, const request& r);
  void peer_lost(object_context& cx, std::uint64_t peer) { cx.forget_waiters(acquirers_, peer); }
  bool expire(object_context& cx, std::uint64_t wid) { return cx.expire(acquirers_, wid); }
  std::size_t waiting() const noexcept { return acquirers_.size(); }

 private:
  std::uint64_t value_ = 0;
  std::uint64_t bound_ = 0;
  bool bounded_ = false;
  waiter_queue acquirers_;
};

/// Python's RLock: its holder (a connection: one process's thread) may
/// acquire it again, and must release it as many times. A holder's death
/// releases it whatever its depth, and the next holder hears owner_died.
struct managed_rlock {
  explicit managed_rlock(mgr_create_spec&) {}
  void handle(object_context& cx, const request& r);
  void peer_lost(object_context& cx, std::uint64_t peer);
  bool expire(object_context& cx, std::uint64_t wid) { return cx.expire(acquirers_, wid); }
  std::size_t waiting() const noexcept { return acquirers_.size(); }

 private:
  void grant(object_context& cx);
  std::uint64_t holder_ = 0;
  std::uint64_t depth_ = 0;
  bool owner_died_ = false;
  waiter_queue acquirers_;
};

/// Python's Manager().Condition(): a condition over its own reentrant lock
/// (Python's default, an RLock). wait() gives the lock up at whatever depth,
/// sleeps until notified or its deadline, then queues for the lock again
/// (without a deadline, as Python's wait re-acquires) and gets its depth
/// back. A holder's death releases the lock (the next holder hears
/// owner_died); a dead waiter is dropped.
struct managed_condition {
  explicit managed_condition(mgr_create_spec&) {}
  void handle(object_context& cx, const request& r);
  void peer_lost(object_context& cx, std::uint64_t peer);
  bool expire(object_context& cx, std::uint64_t wid);
  std::size_t waiting() const noexcept { return acquirers_.size() + sleepers_.size(); }

 private:
  void wait(object_context& cx, const request& r);
  void notify(object_context& cx, const request& r);
  void grant(object_context& cx);
  std::uint64_t holder_ = 0;
  std::uint64_t depth_ = 0;
  bool owner_died_ = false;
  waiter_queue acquirers_;  // acquires, and woken waits taking the lock back (count > 0)
  waiter_queue sleepers_;   // waits not yet notified (count: the depth to restore)
};

/// Python's Manager().Barrier(parties, timeout=...) (spec.maxsize: parties;
/// spec.init: the default timeout in ns, i64, -1 none). The last arrival
/// releases the round: every waiter gets its arrival index, and the count is
/// 0 before anyone is answered. A wait that times out breaks the barrier (as
/// in Python); so does a waiter whose process dies (Python's manager would
/// keep waiting on its behalf; the others could then never complete a
/// round they count on it for).
struct managed_barrier {
  explicit managed_barrier(mgr_create_spec& spec);
  void handle(object_context& cx, const request& r);
  void peer_lost(object_context& cx, std::uint64_t peer);
  bool expire(object_context& cx, std::uint64_t wid);
  std::size_t waiting() const noexcept { return waiters_.size(); }

 private:
  void wait(object_context& cx, const request& r);
  void break_round(object_context& cx);
  std::uint64_t parties_ = 1;
  std::int64_t default_timeout_ns_ = -1;
  bool broken_ = false;
  waiter_queue waiters_;  // count: the arrival index
};

struct user_type;

/// An instance of a user type registered with manager::register_type (the
/// manager process's table of them: managed_user.cpp), called by method name.
struct managed_user : never_waits {
  explicit managed_user(mgr_create_spec& spec);
  void handle(object_context& cx, const request& r);

 private:
  const user_type* type_ = nullptr;
  std::unique_ptr<void, void (*)(void*)> self_{nullptr, nullptr};
};

}  // namespace isola::detail::mgr
