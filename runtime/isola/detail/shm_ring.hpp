// isola/detail/shm_ring.hpp — the shared-memory message ring under queue,
// simple_queue and joinable_queue.
//
// One memfd holds a header page and a power-of-two byte ring. Any number of
// processes map it (fork shares the mapping; forkserver and spawn children get
// the memfd over SCM_RIGHTS and map it themselves). Messages are records in
// the ring; a message too large for one record streams through it in chunks.
// The protocol, the commit points and the recovery after a SIGKILL are
// described in runtime/src/channel/shm_ring.cpp; this header is the interface the
// queue templates use.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "isola/detail/deadline.hpp"

namespace isola::detail {

/// Receives one message from the ring, piece by piece, in the consumer that
/// holds the ring's get lock. Any member may throw; the ring then consumes
/// the rest of the message, drops it and rethrows after the commit.
class ring_sink {
 public:
  /// The whole message, in one piece or two (b is non-empty when the record
  /// wraps around the end of the ring). The default calls begin/append/end.
  virtual void whole(std::span<const std::byte> a, std::span<const std::byte> b) {
    begin(a.size() + b.size());
    append(a);
    if (!b.empty()) append(b);
    end();
  }
  /// A message of `total` bytes starts; append() receives them in order.
  virtual void begin(std::uint64_t total) = 0;
  virtual void append(std::span<const std::byte> piece) = 0;
  /// Every byte has arrived: build the value.
  virtual void end() = 0;
  /// The message was aborted by its producer: forget what arrived.
  virtual void reset() noexcept = 0;

 protected:
  ~ring_sink() = default;
};

/// Before a large message is received into it: asks the kernel to back the
/// buffer with huge pages (one fault per 2 MiB instead of per 4 KiB). A hint;
/// does nothing for buffers under 8 MiB.
void prepare_receive_buffer(void* data, std::size_t bytes) noexcept;

struct ring_config {
  std::size_t ring_bytes = std::size_t{1} << 20;
  std::size_t maxsize = 0;
  std::size_t max_message_size = std::size_t{1} << 30;
  unsigned spin = 0;
  /// Exactly one process (and in it one thread at a time) ever reads the
  /// ring, as an actor's mailbox: get takes no lock.
  bool single_consumer = false;
  std::uint64_t type_tag = 0;
  std::uint32_t kind = 0;  // which queue class created it (for debugging)
  // Where the position and message counters start: only tests set these, to
  // run through the wrap-around of the counters without 16 GiB of traffic.
  std::uint64_t start_position = 0;
  std::uint32_t start_count = 0;
};

class shm_ring {
 public:
  /// A new ring in a new memfd (and eventfd).
  static std::shared_ptr<shm_ring> create(const ring_config& cfg);
  /// In a child decoding its arguments: maps the ring whose two descriptors
  /// arrived as import_fd(mem_index) and import_fd(ev_index). Throws
  /// decode_error if they are not a ring holding values of type_tag.
  static std::shared_ptr<shm_ring> adopt(std::uint32_t mem_index, std::uint32_t ev_index,
                                         std::uint64_t type_tag);

  ~shm_ring();
  shm_ring(const shm_ring&) = delete;
  shm_ring& operator=(const shm_ring&) = delete;

  /// Appends one message made of the bytes of a then b. Returns false if the
  /// queue stayed full until the deadline (or at once, for nowait). Throws
  /// value_error if closed or larger than max_message_size, queue_corrupt
  /// if the shared memory was found overwritten (by this call or before, in
  /// any process: the ring is then closed for all of them).
  bool put(std::span<const std::byte> a, std::span<const std::byte> b, deadline d);
  /// Delivers the next message to sink. Returns false if none arrived by the
  /// deadline (a timed or non-blocking get that had begun receiving a chunked
  /// message whose producer then stalled drops that message: see the .cpp).
  /// Throws value_error if closed, queue_corrupt as put does, and whatever
  /// the sink threw.
  bool get(ring_sink& sink, deadline d);

  std::size_t qsize() const;
  bool empty() const;
  /// Single consumer only: true if records this consumer already knows of
  /// (from its last look at the producers' word) are still unread. Reads no
  /// line a producer writes, so polling it costs a producer nothing; a
  /// false answer may be stale (get() looks again).
  bool known_records() const noexcept;
  bool full() const;
  std::size_t maxsize() const;
  std::size_t ring_bytes() const;
  std::size_t max_message_size() const;

  /// For waitable: true if the ring holds a record (or the handle is
  /// closed); otherwise arms the eventfd and drains it (see the .cpp).
  bool ready_for_wait();
  int event_fd() const noexcept { return efd_; }
  int mem_fd() const noexcept { return memfd_; }

  /// queue::shutdown(): puts throw queue_shut_down from now on, in every
  /// process; gets take what is left, then throw it too (at once if
  /// immediate: the messages left are dropped, each with a task_done()).
  /// Every blocked put and get is woken.
  void shutdown(bool immediate);
  bool is_shut_down() const;

  /// joinable_queue accounting: messages put minus task_done() calls.
  void task_done();
  bool join(deadline d);
  std::size_t unfinished_tasks() const;

  /// Unmaps and closes the descriptors in this process. Not to be called
  /// while another thread of this process uses the ring.
  void close() noexcept;
  bool closed() const noexcept { return hdr_ == nullptr; }

  struct header;

  /// Where things are in the memfd and in this process's mapping, for the
  /// tests that play a process writing over a ring it shares (offsets of
  /// 64-bit words from the start of the memfd; ring bytes start at
  /// header_bytes; guard_bytes of PROT_NONE follow the last ring byte).
  struct shared_layout {
    std::size_t header_bytes, guard_bytes;
    std::size_t head, tail, head_cache, tail_cache, put_lock, broken;
  };
  static shared_layout layout() noexcept;

 private:
  shm_ring() = default;
  void map(int memfd, int efd);
  void load_constants();
  void check_open() const;
  void wake_everyone() noexcept;

  header* hdr_ = nullptr;
  std::byte* ring_ = nullptr;
  std::size_t map_bytes_ = 0;
  int memfd_ = -1;
  int efd_ = -1;
  // Copied out of the header when mapped: a process that scribbles on the
  // shared header cannot make this one index outside its mapping.
  std::uint64_t ring_bytes_ = 0;
  std::uint64_t maxsize_ = 0;
  std::uint64_t max_record_ = 0;
  std::uint64_t max_message_ = 0;
  unsigned spin_ = 0;
  bool single_consumer_ = false;
};

}  // namespace isola::detail
