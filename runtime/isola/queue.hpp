// isola/queue.hpp — a multi-producer, multi-consumer FIFO queue between
// processes, in shared memory (Python's multiprocessing.Queue).
//
//   isola::queue<int> q(3);                 // at most 3 items; 0 = unbounded
//   isola::process p(worker, q);            // a copy goes to the child
//   p.start();
//   q.put(42);                              // blocks while full; put(v, 2s),
//   int r = q.get();                        // put_nowait, try_put; get likewise
//   q.get_into(buf);                        // into buf, reusing its capacity
//
// A queue<T> carries values of one type T (any cereal-serializable type;
// queue<message>, the default, carries a value of any type, see message.hpp).
// It lives in a memfd mapped by every process that has the queue: copies made
// by fork share the mapping, and a queue given to a forkserver or spawn child
// as a process argument sends the memfd along. The memory has no name (not
// in /dev/shm, not anywhere): there is nothing to unlink, and it is freed
// when the last process holding it exits, even if every one is SIGKILLed.
//
// What every process sees:
// - Any number of processes put and get. Each message is delivered to exactly
//   one get, whole, and the messages of one producer in the order it put
//   them. A message may be larger than the queue's ring (up to
//   max_message_size, 1 GiB by default): it then streams through the ring in
//   chunks while a consumer receives it.
// - put blocks while the queue is full: maxsize messages (if maxsize > 0), or
//   not enough free bytes in the ring. get blocks while it is empty. The
//   timed forms throw queue_full / queue_empty after the timeout, the
//   _nowait forms at once, the try_ forms return false / nullopt.
// - qsize() is exact: the messages completely put and not yet taken. A
//   message larger than a ring chunk counts from the moment its last byte is
//   in the ring (a consumer may already be receiving its first bytes).
// - A process SIGKILLed at any point inside put or get leaves the queue
//   usable by all others, never locked, never with a torn message, and never
//   makes a message arrive twice. A message is taken at one instant inside
//   get: a consumer killed before it leaves the message in the queue, one
//   killed after it (or in the middle of receiving a chunked message) has
//   consumed it: at most one message is lost per killed consumer. A message
//   whose producer is killed before its last byte is in is dropped whole.
// - A process that writes over the queue's shared memory (a bug, or hostile)
//   cannot make another one crash, touch memory outside the queue, or wait
//   past its deadline: what is read there is checked before it is used, and
//   anything inconsistent closes the queue for every process; every call on
//   it then throws queue_corrupt (a value_error), waiters included.
// - shutdown(immediate) ends the queue for every process (Python 3.13's
//   queue.Queue.shutdown): puts throw queue_shut_down, gets drain what is
//   left and then throw it; blocked calls are woken. close() by contrast
//   only ends this handle.
// - close() ends this handle and its copies in this process only (unmaps the
//   memory, closes the descriptors); every later call on it throws
//   value_error("queue is closed"). Other processes are not affected, and a
//   get blocked in another process keeps waiting for other producers. Do not
//   close a queue while another thread of this process is inside put or get.
//
// Timing details. A message larger than the ring goes in only while someone
// gets it (a put(v, t) that times out half-way aborts it: no consumer sees
// any of it). A get(t) or get_nowait() that has begun receiving a chunked
// message finishes receiving it, or sees it aborted, before it returns: its
// producer is streaming it at memory speed, and a producer that died is
// noticed within 20 ms; but if that producer stalls (is stopped, say), the
// get gives up once its deadline has passed and no chunk came for 100 ms,
// and that message is lost (its producer's put still returns normally). A non-blocking or timed call may wait up to 10 ms past
// its deadline for another process's put or get to release the lock it holds
// for a copy. After a process is killed between making a message (or room)
// available and waking the processes waiting for it, those wake up within
// 100 ms (every sleep re-checks that often); wait() on the queue only at the
// next put or its own timeout.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <utility>

