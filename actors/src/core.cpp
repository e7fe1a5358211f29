// Envelopes, inboxes and the template entry points shared by the root and
// actor processes.
#include "core.hpp"

#include <poll.h>
#include <string.h>

#include <algorithm>
#include <cstring>
#include <ostream>
#include <thread>

#include "isola/error.hpp"
#include "isola/logging.hpp"

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
  }
  return "unknown";
}

std::ostream& operator<<(std::ostream& os, const exit_reason& r) { return os << r.to_string(); }
std::ostream& operator<<(std::ostream& os, exit_reason::kind k) {
  static const char* names[] = {"normal", "exit_code", "signal", "exception", "linked", "shutdown", "unknown"};
  auto i = static_cast<unsigned>(k);
  return os << (i < 7 ? names[i] : "?");
}
std::ostream& operator<<(std::ostream& os, const actor& a) {
  return os << a.name() << " (id " << a.id() << ", pid " << a.pid() << ")";
}

namespace detail {

namespace {
constexpr auto slice = std::chrono::milliseconds(20);
constexpr auto check_every = std::chrono::milliseconds(5);

std::span<const std::byte> header_bytes(const envelope_header& h) {
  return {reinterpret_cast<const std::byte*>(&h), sizeof h};
}

/// Receives one ring message as an envelope.
class envelope_sink final : public ring_sink {
 public:
  explicit envelope_sink(envelope& out) : out_(out) {}
  void whole(std::span<const std::byte> a, std::span<const std::byte> b) override {
    const std::size_t total = a.size() + b.size();
    if (total < sizeof(envelope_header)) throw decode_error("mailbox: a record shorter than its header");
    auto* h = reinterpret_cast<std::byte*>(&out_.h);
    std::size_t from_a = std::min(a.size(), sizeof(envelope_header));
    std::memcpy(h, a.data(), from_a);
    if (from_a < sizeof(envelope_header))
      std::memcpy(h + from_a, b.data(), sizeof(envelope_header) - from_a);
    out_.payload.clear();
    out_.payload.reserve(total - sizeof(envelope_header));
    if (a.size() > sizeof(envelope_header))
      out_.payload.insert(out_.payload.end(), a.begin() + sizeof(envelope_header), a.end());
    std::size_t skip_b = sizeof(envelope_header) > a.size() ? sizeof(envelope_header) - a.size() : 0;
    out_.payload.insert(out_.payload.end(), b.begin() + static_cast<std::ptrdiff_t>(skip_b), b.end());
  }
  void begin(std::uint64_t total) override {
    if (total < sizeof(envelope_header)) throw decode_error("mailbox: a record shorter than its header");
    buf_.clear();
    buf_.reserve(total);
  }
  void append(std::span<const std::byte> piece) override {
    buf_.insert(buf_.end(), piece.begin(), piece.end());
  }
  void end() override {
    std::memcpy(&out_.h, buf_.data(), sizeof(envelope_header));
    out_.payload.assign(buf_.begin() + sizeof(envelope_header), buf_.end());
  }
  void reset() noexcept override { buf_.clear(); }

