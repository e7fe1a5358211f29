// barrier: a round of arrivals in a memfd, guarded by a robust mutex `m`.
//
// LAYOUT. A cell (parties, default timeout, state, count, round), the mutex,
// arrivals[parties] (the slot of each arrival of the current round), then a
// pool of 2 * parties + 4 slots. A slot is a robust mutex (`alive`) and an
// `outcome` futex word. A waiter takes a free slot (trylock of its `alive`)
// on arrival and holds it until it leaves, sleeping on its outcome word.
//
// ROUNDS. Under m: an arrival takes a slot, records it in arrivals[count++];
// the last one (count == parties) checks that every earlier arrival still
// holds its slot, runs the action, starts the next round (count = 0,
// round++), then writes PASSED into every arrival's outcome and wakes each.
// Breaking (timeout, abort, reset, a throwing action, a dead waiter, a
// process dying while it holds m) writes BROKEN instead. A waiter reads its
// outcome before it releases its slot, so a slot is never reused while its
// outcome is still unread.
//
// DEATH. The kernel releases a dead thread's robust mutexes: a dead waiter's
// slot trylocks as EOWNERDEAD. A sleeping waiter wakes every check_slice and
// tries the slot of the arrival before it (the first tries the last's): if
// any arrival of the round died, at least one living waiter sits right after
// a dead one in that cycle and finds it. A process that dies holding m
// leaves m EOWNERDEAD: the next locker breaks the round. So a death never
// leaves the others waiting for ever; it costs them at most one slice.
#include "isola/barrier.hpp"

#include <pthread.h>
#include <time.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstddef>
#include <string>
#include <thread>

#include "isola/error.hpp"
#include "sync/sync_util.hpp"

namespace isola {
namespace detail {

struct barrier_slot {
  pthread_mutex_t alive;
  std::atomic<std::uint32_t> outcome;
};
static_assert(sizeof(barrier_slot) <= 64);

struct barrier_cell {
  std::uint32_t tag;
  std::uint32_t parties;
  std::uint32_t nslots;
  std::uint32_t slot_hint;  // where the next slot search starts (under m)
  std::int64_t timeout_ns;  // the default timeout; < 0: none
  std::atomic<std::uint32_t> state;
  std::atomic<std::uint32_t> count;
  std::atomic<std::uint32_t> round;
  std::uint32_t reserved[7];
  pthread_mutex_t m;  // at 64

  static std::size_t arrivals_at() { return 128; }
  static std::size_t slots_at(std::uint32_t parties) {
    return (arrivals_at() + 4 * std::size_t{parties} + 63) / 64 * 64;
  }
  static std::size_t bytes(std::uint32_t parties, std::uint32_t nslots) {
    return slots_at(parties) + 64 * std::size_t{nslots};
  }
  std::atomic<std::uint32_t>& arrival(std::uint32_t i) noexcept {
    return reinterpret_cast<std::atomic<std::uint32_t>*>(reinterpret_cast<std::byte*>(this) +
                                                         arrivals_at())[i];
  }
  barrier_slot& slot(std::uint32_t i) noexcept {
    return *reinterpret_cast<barrier_slot*>(reinterpret_cast<std::byte*>(this) + slots_at(parties) +
                                            64 * std::size_t{i});
  }
};
static_assert(offsetof(barrier_cell, m) == 64);
static_assert(sizeof(pthread_mutex_t) <= 64);

}  // namespace detail

namespace {

using detail::barrier_cell;
using detail::barrier_slot;

constexpr std::uint32_t barrier_tag = 0x52524249u;  // "IBRR"
constexpr std::uint32_t filling = 0, broken_state = 1;
constexpr std::uint32_t waiting = 0, passed = 1, broken_outcome = 2;
constexpr auto check_slice = std::chrono::milliseconds(5);

[[noreturn]] void throw_broken() {
  throw broken_barrier_error(
      "barrier: the barrier is broken (a wait timed out, it was aborted or reset, its action "
      "threw, or a waiting process died); reset() makes it usable again");
}

// Ends the current round with `outcome` for every arrival (under m). The
// count is reset (and a broken state set) before anyone is woken, as in
// Python: a released waiter never reads the finished round's n_waiting().
void end_round(barrier_cell& c, std::uint32_t outcome, bool breaking = false) {
  const std::uint32_t n = c.count.load(std::memory_order_relaxed);
  c.count.store(0, std::memory_order_seq_cst);
  if (breaking) c.state.store(broken_state, std::memory_order_seq_cst);
  c.round.fetch_add(1, std::memory_order_seq_cst);
  for (std::uint32_t i = 0; i < n; ++i) {
    std::uint32_t sid = c.arrival(i).load(std::memory_order_relaxed);
    if (sid >= c.nslots) continue;
    auto& s = c.slot(sid);
    s.outcome.store(outcome, std::memory_order_seq_cst);
    detail::futex_wake_n(&s.outcome, 1);
  }
}

void break_locked(barrier_cell& c) { end_round(c, broken_outcome, true); }

// Holds m while alive; a process that died holding m breaks the round.
class m_guard {
 public:
  explicit m_guard(barrier_cell& c) : c_(c) {
    if (detail::take_mutex(&c_.m, detail::deadline::forever()) == detail::take_result::owner_died)
      break_locked(c_);
  }
  ~m_guard() { ::pthread_mutex_unlock(&c_.m); }
  m_guard(const m_guard&) = delete;
  m_guard& operator=(const m_guard&) = delete;

