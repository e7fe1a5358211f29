// The services an object kind's op handlers use (see object_context.hpp).
#include "manager/object_context.hpp"

#include "isola/logging.hpp"

#include <cxxabi.h>

#include <cstdlib>
#include <exception>
#include <typeinfo>

// The manager server's internals live in their own namespace: names such
// as peer and waiter are taken in isola::detail by the actor layer.
namespace isola::detail::mgr {

namespace {

std::string demangle(const char* n) {
  int st = 0;
  char* d = abi::__cxa_demangle(n, nullptr, nullptr, &st);
  std::string s = st == 0 && d ? d : n;
  std::free(d);
  return s;
}

}  // namespace

void put_u64(bytes& b, std::uint64_t v) {
  auto* p = reinterpret_cast<const std::byte*>(&v);
  b.insert(b.end(), p, p + 8);
}

void put_element(bytes& b, std::span<const std::byte> e) {
  auto n = static_cast<std::uint32_t>(e.size());
  auto* p = reinterpret_cast<const std::byte*>(&n);
  b.insert(b.end(), p, p + 4);
  b.insert(b.end(), e.begin(), e.end());
}

waiter* object_context::park(waiter_queue& q, const request& r) {
  if (r.timeout_ns == 0) {
    reply(r, mgr_status::timeout);
    return nullptr;
  }
  waiter w;
  w.wid = timers_.next_waiter_id();
  w.peer = r.peer;
  w.req = r.id;
  if (r.timeout_ns > 0) {
    w.timed = true;
    w.timer = timers_.add(clk::now() + std::chrono::nanoseconds(r.timeout_ns), {r.object, w.wid});
  }
  q.push_back(std::move(w));
  return &q.back();
}

waiter object_context::take_front(waiter_queue& q) {
  waiter w = std::move(q.front());
  q.pop_front();
  if (w.timed) timers_.cancel(w.timer);
  return w;
}

void object_context::forget_waiters(waiter_queue& q, std::uint64_t peer_id) {
  for (auto it = q.begin(); it != q.end();) {
    if (it->peer == peer_id) {
      if (it->timed) timers_.cancel(it->timer);
      it = q.erase(it);
    } else {
      ++it;
    }
  }
}

bool object_context::expire(waiter_queue& q, std::uint64_t wid) {
  for (auto w = q.begin(); w != q.end(); ++w) {
    if (w->wid != wid) continue;
    auto peer_id = w->peer, req = w->req;
    q.erase(w);  // its deadline is gone already
    reply(peer_id, req, mgr_status::timeout);
    return true;
  }
  return false;
}

std::optional<bytes> object_context::apply(const request& r, const bytes* current, bytes& slot) {
  if (!r.same_program) {
    reply_text(r, mgr_status::value_error,
               "update() sends a function's address, which only a client running the same "
               "program (the same executable) as the manager may do");
    return std::nullopt;
  }
  // The references are checked against this process's registry while they
  // are decoded and again for their types: a client naming anything else
  // gets a value_error, and the manager goes on.
  mgr_apply_spec spec;
  mgr_apply_fn tr = nullptr;
  try {
    spec = decode<mgr_apply_spec>(r.b);
    if (!spec.trampoline.fn) throw decode_error("an update without a trampoline");
    tr = spec.trampoline.as<mgr_apply_fn>("a manager update's trampoline");
    // fetch_add's trampoline takes no function; the others check its type
    if (spec.fn.fn) require_registered_any(spec.fn.fn, "a manager update");
  } catch (const value_error& e) {
    get_logger().warning(std::string("manager: refused an update: ") + e.what());
    reply_text(r, mgr_status::value_error, e.what());
    return std::nullopt;
  }
  slot = current ? *current : spec.initial;
  try {
    return tr(spec.fn.fn, slot, spec.args);
  } catch (const value_error& e) {
    // the trampoline's check of the function's type, or the function's own
    reply_text(r, mgr_status::value_error, e.what());
  } catch (const std::exception& e) {
    reply_text(r, mgr_status::remote_error, demangle(typeid(e).name()) + "\n" + e.what());
  } catch (...) {
    reply_text(r, mgr_status::remote_error, "unknown exception\nan update function threw");
  }
  return std::nullopt;
}

}  // namespace isola::detail::mgr
