// condition: a table of waiter slots in a memfd, changed only by processes
// that hold the condition's lock.
//
// A waiter takes a free slot, stamps it with the next ticket, marks it
// WAITING, releases the lock and sleeps on the slot's own futex word. notify(n)
// marks the n WAITING slots with the oldest tickets NOTIFIED and wakes each:
// exactly those waiters, never one that came later. A waiter leaves (frees its
// slot) only after it has the lock back, so a notify never races with a slot
// changing hands.
//
// Each slot also has a robust mutex that its waiter holds while it waits. A
// notify tries it before choosing the slot: busy means the waiter lives; free
// or EOWNERDEAD means it died (the kernel released it), and the slot is
// reclaimed instead of receiving a notification nobody would consume.
#include "isola/condition.hpp"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <vector>

#include "isola/error.hpp"
#include "sync/sync_util.hpp"

namespace isola {
namespace detail {

struct waiter_slot {
  pthread_mutex_t alive;
  std::atomic<std::uint32_t> state;  // slot_free / slot_waiting / slot_notified
  std::uint32_t ticket;
};
static_assert(sizeof(waiter_slot) <= 64);

struct condition_cell {
  std::uint32_t tag;
  std::uint32_t capacity;
  std::uint32_t next_ticket;
  std::atomic<std::uint32_t> waiting;
  std::uint32_t reserved[12];
  // then capacity slots of 64 bytes
  waiter_slot& slot(std::uint32_t i) noexcept {
    return *reinterpret_cast<waiter_slot*>(reinterpret_cast<std::byte*>(this) + 64 + 64 * i);
  }
};
static_assert(sizeof(condition_cell) == 64);

}  // namespace detail

namespace {
constexpr std::uint32_t condition_tag = 0x444e4349u;  // "ICND"
constexpr std::uint32_t slot_free = 0, slot_waiting = 1, slot_notified = 2;
constexpr auto wake_slice = std::chrono::milliseconds(100);
constexpr std::size_t table_bytes = 64 + 64 * condition::max_waiters;

// Is the waiter of a WAITING slot alive? Reclaims the slot if not. Under the
// condition's lock.
bool waiter_alive(detail::waiter_slot& s) {
  int r = ::pthread_mutex_trylock(&s.alive);
  if (r == EBUSY) return true;
  if (r == EOWNERDEAD) ::pthread_mutex_consistent(&s.alive);
  if (r == 0 || r == EOWNERDEAD) ::pthread_mutex_unlock(&s.alive);
  s.state.store(slot_free, std::memory_order_relaxed);
  return false;
}
}  // namespace

condition::condition() {
  // Its own rlock, in the same memfd, in front of the table.
  seg_ = detail::sync_segment::create(detail::sync_kind::condition,
                                      detail::mutex_cell_bytes + table_bytes, "isola-condition");
  auto* lc = reinterpret_cast<detail::mutex_cell*>(seg_->payload());
  detail::init_mutex_cell(lc, true);
  seg_->header_for_init().lock_offset = seg_->offset_of(lc);
  cell_ = reinterpret_cast<detail::condition_cell*>(seg_->payload() + detail::mutex_cell_bytes);
  cell_->capacity = max_waiters;
  for (std::uint32_t i = 0; i < max_waiters; ++i)
    detail::init_robust_mutex(&cell_->slot(i).alive, PTHREAD_MUTEX_ERRORCHECK);
  cell_->tag = condition_tag;
  lock_ = detail::lock_base(detail::in_segment, seg_, lc);
}

condition::condition(const plain_lock& l) : condition(detail::lock_base(l)) {}
condition::condition(const rlock& l) : condition(detail::lock_base(l)) {}

condition::condition(detail::lock_base l) : lock_(std::move(l)) {
  lock_.depth();  // a usable handle, or value_error now
  seg_ = detail::sync_segment::create(detail::sync_kind::condition, table_bytes, "isola-condition");
  cell_ = reinterpret_cast<detail::condition_cell*>(seg_->payload());
  cell_->capacity = max_waiters;
  for (std::uint32_t i = 0; i < max_waiters; ++i)
    detail::init_robust_mutex(&cell_->slot(i).alive, PTHREAD_MUTEX_ERRORCHECK);
  cell_->tag = condition_tag;
}

void condition::adopt(std::uint32_t index, detail::lock_base l) {
  auto seg = detail::sync_segment::adopt(index, detail::kind_bit(detail::sync_kind::condition));
  std::uint64_t at =
      seg->header().payload_offset + (seg->header().lock_offset ? detail::mutex_cell_bytes : 0);
  auto* c = reinterpret_cast<detail::condition_cell*>(seg->at(at, table_bytes, 64));
  if (c->tag != condition_tag || c->capacity != max_waiters)
    throw decode_error("condition: the descriptor received is not a condition");
  seg_ = std::move(seg);
  cell_ = c;
  lock_ = std::move(l);
}

detail::sync_segment& condition::segment() const {
  if (!seg_ || seg_->closed()) throw value_error("condition: this handle is empty");
  return *seg_;
}

detail::condition_cell& condition::cell() const {
  if (!cell_) throw value_error("condition: this handle is empty");
  return *cell_;
}

void condition::check_held(const char* what) const {
  if (!lock_.held_by_this_thread())
    throw value_error(std::string("condition: ") + what +
                      " without holding the condition's lock (acquire it first: "
                      "std::unique_lock g(cv);)");
}

bool condition::wait_impl(const detail::deadline& d) {
  check_held("wait()");
  auto& c = cell();
  // Take a free slot (under the lock).
  detail::waiter_slot* s = nullptr;
  for (std::uint32_t i = 0; i < c.capacity && !s; ++i) {
    auto& cand = c.slot(i);
    if (cand.state.load(std::memory_order_relaxed) != slot_free) continue;
    int r = ::pthread_mutex_trylock(&cand.alive);
    if (r == EOWNERDEAD) {
      ::pthread_mutex_consistent(&cand.alive);
      r = 0;
    }
    if (r == 0) s = &cand;
  }
  if (!s)
    throw value_error("condition: more than " + std::to_string(max_waiters) +
                      " processes or threads are waiting on it");
  s->ticket = c.next_ticket++;
  s->state.store(slot_waiting, std::memory_order_seq_cst);
  c.waiting.fetch_add(1, std::memory_order_relaxed);

  const unsigned depth = lock_.release_all();
  bool notified =
      detail::spin_until([s] { return s->state.load(std::memory_order_acquire) == slot_notified; });
  while (!notified) {
    if (d.expired()) break;
    auto until = d.capped(wake_slice);
    detail::futex_wait_until(&s->state, slot_waiting, &until);
    notified = s->state.load(std::memory_order_acquire) == slot_notified;
  }

  // Take the lock back (however long it takes, as Python does), then leave.
  lock_status st = lock_.reacquire(depth, detail::deadline::forever());
  if (s->state.load(std::memory_order_acquire) == slot_notified) notified = true;
  ::pthread_mutex_unlock(&s->alive);
  s->state.store(slot_free, std::memory_order_relaxed);
  c.waiting.fetch_sub(1, std::memory_order_relaxed);
  if (st == lock_status::owner_died)
    throw lock_owner_died(
        "condition: the holder of the condition's lock died while holding it; the lock is now "
        "held by this thread (as deep as before the wait), and what it guards may be "
        "half-updated");
  return notified;
}

void condition::notify(unsigned n) {
  check_held("notify()");
  if (n == 0) return;
  auto& c = cell();
  // The n oldest live waiters (age = tickets issued since theirs).
  std::vector<std::pair<std::uint32_t, std::uint32_t>> found;  // (age, slot)
  for (std::uint32_t i = 0; i < c.capacity; ++i) {
    auto& s = c.slot(i);
    if (s.state.load(std::memory_order_relaxed) != slot_waiting) continue;
    if (!waiter_alive(s)) {
      c.waiting.fetch_sub(1, std::memory_order_relaxed);
      continue;
    }
    found.emplace_back(c.next_ticket - s.ticket, i);
  }
  if (found.size() > n) {
    std::nth_element(found.begin(), found.begin() + n, found.end(),
                     [](const auto& a, const auto& b) { return a.first > b.first; });
    found.resize(n);
  }
  for (auto& [age, i] : found) {
    auto& s = c.slot(i);
    s.state.store(slot_notified, std::memory_order_seq_cst);
    detail::futex_wake_n(&s.state, 1);
  }
}

void condition::notify_all() { notify(max_waiters); }

unsigned condition::n_waiting() const { return cell().waiting.load(std::memory_order_relaxed); }

}  // namespace isola