#include "isola/codec.hpp"
#include "isola/detail/handle_transfer.hpp"
#include "isola/detail/queue_codec.hpp"
#include "isola/detail/shm_ring.hpp"
#include "isola/error.hpp"
#include "isola/message.hpp"
#include "isola/type_name.hpp"
#include "isola/wait.hpp"

namespace isola {

using duration = std::chrono::duration<double>;

struct queue_options {
  /// Bytes of the shared ring, rounded up to a power of two (4 KiB .. 4 GiB).
  /// Each message takes its encoding plus 8 to 15 bytes; a message whose
  /// record does not fit a quarter of the ring (at most 1 MiB) is chunked.
  std::size_t ring_bytes = std::size_t{1} << 20;
  /// Largest encoded message put() accepts (value_error beyond, nothing put)
  /// and get() believes (a larger length is corruption).
  std::size_t max_message_size = std::size_t{1} << 30;
  /// How long a blocked put or get spins before it sleeps, in pause
  /// instructions (~15 ns each here; it re-checks with backoff). Spinning
  /// saves a sleep and a wake-up system call when the other side runs on
  /// another core; 0 sleeps at once.
  unsigned spin = 1024;
};

template <class T = message>
class queue {
  static_assert(is_serializable_v<T>,
                "isola::queue<T>: T must be cereal-serializable and default-constructible");

 public:
  using value_type = T;

  /// A new, empty queue holding at most maxsize messages (0: as many as the
  /// ring has room for).
  explicit queue(std::size_t maxsize = 0, queue_options opts = {}) : queue(maxsize, opts, 1) {}

  /// Copies share the queue (in this process: also its closed state).
  queue(const queue&) = default;
  queue& operator=(const queue&) = default;
  queue(queue&&) noexcept = default;
  queue& operator=(queue&&) noexcept = default;
  ~queue() = default;

  /// Puts v, waiting while the queue is full.
  void put(const T& v) { put_impl(v, detail::deadline::forever()); }
  /// Puts v, waiting at most timeout; queue_full if still full then.
  void put(const T& v, duration timeout) {
    if (!put_impl(v, detail::deadline::after(timeout))) throw_full();
  }
  /// Puts v if there is room now; queue_full otherwise.
  void put_nowait(const T& v) {
    if (!put_impl(v, detail::deadline::now())) throw_full();
  }
  /// Puts v if there is room now; returns whether it did.
  bool try_put(const T& v) { return put_impl(v, detail::deadline::now()); }

  /// Takes the next message, waiting while the queue is empty.
  T get() { return std::move(*get_impl(detail::deadline::forever())); }
  /// Takes the next message, waiting at most timeout; queue_empty if none came.
  T get(duration timeout) {
    auto v = get_impl(detail::deadline::after(timeout));
    if (!v) throw_empty();
    return std::move(*v);
  }
  /// Takes the next message if there is one now; queue_empty otherwise.
  T get_nowait() {
    auto v = get_impl(detail::deadline::now());
    if (!v) throw_empty();
    return std::move(*v);
  }
  /// Takes the next message if there is one now.
  std::optional<T> try_get() { return get_impl(detail::deadline::now()); }

  /// get(), into out, reusing its memory: a std::vector or std::basic_string
  /// of arithmetic elements keeps its capacity (cleared, reallocated only if
  /// the message is larger), so a loop receiving large buffers into the same
  /// object allocates and faults in no memory after the first; a
  /// cereal-serialized type is decoded into out (its containers keep their
  /// capacity); other types are assigned. Same waiting, ordering and kill
  /// guarantees as get(). out is written only once a message is taken: a
  /// timeout leaves it untouched, unless a message had begun arriving and
  /// was then aborted by its dying producer (out is then empty). If decoding
  /// throws, out holds an unspecified valid value.
  void get_into(T& out) { get_into_impl(out, detail::deadline::forever()); }
  /// get(timeout) into out; queue_empty if no message came in time.
  void get_into(T& out, duration timeout) {
    if (!get_into_impl(out, detail::deadline::after(timeout))) throw_empty();
  }
  /// try_get() into out: whether a message was taken.
  bool try_get_into(T& out) { return get_into_impl(out, detail::deadline::now()); }

