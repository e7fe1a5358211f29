// Envelopes, inboxes and the template entry points shared by the root and
// actor processes.
#include "core/mailbox.hpp"

#include <cxxabi.h>

#include <poll.h>
#include <sched.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <ostream>
#include <thread>
#include <unordered_set>

#include "isola/error.hpp"
#include "isola/logging.hpp"
#include "root/registry.hpp"

namespace isola {

std::string exit_reason::to_string() const {
  switch (what) {
    case kind::normal: return "normal";
    case kind::exit_code: return "exit code " + std::to_string(code);
    case kind::signal: {
      const char* s = ::strsignal(code);
      return "signal " + std::to_string(code) + (s ? std::string(" (") + s + ")" : std::string());
    }
    case kind::exception: return "exception: " + text;
    case kind::linked: return "linked: " + text;
    case kind::shutdown: return text.empty() ? "shutdown" : "shutdown: " + text;
    case kind::unknown: return "unknown" + (text.empty() ? std::string() : ": " + text);
    case kind::sandbox_violation: return "sandbox_violation: " + text;
    case kind::limit: return "limit: " + text;
  }
  return "unknown";
}

std::ostream& operator<<(std::ostream& os, const exit_reason& r) { return os << r.to_string(); }
std::ostream& operator<<(std::ostream& os, exit_reason::kind k) {
  static const char* names[] = {"normal", "exit_code", "signal", "exception",
                                "linked", "shutdown",  "unknown", "sandbox_violation", "limit"};
  auto i = static_cast<unsigned>(k);
  return os << (i < 9 ? names[i] : "?");
}
std::ostream& operator<<(std::ostream& os, const actor& a) {
  return os << a.name() << " (id " << a.id() << ", pid " << a.pid() << ")";
}

namespace detail {

current_request& this_request() noexcept {
  thread_local current_request r;
  return r;
}

namespace {
thread_local remote_handle_scope::mode scope_mode = remote_handle_scope::mode::none;
thread_local std::uint64_t scope_node = 0;
}  // namespace

remote_handle_scope::remote_handle_scope(mode m, std::uint64_t node) noexcept
    : saved_mode_(scope_mode), saved_node_(scope_node) {
  scope_mode = m;
  scope_node = node;
}
remote_handle_scope::~remote_handle_scope() {
  scope_mode = saved_mode_;
  scope_node = saved_node_;
}
remote_handle_scope::mode remote_handle_scope::current_mode() noexcept { return scope_mode; }
std::uint64_t remote_handle_scope::current_node() noexcept { return scope_node; }

coarse_time coarse_now() noexcept {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<coarse_time>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

namespace {
constexpr auto slice = std::chrono::milliseconds(20);
constexpr coarse_time check_every = coarse_ms(5);

// ---------------------------------------------------------------- spinning

std::chrono::nanoseconds spin_budget() {
  static const std::chrono::nanoseconds b = [] {
    const char* e = std::getenv("ISOLA_SPIN_US");
    long us = e && *e ? std::atol(e) : 20;
    return std::chrono::nanoseconds(std::max(0L, us) * 1000);
  }();
  return b;
}

/// Before sleeping on a mailbox (a futex wait, and a futex wake for the
/// other side, which on a VM may mean waking an idle vCPU: tens of µs): polls
/// cond for a short while, where a reply or the next request is expected
/// soon. Between polls it calls sched_yield: a peer waiting for this CPU
/// gets it at once (on one CPU this hands over faster than a futex sleep and
/// wake), and with nothing else to run the call returns at once (a peer on
/// another CPU is seen within ~0.5 µs). Pause-instruction spinning was
/// measured to cost ~0.5 µs per wait on one CPU and to gain nothing across
/// CPUs, where the peer takes ~1 µs to answer anyway. True as soon as cond
/// holds; false after the budget (ISOLA_SPIN_US, default 20 µs; 0: off).
template <class Cond>
bool spin_for(std::chrono::nanoseconds budget, Cond cond) {
  if (budget.count() == 0) return false;
  const auto end = clock::now() + budget;
  for (;;) {
    if (cond()) return true;
    ::sched_yield();
    if (clock::now() >= end) return cond();
  }
}
template <class Cond>
bool spin_until(Cond cond) {
  return spin_for(spin_budget(), cond);
}

/// While messages stream in, the next one is usually well under a
/// microsecond away: an actor that finds its mailbox empty busy-polls it
/// (pause instructions, no system call) for a few µs before sleeping. A
/// sender on another CPU then never pays a futex wake per message (measured:
/// 2.9 -> 5.5 M msgs/s across CPUs); on one CPU the sender is not running
/// while the actor polls, so an idle actor wastes this once per idle period.
/// It looks at the mailbox only every poll_gap: each look pulls the cache
/// line of the producers' commit word (and of the record being written)
/// away from a sender that is about to write it again, so a reader that
/// looks continuously keeps the two processes in lock step, one line
/// transfer each way per message. Looking every ~1 µs lets the sender
/// commit several messages per transfer and the actor take them as a batch
/// (bench/actors, split CPUs: ~3 M/s looking continuously, 7-12 M/s every
/// 1 µs; 0.5 µs was a little slower). A message that comes while the actor
/// waits is taken at most poll_gap late (ISOLA_POLL_GAP_NS, default 1000).
/// ISOLA_SPIN_US=0 turns polling off with the rest of the spinning.
std::chrono::nanoseconds poll_gap() {
  static const std::chrono::nanoseconds g = [] {
    const char* e = std::getenv("ISOLA_POLL_GAP_NS");
    long ns = e && *e ? std::atol(e) : 1000;
    return std::chrono::nanoseconds(std::max(0L, ns));
  }();
  return g;
}

template <class Cond>
bool poll_briefly(Cond cond) {
  if (spin_budget().count() == 0) return false;
  const auto start = clock::now();
  const auto end = start + std::chrono::microseconds(5);
  const auto gap = poll_gap();
  auto next = start + gap;
  for (;;) {
    for (int i = 0; i < 4; ++i) {
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#elif defined(__aarch64__)
      asm volatile("yield");
#endif
    }
    const auto now = clock::now();
    if (now >= end) return cond();
    if (now >= next) {
      if (cond()) return true;
      next = now + gap;
    }
  }
}

/// The last peer this thread posted to: a stream of messages to one actor
/// looks it up once, not once per message (under the registry's mutex). A
/// peer object stays valid for its id: it says dead() once the actor ended.
struct peer_cache {
  const context* c = nullptr;
  std::uint64_t id = 0;
  std::shared_ptr<peer> p;
};
thread_local peer_cache last_peer;

/// The cached peer for id (valid until this thread's next find_peer).
peer& find_peer(context& c, std::uint64_t id) {
  auto& lp = last_peer;
  if (lp.p && lp.id == id && lp.c == &c) return *lp.p;
  auto p = c.lookup(id);
  lp.c = &c;
  lp.id = id;
  lp.p = std::move(p);
  return *lp.p;
}

/// A reused envelope keeps its payload buffer for the next message, up to
/// this size: one large message does not stay allocated for good.
constexpr std::size_t keep_capacity = 64 * 1024;
void trim(envelope& e) noexcept {
  if (e.payload.capacity() > keep_capacity) bytes().swap(e.payload);
}

std::span<const std::byte> header_bytes(const envelope_header& h) {
  return {reinterpret_cast<const std::byte*>(&h), sizeof h};
}

/// Receives one ring message as an envelope.
class envelope_sink final : public ring_sink {
 public:
  explicit envelope_sink(envelope& out) : out_(out) {}
  void whole(std::span<const std::byte> a, std::span<const std::byte> b) override {
    const std::size_t total = a.size() + b.size();
    if (total < sizeof(envelope_header))
      throw decode_error("mailbox: a record shorter than its header");
    auto* h = reinterpret_cast<std::byte*>(&out_.h);
    std::size_t from_a = std::min(a.size(), sizeof(envelope_header));
    std::memcpy(h, a.data(), from_a);
    if (from_a < sizeof(envelope_header))
      std::memcpy(h + from_a, b.data(), sizeof(envelope_header) - from_a);
    out_.payload.clear();
    out_.payload.reserve(total - sizeof(envelope_header));
    if (a.size() > sizeof(envelope_header))
      out_.payload.insert(out_.payload.end(), a.begin() + sizeof(envelope_header), a.end());
    std::size_t skip_b =
        sizeof(envelope_header) > a.size() ? sizeof(envelope_header) - a.size() : 0;
    out_.payload.insert(out_.payload.end(), b.begin() + static_cast<std::ptrdiff_t>(skip_b),
                        b.end());
  }
  // A message streamed in pieces: the header's bytes go to the header, the
  // rest straight into the payload (one copy).
  void begin(std::uint64_t total) override {
    if (total < sizeof(envelope_header))
      throw decode_error("mailbox: a record shorter than its header");
    have_header_ = 0;
    out_.payload.clear();
    out_.payload.reserve(total - sizeof(envelope_header));
  }
  void append(std::span<const std::byte> piece) override {
    if (have_header_ < sizeof(envelope_header)) {
      std::size_t k = std::min(piece.size(), sizeof(envelope_header) - have_header_);
      std::memcpy(reinterpret_cast<std::byte*>(&out_.h) + have_header_, piece.data(), k);
      have_header_ += k;
      piece = piece.subspan(k);
    }
    out_.payload.insert(out_.payload.end(), piece.begin(), piece.end());
  }
  void end() override {
    if (have_header_ < sizeof(envelope_header))
      throw decode_error("mailbox: a record shorter than its header");
  }
  void reset() noexcept override {
    have_header_ = 0;
    out_.payload.clear();
  }

 private:
  envelope& out_;
  std::size_t have_header_ = 0;
};
}  // namespace

std::string demangle(const char* mangled) {
  int status = 0;
  char* d = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
  std::string out = (status == 0 && d) ? d : mangled;
  std::free(d);
  return out;
}

std::uint64_t mailbox_tag() {
  static const std::uint64_t t = type_tag<envelope_header>();
  return t;
}

std::exception_ptr to_exception(const error_info& e) {
  using k = error_info::kind;
  switch (e.what) {
    case k::no_handler:
      return std::make_exception_ptr(type_error(e.process_name + " (pid " + std::to_string(e.pid) +
                                                ") has no handler for a message of type " +
                                                e.type_name));
    case k::exception:
      return std::make_exception_ptr(remote_error(e.type_name, e.text, e.pid, e.process_name));
    case k::exited: return std::make_exception_ptr(actor_exited(e.text));
    case k::value: return std::make_exception_ptr(value_error(e.text));
    case k::timeout: return std::make_exception_ptr(timeout_error(e.text));
    case k::type: return std::make_exception_ptr(type_error(e.text));
    case k::full: return std::make_exception_ptr(queue_full(e.text));
    case k::decode:
      return std::make_exception_ptr(decode_error(
          e.process_name + " (pid " + std::to_string(e.pid) + ") could not decode a message of type " +
          e.type_name + " and dropped it: " + e.text));
    case k::other: break;
  }
  return std::make_exception_ptr(error(e.text));
}

error_info describe_failure(const std::exception_ptr& e) {
  using k = error_info::kind;
  error_info ei;
  ei.what = k::other;
  try {
    std::rethrow_exception(e);
  } catch (const remote_error& x) {
    ei = {k::exception, x.type_name(), x.remote_what(), x.pid(), x.process_name()};
  } catch (const type_error& x) {
    ei.what = k::type;
    ei.text = x.what();
  } catch (const actor_exited& x) {
    ei.what = k::exited;
    ei.text = x.reason();
  } catch (const value_error& x) {
    ei.what = k::value;
    ei.text = x.what();
  } catch (const timeout_error& x) {
    ei.what = k::timeout;
    ei.text = x.what();
  } catch (const queue_full& x) {
    ei.what = k::full;
    ei.text = x.what();
  } catch (const decode_error& x) {
    ei.what = k::decode;
    ei.text = x.what();
  } catch (const std::exception& x) {
    ei.text = x.what();
  } catch (...) {
    ei.text = "unknown error";
  }
  return ei;
}

current_request defer_current_request() {
  auto& r = this_request();
  if (!r.active)
    throw value_error(
        "isola::this_actor::make_response_promise: not inside a handler answering a request");
  if (r.deferred)
    throw value_error(
        "isola::this_actor::make_response_promise: this request already has its promise");
  r.deferred = true;
  return r;
}

void deliver_deferred(std::uint64_t sender, std::uint64_t ref, std::uint64_t tag,
                      std::span<const std::byte> payload) noexcept {
  try {
    post(sender, env_kind::reply, ref, tag, payload);
  } catch (const std::exception& ex) {
    get_logger().warning(std::string("isola: a deferred reply was dropped: ") + ex.what());
  }
}

void deliver_deferred_error(std::uint64_t sender, std::uint64_t ref, const std::string& type_name,
                            const std::string& what) noexcept {
  try {
    error_info ei{error_info::kind::exception, type_name, what, static_cast<int>(::getpid()),
                  ctx().self().name()};
    post(sender, env_kind::error_reply, ref, type_tag<error_info>(), encode(ei));
  } catch (const std::exception& ex) {
    get_logger().warning(std::string("isola: a deferred error reply was dropped: ") + ex.what());
  }
}

void throw_reply_type(std::uint64_t expected, const std::string& expected_name, std::uint64_t got) {
  throw type_error("the reply is a " + type_name_for_tag(got) + ", the request expected " +
                   expected_name + " (tag " + std::to_string(expected) + ")");
}

bool put_envelope(peer& p, const envelope_header& h, std::span<const std::byte> payload) {
  // Room at once (the common case): no deadline to compute.
  if (p.ring->put(header_bytes(h), payload, deadline::now())) return true;
  for (;;) {
    if (p.ring->put(header_bytes(h), payload, deadline::at_time(clock::now() + slice))) return true;
    if (p.dead()) return false;
  }
}

// ---------------------------------------------------------------- inbox

std::uint64_t inbox::add_pending(pending p) {
  std::uint64_t ref = next_ref_.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard lk(m_);
  pending_.emplace(ref, std::move(p));
  return ref;
}

void inbox::drop_pending(std::uint64_t ref) {
  std::lock_guard lk(m_);
  pending_.erase(ref);
}

void inbox::expect_behavior_down(std::uint64_t ref) {
  std::lock_guard lk(m_);
  behavior_downs_.push_back(ref);
}

bool inbox::read_one(time_point until) {
  envelope& e = scratch_;
  envelope_sink sink(e);
  bool got = false;
  try {
    got = ring_->get(sink, deadline::at_time(until));
  } catch (const decode_error& ex) {
    get_logger().error(std::string("mailbox: dropped a malformed envelope: ") + ex.what());
    return true;
  }
  if (!got) return false;
  if (route(e)) kept_.push_back(std::move(e));  // under pump_m_
  trim(e);
  return true;
}

int inbox::read_for_loop(envelope& out, std::optional<time_point> until) {
  trim(out);
  envelope_sink sink(out);
  bool got = false;
  try {
    got = ring_->get(sink, until ? deadline::at_time(*until) : deadline::now());
  } catch (const decode_error& ex) {
    get_logger().error(std::string("mailbox: dropped a malformed envelope: ") + ex.what());
    return 0;
  }
  if (!got) return -1;
  return route(out) ? 1 : 0;
}

bool inbox::route(envelope& e) {
  pending p;
  bool found = false;
  switch (e.kind()) {
    case env_kind::reply:
    case env_kind::error_reply:
    case env_kind::down: {
      std::lock_guard lk(m_);
      auto it = pending_.find(e.h.ref);
      if (it != pending_.end() && it->second.is_monitor == (e.kind() == env_kind::down)) {
        p = std::move(it->second);
        pending_.erase(it);
        found = true;
      } else if (e.kind() == env_kind::down && keep_others_) {
        auto bd = std::find(behavior_downs_.begin(), behavior_downs_.end(), e.h.ref);
        if (bd != behavior_downs_.end()) {
          behavior_downs_.erase(bd);
          return true;  // the behavior's (this_actor::monitor)
        }
      }
      break;
    }
    default: return keep_others_;  // the actor's loop takes it; a root inbox drops it
  }
  if (!found) return false;  // a late reply (cancelled, timed out) or a stray notice
  if (e.kind() == env_kind::error_reply) {
    try {
      p.st->fail(to_exception(decode<error_info>(e.payload)));
    } catch (...) {
      p.st->fail(std::current_exception());
    }
  } else {
    p.on_reply(e.h.tag, e.payload);
  }
  return false;
}

void inbox::check_pending(bool force) {
  auto c = coarse_now();
  if (!force && c - last_check_ < check_every) return;
  last_check_ = c;
  // A target that answered and then died: its reply is in the ring before
  // its death is visible (the root marks it dead after reaping it). So the
  // deaths are read once, then what the ring holds, and only then are the
  // requests of those dead targets failed; a target that dies after the
  // snapshot is handled at the next check, after its replies were read.
  // (Called with pump_m_ held, as read_one needs.)
  std::unordered_set<const peer*> dead;
  {
    std::lock_guard lk(m_);
    for (auto& [ref, p] : pending_)
      if (p.target && !dead.count(p.target.get()) && p.target->dead()) dead.insert(p.target.get());
  }
  if (!dead.empty())
    while (!ring_->empty() && read_one(clock::now())) {}
  auto now = clock::now();
  struct failing {
    pending p;
    bool timed_out;
  };
  std::vector<failing> out;
  {
    std::lock_guard lk(m_);
    if (pending_.empty()) return;
    for (auto it = pending_.begin(); it != pending_.end();) {
      auto& p = it->second;
      bool timed_out = p.deadline && now >= *p.deadline;
      bool gone = !timed_out && p.target && dead.count(p.target.get()) != 0;
      if (timed_out || gone) {
        out.push_back({std::move(p), timed_out});
        it = pending_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& f : out) {
    if (f.timed_out) {
      f.p.st->fail(std::make_exception_ptr(timeout_error("no reply within the request's timeout")));
      continue;
    }
    exit_reason r = f.p.target->reason();
    if (f.p.is_monitor) {
      down d{actor(f.p.target->id, f.p.target->pid, {}), r};
      f.p.on_reply(type_tag<down>(), encode(d));
    } else {
      f.p.st->fail(std::make_exception_ptr(actor_exited(r.to_string())));
    }
  }
}

void inbox::pump(std::optional<time_point> deadline) {
  std::unique_lock pl(pump_m_, std::defer_lock);
  if (!pl.try_lock()) {
    // Another thread reads this inbox and routes our reply when it comes;
    // look again shortly.
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return;
  }
  // A reply usually comes within microseconds: poll briefly before sleeping,
  // but not again after a whole slice went by without anything, nor when the
  // caller is not prepared to wait that long (future::ready()).
  if (!quiet_ && ring_->empty() && (!deadline || *deadline - clock::now() > spin_budget()))
    spin_until([this] { return !ring_->empty(); });
  auto until = clock::now() + slice;
  if (deadline && *deadline < until) until = *deadline;
  bool got = read_one(until);
  quiet_ = !got;
  check_pending(!got);
}

std::optional<envelope> inbox::next(std::optional<time_point> deadline) {
  envelope e;
  if (!next_into(e, deadline)) return std::nullopt;
  return e;
}

std::chrono::nanoseconds inbox::reply_spin() const {
  // After a reply the requester's next message is often a few tens of µs
  // away, but a remote requester (another node: its reply crosses two
  // multiplexers and TCP) takes ~150 µs, beyond the default budget, and
  // sleeping then costs a futex wake of an idle vCPU (tens of µs) on every
  // request. So the budget follows the recent gap between a reply and the
  // next message, up to 250 µs; an actor whose requests come further apart
  // keeps the default. Measured on bench/nodes: the remote round trip went
  // from 1.3x CAF's to ~0.65x (quiet 2-vCPU machine).
  const auto base = spin_budget();
  if (base.count() == 0) return base;
  constexpr auto cap = std::chrono::microseconds(250);
  if (reply_gap_ > cap) return base;
  return std::max<std::chrono::nanoseconds>(
      base, std::min<std::chrono::nanoseconds>(cap, 2 * reply_gap_));
}

bool inbox::next_into(envelope& out, std::optional<time_point> deadline, bool spin) {
  std::lock_guard pl(pump_m_);
  bool polled = false;
  const bool after_reply = spin;
  const auto entered = after_reply ? clock::now() : time_point{};
  auto note_gap = [&] {
    if (!after_reply) return;
    auto gap = std::chrono::duration_cast<std::chrono::nanoseconds>(clock::now() - entered);
    reply_gap_ = (3 * reply_gap_ + gap) / 4;
  };
  for (;;) {
    // kept_ changes only under pump_m_, which we hold.
    if (!kept_.empty()) {
      out = std::move(kept_.front());
      kept_.pop_front();
      note_gap();
      return true;
    }
    // kept_ is empty and only this thread reads the ring (pump_m_): an
    // envelope for the loop can go straight to the caller, in order. One
    // that is already waiting is taken without computing a deadline.
    // Only records already known of: looking for new ones at once, right
    // after the last message, is what keeps a stream in lock step (see
    // poll_briefly); the poll below looks after one gap.
    int r = ring_->known_records() ? read_for_loop(out, std::nullopt) : -1;
    if (r < 0) {
      // Once per call, so that an actor left idle sleeps: after a reply the
      // requester's next message (see spin_until), in a stream the next send.
      auto more = [this] { return !ring_->empty(); };
      if (spin ? spin_for(reply_spin(), more) : polled ? false : poll_briefly(more))
        r = read_for_loop(out, std::nullopt);
      spin = false;
      polled = true;
    }
    if (r < 0) {
      auto now = clock::now();
      if (deadline && now >= *deadline) return false;
      auto until = now + std::chrono::milliseconds(100);
      if (deadline && *deadline < until) until = *deadline;
      r = read_for_loop(out, until);
    }
    check_pending(r < 0);
    if (r > 0) {
      note_gap();
      return true;
    }
  }
}

bool inbox::try_next_into(envelope& out) {
  std::lock_guard pl(pump_m_);
  if (!kept_.empty()) {
    out = std::move(kept_.front());
    kept_.pop_front();
    return true;
  }
  for (;;) {
    int r = read_for_loop(out, std::nullopt);
    if (r < 0) return false;
    if (r > 0) return true;
  }
}

// ---------------------------------------------------------------- entry points

namespace {
thread_local bytes tl_encode_buffer;
thread_local bool tl_encode_buffer_busy = false;
}  // namespace

encode_buffer::encode_buffer() noexcept {
  if (tl_encode_buffer_busy) return;
  tl_encode_buffer_busy = true;
  borrowed_ = true;
  b_ = &tl_encode_buffer;
  b_->clear();
}

encode_buffer::~encode_buffer() {
  if (!borrowed_) return;
  if (tl_encode_buffer.capacity() > (std::size_t{1} << 20)) bytes().swap(tl_encode_buffer);
  tl_encode_buffer_busy = false;
}

bool post(std::uint64_t target, env_kind kind, std::uint64_t ref, std::uint64_t tag,
          std::span<const std::byte> payload) {
  auto& c = ctx();
  peer& p = find_peer(c, target);
  if (p.dead()) {
    c.dropped.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  envelope_header h;
  h.kind = static_cast<std::uint8_t>(kind);
  h.sender = c.self_id();
  h.ref = ref;
  h.tag = tag;
  if (!put_envelope(p, h, payload)) {
    c.dropped.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  return true;
}

post_result try_post(std::uint64_t target, env_kind kind, std::uint64_t ref, std::uint64_t tag,
                     std::span<const std::byte> payload) {
  auto& c = ctx();
  peer& p = find_peer(c, target);
  if (p.dead()) return post_result::dead;
  envelope_header h;
  h.kind = static_cast<std::uint8_t>(kind);
  h.sender = c.self_id();
  h.ref = ref;
  h.tag = tag;
  return p.ring->put(header_bytes(h), payload, deadline::now()) ? post_result::ok
                                                                : post_result::full;
}

namespace {
// A request with a deadline of its own wakes the pump by then even when its
// future is waited on without one (get()), so the timeout is not late by a
// slice.
void wire(const std::shared_ptr<future_core>& st, const std::shared_ptr<inbox>& ib,
          std::uint64_t ref, std::optional<time_point> own_deadline = std::nullopt) {
  std::weak_ptr<inbox> w = ib;
  std::lock_guard lk(st->m);
  st->pump = [w, own_deadline](std::optional<time_point> deadline) {
    if (own_deadline && (!deadline || *own_deadline < *deadline)) deadline = own_deadline;
    if (auto i = w.lock())
      i->pump(deadline);
    else
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
  };
  st->on_cancel = [w, ref] {
    if (auto i = w.lock()) i->drop_pending(ref);
  };
}
}  // namespace

void request(std::uint64_t target, std::uint64_t tag, std::span<const std::byte> payload,
             std::optional<time_point> deadline, const std::shared_ptr<future_core>& st,
             reply_fn on_reply) {
  auto& c = ctx();
  auto ib = c.my_inbox();
  find_peer(c, target);
  std::shared_ptr<peer> p = last_peer.p;
  if (p->dead()) {
    st->fail(std::make_exception_ptr(actor_exited(p->reason().to_string())));
    return;
  }
  std::uint64_t ref = ib->add_pending({p, st, std::move(on_reply), deadline, false});
  wire(st, ib, ref, deadline);
  envelope_header h;
  h.kind = static_cast<std::uint8_t>(env_kind::request);
  h.sender = ib->id();
  h.ref = ref;
  h.tag = tag;
  if (!put_envelope(*p, h, payload)) {
    ib->drop_pending(ref);
    st->fail(std::make_exception_ptr(actor_exited(p->reason().to_string())));
  }
}

void monitor(std::uint64_t target, const std::shared_ptr<future_core>& st, reply_fn on_down) {
  auto& c = ctx();
  auto ib = c.my_inbox();
  auto p = c.lookup(target);
  std::uint64_t ref = ib->add_pending({p, st, std::move(on_down), std::nullopt, true});
  wire(st, ib, ref);
  c.add_monitor(target, ib->id(), ref);
}

void context::forward_remote(const ctl_request&) {
  throw value_error("isola: only an actor process forwards to other nodes through its root");
}

void forward_remote(ctl_request::remote_op op, std::uint64_t node, std::uint64_t target,
                    std::uint64_t tag, std::span<const std::byte> payload,
                    std::optional<time_point> deadline, const std::shared_ptr<future_core>& st,
                    reply_fn on_reply) {
  using rop = ctl_request::remote_op;
  auto& c = ctx();
  ctl_request rq;
  rq.what = ctl_request::op::remote;
  rq.rop = op;
  rq.node = node;
  rq.id = target;
  rq.tag = tag;
  rq.payload.assign(reinterpret_cast<const char*>(payload.data()), payload.size());
  if (deadline)
    rq.timeout_ns = std::max<std::int64_t>(
        0, std::chrono::duration_cast<std::chrono::nanoseconds>(*deadline - clock::now()).count());
  if (op == rop::send || op == rop::stop) {
    c.forward_remote(rq);
    return;
  }
  auto ib = c.my_inbox();
  rq.ref = ib->add_pending({nullptr, st, std::move(on_reply), deadline, op == rop::monitor});
  wire(st, ib, rq.ref, deadline);
  try {
    c.forward_remote(rq);
  } catch (...) {
    ib->drop_pending(rq.ref);
    st->fail(std::current_exception());
  }
}

bool actor_alive(std::uint64_t id) { return !ctx().lookup(id)->dead(); }

void stop_actor(std::uint64_t id) { post(id, env_kind::stop, 0, 0, {}); }

void signal_actor(std::uint64_t id, int sig) {
  if (!in_actor_process()) {
    node_signal(id, sig);
    return;
  }
  auto p = ctx().lookup(id);  // actor_exited if it has ended
  if (!p->signal(sig) && !p->dead())
    throw value_error("isola::actor: cannot signal actor " + std::to_string(id));
}

}  // namespace detail

namespace this_actor {
actor self() { return detail::ctx().self(); }
namespace {
void check_linkable(const actor& a) {
  if (a.remote())
    throw value_error("isola::this_actor::link: " + a.name() +
                      " is an actor of another node; links across nodes are not supported "
                      "(this_actor::monitor it instead)");
}
}  // namespace
void link(const actor& a) {
  check_linkable(a);
  detail::ctx().link(a.id(), true);
}
void unlink(const actor& a) {
  check_linkable(a);
  detail::ctx().link(a.id(), false);
}
void trap_exit(bool on) { detail::ctx().trap_exit(on); }
void monitor(const actor& a) {
  auto& c = detail::ctx();
  if (a.remote() && !detail::in_actor_process())
    throw value_error(
        "isola::this_actor::monitor: not in an actor process (actor::monitor() "
        "returns a future of the down notice)");
  auto ib = c.my_inbox();
  std::uint64_t ref = ib->new_ref();
  ib->expect_behavior_down(ref);
  if (a.remote()) {
    // Through the root, which holds the connection (control.hpp).
    detail::ctl_request rq;
    rq.what = detail::ctl_request::op::remote;
    rq.rop = detail::ctl_request::remote_op::monitor;
    rq.node = a.node();
    rq.id = a.id();
    rq.ref = ref;
    c.forward_remote(rq);
    return;
  }
  c.add_monitor(a.id(), ib->id(), ref);
}
std::uint64_t dropped_messages() noexcept { return detail::ctx().dropped.load(); }
std::uint64_t undecodable_messages() noexcept { return detail::ctx().undecodable.load(); }
}  // namespace this_actor

}  // namespace isola
