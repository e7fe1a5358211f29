// isola/distributed/queue.hpp — a FIFO queue held by a coordinator actor, so
// that producers and consumers on different nodes can share it.
//
//   auto q = isola::distributed::queue<job>::create(node_b, 100);  // on B
//   q.put(job{1});                   // from here
//   job j = q.get();                 // from anyone holding q (B's actors too)
//
// The coordinator keeps the items (encoded) and answers a get when an item is
// there, a put when there is room (maxsize 0: unbounded), first come first
// served. isola::queue is the same-host fast path (a shared-memory ring).
//
// What every process sees: each item is got exactly once, in the order the
// puts were accepted. A get or put whose timeout passes while the
// coordinator was answering it still gets its answer (it asks again with its
// ticket), so no item is lost to a timeout; an item handed to a getter that
// then dies is lost with it, as with any queue. put(t)/try_put on a full
// queue: queue_full; get(t)/try_get on an empty one: queue_empty (Python's
// Full and Empty). If the coordinator dies, every call fails with
// actor_exited.
#pragma once

#include <cstdint>
#include <optional>

#include "isola/actor.hpp"
#include "isola/codec.hpp"
#include "isola/detail/coordination.hpp"
#include "isola/error.hpp"
#include "isola/node.hpp"

namespace isola::distributed {

template <class T>
class queue : public detail::coord::client {
  static_assert(is_serializable_v<T>,
                "isola::distributed::queue<T>: T must be cereal-serializable");

 public:
  queue() = default;

  /// Starts a coordinator on this host (root only); maxsize 0: unbounded.
  static queue create(std::int64_t maxsize = 0, spawn_options opts = {}) {
    check(maxsize);
    if (opts.name.empty()) opts.name = "isola.queue";
    return queue(spawn(opts, &detail::coord::queue_coordinator, maxsize));
  }
  /// Starts the coordinator on node `where`.
  static queue create(const node& where, std::int64_t maxsize = 0, spawn_options opts = {}) {
    check(maxsize);
    if (opts.name.empty()) opts.name = "isola.queue";
    return queue(where.spawn(opts, &detail::coord::queue_coordinator, maxsize));
  }

  void put(const T& v) const { (void)put_impl(v, true, std::nullopt); }
  /// queue_full if there is no room within t.
  void put(const T& v, duration t) const {
    if (!put_impl(v, true, t)) throw queue_full("isola::distributed::queue: full");
  }
  void put_nowait(const T& v) const {
    if (!put_impl(v, false, std::nullopt)) throw queue_full("isola::distributed::queue: full");
  }
  bool try_put(const T& v) const { return put_impl(v, false, std::nullopt); }

  T get() const { return std::move(*get_impl(true, std::nullopt)); }
  /// queue_empty if no item comes within t.
  T get(duration t) const {
    auto v = get_impl(true, t);
    if (!v) throw queue_empty("isola::distributed::queue: empty");
    return std::move(*v);
  }
  T get_nowait() const {
    auto v = get_impl(false, std::nullopt);
    if (!v) throw queue_empty("isola::distributed::queue: empty");
    return std::move(*v);
  }
  std::optional<T> try_get() const { return get_impl(false, std::nullopt); }

  std::size_t qsize() const {
    return static_cast<std::size_t>(
        c().template request<std::int64_t>(detail::coord::q_size{}).get());
  }
  bool empty() const { return qsize() == 0; }
  bool full() const {
    auto m = maxsize();
    return m > 0 && qsize() >= m;
  }
  std::size_t maxsize() const {
    return static_cast<std::size_t>(
        c().template request<std::int64_t>(detail::coord::q_maxsize{}).get());
  }

  template <class Archive>
  void serialize(Archive& ar) {
    ar(coord_);
  }

 private:
  explicit queue(actor a) : client(std::move(a)) {}
  static void check(std::int64_t maxsize) {
    if (maxsize < 0) throw value_error("isola::distributed::queue: maxsize must not be negative");
  }
  const actor& c() const { return checked("queue"); }
  bool put_impl(const T& v, bool blocking, std::optional<duration> t) const {
    namespace co = detail::coord;
    co::q_put m{co::new_ticket(), blocking, t.has_value(), encode(v)};
    return co::ask<std::int32_t>(c(), m, t, co::q_put_timed_out{m.ticket}) == co::ok;
  }
  std::optional<T> get_impl(bool blocking, std::optional<duration> t) const {
    namespace co = detail::coord;
    co::q_get m{co::new_ticket(), blocking, t.has_value()};
    auto r = co::ask<co::q_item>(c(), m, t, co::q_get_timed_out{m.ticket});
    if (r.st != co::ok) return std::nullopt;
    return decode<T>(r.item);
  }
};

}  // namespace isola::distributed