  /// Messages in the queue (exact, but others may change it at any moment).
  std::size_t qsize() const { return ring().qsize(); }
  /// qsize() == 0.
  bool empty() const { return ring().empty(); }
  /// Whether a put of the smallest message would block now: maxsize messages
  /// are in the queue, or the ring has no room left.
  bool full() const { return ring().full(); }
  /// The maxsize given to the constructor.
  std::size_t maxsize() const { return ring().maxsize(); }

  /// Python 3.13's Queue.shutdown(immediate), for every process that has
  /// the queue: put then throws queue_shut_down; get takes what is left and
  /// then throws it (at once if immediate: the messages left are dropped,
  /// each counted as a task_done() for joinable_queue::join). Blocked puts
  /// and gets, in any process, are woken and throw it. Cannot be undone.
  void shutdown(bool immediate = false) { ring().shutdown(immediate); }
  /// Whether shutdown() was called (by any process).
  bool is_shut_down() const { return ring().is_shut_down(); }

  /// Ends this handle (and its copies) in this process; see the header comment.
  void close() noexcept {
    if (ring_) ring_->close();
  }
  bool closed() const noexcept { return !ring_ || ring_->closed(); }

  /// For isola::wait(): ready when the queue holds a message (get() would
  /// not block), or the handle is closed.
  waitable wait_handle() const {
    std::shared_ptr<detail::shm_ring> r = ring_ptr();
    return waitable(
        r->event_fd(), [r] { return r->ready_for_wait(); }, /*confirm=*/true);
  }

  /// Only while process arguments are encoded/decoded (see handle_transfer.hpp).
  template <class Archive>
  void save(Archive& ar) const {
    const auto& r = ring();
    ar(detail::export_fd(r.mem_fd()), detail::export_fd(r.event_fd()));
  }
  template <class Archive>
  void load(Archive& ar) {
    std::uint32_t mem = 0, ev = 0;
    ar(mem, ev);
    ring_ = detail::shm_ring::adopt(mem, ev, type_tag<T>());
  }

 protected:
  queue(std::size_t maxsize, const queue_options& opts, std::uint32_t kind) {
    detail::ring_config cfg;
    cfg.ring_bytes = opts.ring_bytes;
    cfg.maxsize = maxsize;
    cfg.max_message_size = opts.max_message_size;
    cfg.spin = opts.spin;
    cfg.type_tag = type_tag<T>();
    cfg.kind = kind;
    ring_ = detail::shm_ring::create(cfg);
  }

  detail::shm_ring& ring() const {
    if (!ring_ || ring_->closed()) throw value_error("queue is closed");
    return *ring_;
  }
  std::shared_ptr<detail::shm_ring> ring_ptr() const {
    ring();
    return ring_;
  }

 private:
  bool put_impl(const T& v, detail::deadline d) {
    auto& r = ring();
    detail::put_parts parts = detail::queue_encode(v);
    bool ok = r.put(parts.head(), parts.body, d);
    if constexpr (!detail::queue_raw_v<T> && !detail::queue_bulk<T>::value &&
                  !std::is_same_v<T, message>)
      detail::trim_queue_scratch();
    return ok;
  }

  std::optional<T> get_impl(detail::deadline d) {
    auto& r = ring();
    detail::queue_sink<T> sink;
    if (!r.get(sink, d)) return std::nullopt;
    return std::move(sink.value);
  }

  bool get_into_impl(T& out, detail::deadline d) {
    auto& r = ring();
    detail::queue_sink<T> sink(out);
    return r.get(sink, d);
  }

  [[noreturn]] static void throw_full() { throw queue_full("queue is full"); }
  [[noreturn]] static void throw_empty() { throw queue_empty("queue is empty"); }

  std::shared_ptr<detail::shm_ring> ring_;
};

}  // namespace isola