 private:
  barrier_cell& c_;
};

// Whether the waiter holding slot sid is alive. A dead one's slot is left
// locked by the caller (so it cannot be taken before the round is broken);
// the caller then calls release_dead().
enum class liveness { alive, gone, dead_held };
liveness probe(barrier_slot& s) {
  int r = ::pthread_mutex_trylock(&s.alive);
  if (r == EBUSY) return liveness::alive;
  if (r == EOWNERDEAD) {
    ::pthread_mutex_consistent(&s.alive);
    return liveness::dead_held;
  }
  if (r == 0) ::pthread_mutex_unlock(&s.alive);
  return liveness::gone;
}

// Takes a free slot (under m); nslots if none is free now.
std::uint32_t take_slot(barrier_cell& c) {
  for (std::uint32_t k = 0; k < c.nslots; ++k) {
    std::uint32_t i = (c.slot_hint + k) % c.nslots;
    int r = ::pthread_mutex_trylock(&c.slot(i).alive);
    if (r == EOWNERDEAD) {
      ::pthread_mutex_consistent(&c.slot(i).alive);
      r = 0;
    }
    if (r == 0) {
      c.slot_hint = (i + 1) % c.nslots;
      return i;
    }
  }
  return c.nslots;
}

}  // namespace

barrier::barrier(unsigned parties, fn_t fn, std::function<void()> action,
                 std::optional<duration> timeout)
    : fn_(fn), action_(std::move(action)) {
  if (parties == 0) throw value_error("barrier: parties must be at least 1");
  if (parties > max_parties)
    throw value_error("barrier: at most " + std::to_string(max_parties) + " parties");
  std::int64_t timeout_ns = -1;
  if (timeout) {
    double s = timeout->count();
    if (std::isnan(s) || s < 0) throw value_error("barrier: timeout must be a non-negative number");
    timeout_ns = s > 3.0e9 ? -1 : static_cast<std::int64_t>(s * 1e9);
  }
  const std::uint32_t nslots = 2 * parties + 4;
  seg_ = detail::sync_segment::create(detail::sync_kind::barrier,
                                      barrier_cell::bytes(parties, nslots), "isola-barrier");
  cell_ = reinterpret_cast<barrier_cell*>(seg_->payload());
  auto& c = *cell_;
  c.parties = parties;
  c.nslots = nslots;
  c.timeout_ns = timeout_ns;
  detail::init_robust_mutex(&c.m, PTHREAD_MUTEX_ERRORCHECK);
  for (std::uint32_t i = 0; i < nslots; ++i)
    detail::init_robust_mutex(&c.slot(i).alive, PTHREAD_MUTEX_ERRORCHECK);
  c.tag = barrier_tag;
}

void barrier::adopt(std::uint32_t index, fn_t fn, bool closure) {
  if (closure)
    throw decode_error(
        "barrier: its action is a closure (or another callable with state), which cannot be "
        "rebuilt in a forkserver or spawn child; give the barrier a plain function or a "
        "captureless lambda as its action, or use the fork start method");
  auto seg = detail::sync_segment::adopt(index, detail::kind_bit(detail::sync_kind::barrier));
  auto* c = reinterpret_cast<barrier_cell*>(seg->at(seg->header().payload_offset, 128, 64));
  if (c->tag != barrier_tag || c->parties == 0 || c->parties > max_parties ||
      c->nslots != 2 * c->parties + 4)
    throw decode_error("barrier: the descriptor received is not a barrier");
  seg->at(seg->header().payload_offset, barrier_cell::bytes(c->parties, c->nslots), 64);
  seg_ = std::move(seg);
  cell_ = c;
  fn_ = fn;
  action_ = nullptr;
}

detail::sync_segment& barrier::segment() const {
  if (!seg_ || seg_->closed()) throw value_error("barrier: this handle is empty");
  return *seg_;
}

barrier_cell& barrier::cell() const {
  if (!cell_) throw value_error("barrier: this handle is empty");
  return *cell_;
}

void barrier::run_action() {
  if (fn_)
    fn_();
  else if (action_)
    action_();
}

std::size_t barrier::wait() {
  auto& c = cell();
  if (c.timeout_ns < 0) return wait_impl(detail::deadline::forever());
  return wait_impl(detail::deadline::after(std::chrono::nanoseconds(c.timeout_ns)));
}

std::size_t barrier::wait(duration timeout) { return wait_impl(detail::deadline::after(timeout)); }

std::size_t barrier::wait_impl(const detail::deadline& d) {
  auto& c = cell();
  std::uint32_t sid = c.nslots, index = 0, my_round = 0;
  for (;;) {
    {
      m_guard g(c);
      if (c.state.load(std::memory_order_relaxed) == broken_state) throw_broken();
      sid = take_slot(c);
      if (sid == c.nslots) {
        // Every slot is held by waiters of earlier rounds that have not left
        // yet (they leave without needing m): try again shortly.
        if (d.expired()) {
          break_locked(c);
          throw_broken();
        }
      } else {
        auto& s = c.slot(sid);
        s.outcome.store(waiting, std::memory_order_relaxed);
        index = c.count.load(std::memory_order_relaxed);
        my_round = c.round.load(std::memory_order_relaxed);
        // The arrival before this one, and on the last arrival all of them.
        const bool last = index + 1 == c.parties;
        bool dead = false;
        for (std::uint32_t i = last ? 0 : (index ? index - 1 : 0); i < index && !dead; ++i) {
          std::uint32_t other_id = c.arrival(i).load(std::memory_order_relaxed);
          if (other_id >= c.nslots) continue;
          auto& other = c.slot(other_id);
          auto l = probe(other);
          if (l == liveness::dead_held) ::pthread_mutex_unlock(&other.alive);
          dead = l != liveness::alive;
        }
        if (dead) {
          break_locked(c);
          ::pthread_mutex_unlock(&s.alive);
          throw_broken();
        }
        c.arrival(index).store(sid, std::memory_order_relaxed);
        c.count.store(index + 1, std::memory_order_seq_cst);
        if (!last) break;  // sleep below, without m
        // The last arrival: run the action, release the round.
        try {
          run_action();
        } catch (...) {
          break_locked(c);
          ::pthread_mutex_unlock(&s.alive);
          throw;
        }
        end_round(c, passed);
        s.outcome.store(waiting, std::memory_order_relaxed);
        ::pthread_mutex_unlock(&s.alive);
        return index;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }

  auto& s = c.slot(sid);
  auto outcome = [&s] { return s.outcome.load(std::memory_order_acquire); };
  detail::spin_until([&] { return outcome() != waiting; });
  while (outcome() == waiting) {
    if (d.expired()) {
      m_guard g(c);
      if (outcome() == waiting) break_locked(c);  // our timeout breaks it, Python's way
      break;
    }
    // Is the arrival before us alive?
    std::uint32_t n = c.count.load(std::memory_order_seq_cst);
    if (c.round.load(std::memory_order_seq_cst) == my_round && n > 1 && index < n) {
      std::uint32_t p = (index + n - 1) % n;
      std::uint32_t other_id = c.arrival(p).load(std::memory_order_relaxed);
      if (other_id < c.nslots && other_id != sid) {
        auto& other = c.slot(other_id);
        if (probe(other) == liveness::dead_held) {
          {
            m_guard g(c);
            if (c.round.load(std::memory_order_relaxed) == my_round &&
                c.state.load(std::memory_order_relaxed) == filling && p < c.count.load() &&
                c.arrival(p).load(std::memory_order_relaxed) == other_id)
              break_locked(c);
          }
          ::pthread_mutex_unlock(&other.alive);
        }
      }
    }
    auto until = d.capped(check_slice);
    detail::futex_wait_until(&s.outcome, waiting, &until);
  }
  const std::uint32_t o = outcome();
  ::pthread_mutex_unlock(&s.alive);
  if (o != passed) throw_broken();
  return index;
}

void barrier::reset() {
  auto& c = cell();
  m_guard g(c);
  if (c.count.load(std::memory_order_relaxed) > 0) end_round(c, broken_outcome);
  c.state.store(filling, std::memory_order_seq_cst);
}

void barrier::abort() {
  auto& c = cell();
  m_guard g(c);
  break_locked(c);
}

unsigned barrier::parties() const { return cell().parties; }

unsigned barrier::n_waiting() const {
  auto& c = cell();
  if (c.state.load(std::memory_order_seq_cst) == broken_state) return 0;
  return c.count.load(std::memory_order_seq_cst);
}

bool barrier::broken() const {
  return cell().state.load(std::memory_order_seq_cst) == broken_state;
}

}  // namespace isola
