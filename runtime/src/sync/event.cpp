// event: one 32-bit futex word in a memfd.
//   bit 0      the flag
//   bit 1      "a sleeper may be here": set() makes a wake call only then
//   bits 2..31 how many times the flag went from clear to set (modulo 2^30):
//              a waiter that saw the count move was set-after-it-started,
//              even if the flag is clear again by the time it runs.
#include "isola/event.hpp"

#include <atomic>
#include <climits>

#include "isola/error.hpp"
#include "sync/sync_util.hpp"

namespace isola {
namespace detail {
struct event_cell {
  std::uint32_t tag;
  std::atomic<std::uint32_t> word;
};
}  // namespace detail

namespace {
constexpr std::uint32_t event_tag = 0x54564549u;  // "IEVT"
constexpr std::uint32_t set_bit = 1, sleep_bit = 2, one_set = 4;
constexpr auto wake_slice = std::chrono::milliseconds(100);
}  // namespace

event::event() {
  seg_ = detail::sync_segment::create(detail::sync_kind::event, 64, "isola-event");
  cell_ = reinterpret_cast<detail::event_cell*>(seg_->payload());
  cell_->word.store(0, std::memory_order_relaxed);
  cell_->tag = event_tag;
}

void event::adopt(std::uint32_t index) {
  auto seg = detail::sync_segment::adopt(index, detail::kind_bit(detail::sync_kind::event));
  auto* c = reinterpret_cast<detail::event_cell*>(
      seg->at(seg->header().payload_offset, sizeof(detail::event_cell), 64));
  if (c->tag != event_tag) throw decode_error("event: the descriptor received is not an event");
  seg_ = std::move(seg);
  cell_ = c;
}

detail::sync_segment& event::segment() const {
  if (!seg_ || seg_->closed()) throw value_error("event: this handle is empty");
  return *seg_;
}

detail::event_cell& event::cell() const {
  if (!cell_) throw value_error("event: this handle is empty");
  return *cell_;
}

void event::set() {
  auto& w = cell().word;
  std::uint32_t old = w.load(std::memory_order_relaxed);
  for (;;) {
    if ((old & set_bit) && !(old & sleep_bit)) return;  // already set, nobody asleep
    std::uint32_t next =
        old & set_bit ? old & ~sleep_bit : ((old | set_bit) & ~sleep_bit) + one_set;
    if (w.compare_exchange_weak(old, next, std::memory_order_seq_cst)) break;
  }
  if (old & sleep_bit) detail::futex_wake_n(&w, INT_MAX);
}

void event::clear() { cell().word.fetch_and(~set_bit, std::memory_order_seq_cst); }

bool event::is_set() const { return (cell().word.load(std::memory_order_seq_cst) & set_bit) != 0; }

bool event::wait_impl(const detail::deadline& d) {
  auto& w = cell().word;
  const std::uint32_t start = w.load(std::memory_order_seq_cst);
  if (start & set_bit) return true;
  auto happened = [start](std::uint32_t v) { return (v & set_bit) || (v >> 2) != (start >> 2); };
  if (d.mode == detail::deadline::nowait) return false;
  if (detail::spin_until([&] { return happened(w.load(std::memory_order_acquire)); })) return true;
  for (;;) {
    std::uint32_t v = w.load(std::memory_order_seq_cst);
    if (happened(v)) return true;
    if (d.expired()) return false;
    if (!(v & sleep_bit)) {
      if (!w.compare_exchange_weak(v, v | sleep_bit, std::memory_order_seq_cst)) continue;
      v |= sleep_bit;
    }
    auto until = d.capped(wake_slice);
    detail::futex_wait_until(&w, v, &until);
  }
}

void event::wait() { wait_impl(detail::deadline::forever()); }

bool event::wait(duration timeout) { return wait_impl(detail::deadline::after(timeout)); }

}  // namespace isola
