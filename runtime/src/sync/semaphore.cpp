// semaphore and bounded_semaphore: one 64-bit word in a memfd, the count in
// its low half (the futex word waiters sleep on while it is 0) and the number
// of registered sleepers in its high half, so that release() makes a system
// call only when someone may be asleep. Taking a permit and leaving the
// sleepers is one compare-and-swap. A sleeper killed while registered leaves
// the sleeper count one too high: releases then make a wake call they did not
// need, nothing worse.
#include "isola/semaphore.hpp"

#include <atomic>
#include <string>

#include "isola/error.hpp"
#include "sync/sync_util.hpp"

namespace isola {
namespace detail {

struct semaphore_cell {
  std::uint32_t tag;
  std::uint32_t bound;
  std::atomic<std::uint64_t> word;  // count | sleepers << 32

  std::atomic<std::uint32_t>* count_word() noexcept {
    // The low half of `word` on a little-endian machine.
    return reinterpret_cast<std::atomic<std::uint32_t>*>(&word);
  }
};
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);

}  // namespace detail

namespace {
constexpr std::uint32_t semaphore_tag = 0x4d455353u;  // "SSEM"
constexpr std::uint64_t one_sleeper = std::uint64_t{1} << 32;
constexpr std::uint64_t count_mask = 0xffffffffu;
constexpr auto wake_slice = std::chrono::milliseconds(100);
}  // namespace

semaphore::semaphore(unsigned value) : semaphore(value, max_value, "isola-semaphore") {}

bounded_semaphore::bounded_semaphore(unsigned value)
    : semaphore(value, value, "isola-bounded-semaphore") {}

semaphore::semaphore(unsigned value, unsigned bound, const char* memfd_name) {
  if (value > max_value)
    throw value_error("semaphore: initial value " + std::to_string(value) + " is above " +
                      std::to_string(max_value));
  seg_ = detail::sync_segment::create(detail::sync_kind::semaphore, 64, memfd_name);
  cell_ = reinterpret_cast<detail::semaphore_cell*>(seg_->payload());
  cell_->bound = bound;
  cell_->word.store(value, std::memory_order_relaxed);
  cell_->tag = semaphore_tag;
}

void semaphore::adopt(std::uint32_t index, bool must_be_bounded) {
  auto seg = detail::sync_segment::adopt(index, detail::kind_bit(detail::sync_kind::semaphore));
  auto* c = reinterpret_cast<detail::semaphore_cell*>(
      seg->at(seg->header().payload_offset, sizeof(detail::semaphore_cell), 64));
  if (c->tag != semaphore_tag || c->bound > max_value)
    throw decode_error("semaphore: the descriptor received is not a semaphore");
  if (must_be_bounded && c->bound == max_value)
    throw decode_error("bounded_semaphore: the semaphore received is not bounded");
  seg_ = std::move(seg);
  cell_ = c;
}

detail::sync_segment& semaphore::segment() const {
  if (!seg_ || seg_->closed()) throw value_error("semaphore: this handle is empty");
  return *seg_;
}

detail::semaphore_cell& semaphore::cell() const {
  if (!cell_) throw value_error("semaphore: this handle is empty");
  return *cell_;
}

bool semaphore::take(const detail::deadline& d) {
  auto& c = cell();
  auto& w = c.word;
  auto try_take = [&w] {
    std::uint64_t v = w.load(std::memory_order_relaxed);
    while ((v & count_mask) != 0)
      if (w.compare_exchange_weak(v, v - 1, std::memory_order_acquire, std::memory_order_relaxed))
        return true;
    return false;
  };
  if (try_take()) return true;
  if (d.mode == detail::deadline::nowait) return false;
  if (detail::spin_until(try_take)) return true;

  // Register as a sleeper, then take a permit and leave in one step.
  w.fetch_add(one_sleeper, std::memory_order_seq_cst);
  for (;;) {
    std::uint64_t v = w.load(std::memory_order_seq_cst);
    if ((v & count_mask) != 0) {
      if (w.compare_exchange_weak(v, v - 1 - one_sleeper, std::memory_order_seq_cst)) return true;
      continue;
    }
    if (d.expired()) {
      w.fetch_sub(one_sleeper, std::memory_order_seq_cst);
      return false;
    }
    auto until = d.capped(wake_slice);
    detail::futex_wait_until(c.count_word(), 0, &until);
  }
}

void semaphore::acquire() { take(detail::deadline::forever()); }
bool semaphore::acquire(duration timeout) { return take(detail::deadline::after(timeout)); }
bool semaphore::try_acquire() { return take(detail::deadline::now()); }

void semaphore::release(unsigned n) {
  auto& c = cell();
  if (n == 0) return;
  auto& w = c.word;
  std::uint64_t v = w.load(std::memory_order_relaxed);
  for (;;) {
    std::uint64_t count = v & count_mask;
    if (count + n > c.bound) {
      if (c.bound != max_value)
        throw value_error("bounded_semaphore: released too many times (it holds " +
                          std::to_string(count) + " of at most " + std::to_string(c.bound) +
                          " permits); nothing was released");
      throw value_error("semaphore: release would exceed the largest count (" +
                        std::to_string(max_value) + ")");
    }
    if (w.compare_exchange_weak(v, v + n, std::memory_order_seq_cst)) break;
  }
  if ((v >> 32) != 0)
    detail::futex_wake_n(c.count_word(), n > 0x7fffffffu ? 0x7fffffff : static_cast<int>(n));
}

unsigned semaphore::get_value() const {
  return static_cast<unsigned>(cell().word.load(std::memory_order_seq_cst) & count_mask);
}

unsigned semaphore::bound() const { return cell().bound; }

}  // namespace isola