 private:
  envelope& out_;
  bytes buf_;
};
}  // namespace

std::uint64_t mailbox_tag() {
  static const std::uint64_t t = type_tag<envelope_header>();
  return t;
}

std::exception_ptr to_exception(const error_info& e) {
  if (e.what == error_info::kind::no_handler)
    return std::make_exception_ptr(type_error(e.process_name + " (pid " + std::to_string(e.pid) +
                                              ") has no handler for a message of type " +
                                              e.type_name));
  return std::make_exception_ptr(remote_error(e.type_name, e.text, e.pid, e.process_name));
}

void throw_reply_type(std::uint64_t expected, const std::string& expected_name, std::uint64_t got) {
  throw type_error("the reply is a " + type_name_for_tag(got) + ", the request expected " +
                   expected_name + " (tag " + std::to_string(expected) + ")");
}

bool put_envelope(peer& p, const envelope_header& h, std::span<const std::byte> payload) {
  for (;;) {
    if (p.ring->put(header_bytes(h), payload, op_deadline{wait_mode::timed, clock::now() + slice}))
      return true;
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
  envelope e;
  envelope_sink sink(e);
  bool got = false;
  try {
    got = ring_->get(sink, op_deadline{wait_mode::timed, until});
  } catch (const decode_error& ex) {
    get_logger().error(std::string("mailbox: dropped a malformed envelope: ") + ex.what());
    return true;
  }
  if (!got) return false;
  route(std::move(e));
  return true;
}

void inbox::route(envelope&& e) {
  pending p;
  bool found = false;
  {
    std::lock_guard lk(m_);
    switch (e.kind()) {
      case env_kind::reply:
      case env_kind::error_reply:
      case env_kind::down: {
        auto it = pending_.find(e.h.ref);
        if (it != pending_.end() && it->second.is_monitor == (e.kind() == env_kind::down)) {
          p = std::move(it->second);
          pending_.erase(it);
          found = true;
        } else if (e.kind() == env_kind::down && keep_others_) {
          auto bd = std::find(behavior_downs_.begin(), behavior_downs_.end(), e.h.ref);
          if (bd != behavior_downs_.end()) {
            behavior_downs_.erase(bd);
            kept_.push_back(std::move(e));
          }
        }
        break;
      }
      default:
        if (keep_others_) kept_.push_back(std::move(e));
        break;
    }
  }
  if (!found) return;  // a late reply (cancelled, timed out) or a stray notice
  if (e.kind() == env_kind::error_reply) {
    try {
      p.st->fail(to_exception(decode<error_info>(e.payload)));
    } catch (...) {
      p.st->fail(std::current_exception());
    }
  } else {
    p.on_reply(e.h.tag, e.payload);
  }
}

void inbox::check_pending(bool force) {
  auto now = clock::now();
  if (!force && now - last_check_ < check_every) return;
  last_check_ = now;
  struct failing {
    pending p;
    bool timed_out;
  };
  std::vector<failing> out;
  {
    std::lock_guard lk(m_);
    if (pending_.empty()) return;
    std::unordered_map<peer*, bool> dead;
    for (auto it = pending_.begin(); it != pending_.end();) {
      auto& p = it->second;
      bool timed_out = p.deadline && now >= *p.deadline;
      bool gone = false;
      if (!timed_out && p.target) {
        auto [d, fresh] = dead.emplace(p.target.get(), false);
        if (fresh) d->second = p.target->dead();
        gone = d->second;
      }
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
  auto until = clock::now() + slice;
  if (deadline && *deadline < until) until = *deadline;
  bool got = read_one(until);
  check_pending(!got);
}

std::optional<envelope> inbox::next(std::optional<time_point> deadline) {
  std::lock_guard pl(pump_m_);
  for (;;) {
    {
      std::lock_guard lk(m_);
      if (!kept_.empty()) {
        envelope e = std::move(kept_.front());
        kept_.pop_front();
        return e;
      }
    }
    auto now = clock::now();
    if (deadline && now >= *deadline) return std::nullopt;
    auto until = now + std::chrono::milliseconds(100);
    if (deadline && *deadline < until) until = *deadline;
    bool got = read_one(until);
    check_pending(!got);
  }
}

// ---------------------------------------------------------------- entry points

bool post(std::uint64_t target, env_kind kind, std::uint64_t ref, std::uint64_t tag,
          std::span<const std::byte> payload) {
  auto& c = ctx();
  auto p = c.lookup(target);
  if (p->dead()) {
    c.dropped.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  envelope_header h;
  h.kind = static_cast<std::uint8_t>(kind);
  h.sender = c.self().id();
  h.ref = ref;
  h.tag = tag;
  if (!put_envelope(*p, h, payload)) {
    c.dropped.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  return true;
}

namespace {
void wire(const std::shared_ptr<future_core>& st, const std::shared_ptr<inbox>& ib,
          std::uint64_t ref) {
  std::weak_ptr<inbox> w = ib;
  std::lock_guard lk(st->m);
  st->pump = [w](std::optional<time_point> deadline) {
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
  auto p = c.lookup(target);
  if (p->dead()) {
    st->fail(std::make_exception_ptr(actor_exited(p->reason().to_string())));
    return;
  }
  std::uint64_t ref = ib->add_pending({p, st, std::move(on_reply), deadline, false});
  wire(st, ib, ref);
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

bool actor_alive(std::uint64_t id) { return !ctx().lookup(id)->dead(); }

void stop_actor(std::uint64_t id) { post(id, env_kind::stop, 0, 0, {}); }

}  // namespace detail

namespace this_actor {
actor self() { return detail::ctx().self(); }
void link(const actor& a) { detail::ctx().link(a.id(), true); }
void unlink(const actor& a) { detail::ctx().link(a.id(), false); }
void trap_exit(bool on) { detail::ctx().trap_exit(on); }
void monitor(const actor& a) {
  auto& c = detail::ctx();
  auto ib = c.my_inbox();
  std::uint64_t ref = ib->new_ref();
  ib->expect_behavior_down(ref);
  c.add_monitor(a.id(), ib->id(), ref);
}
std::uint64_t dropped_messages() noexcept { return detail::ctx().dropped.load(); }
}  // namespace this_actor

}  // namespace isola
