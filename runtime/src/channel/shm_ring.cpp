// The shared-memory ring under isola's queues: layout, commit points, waiting,
// and recovery when a process is SIGKILLed in the middle of a put or a get.
//
// LAYOUT. One memfd (MFD_CLOEXEC, sealed against resizing): a 4 KiB header,
// then a ring of 2^k bytes (4 KiB .. 4 GiB). The header has a read-only part
// (configuration, copied into each process at map time so that a corrupted
// header cannot make us index outside the mapping), then five cache lines:
// what only producers touch (put_lock, head_cache), what producers write and
// consumers read (tail, data_seq, fd_armed), the same two for consumers
// (get_lock, tail_cache; head, space_seq), and the task counter of
// joinable_queue. A lock's line never bounces to the other side.
//
// RECORDS. A record is an 8-byte header {u32 len, u32 kind} and len payload
// bytes, padded to 8; records start at 8-aligned positions, so a header never
// wraps but a payload may (it is copied in two pieces). A message whose record
// fits in max_record (ring/4, at most 1 MiB) is one WHOLE record. A larger one
// is FIRST (payload: u64 total length, then data), MIDDLE..., LAST, written one
// by one while put_lock is held, so the chunks of one message are contiguous;
// the consumer streams them into its result as they arrive, so a message may
// be far larger than the ring. ABORT (no payload) ends a message that will
// never be finished.
//
// POSITIONS AND COUNTS. `tail` and `head` are each one 64-bit word:
//   bits 0..33  byte position, modulo 2^34 (the ring is at most 2^32)
//   bits 34..62 message count, modulo 2^29: messages whose WHOLE or LAST
//               record was committed (tail) / consumed (head)
//   bit 63      in_msg: a multi-record message is open (tail: its FIRST is
//               committed but not its LAST or ABORT; head: its FIRST consumed)
// Bytes in the ring = tail.pos - head.pos; qsize = tail.count - head.count.
// A ring never holds more than ring/16 <= 2^28 messages, so the modular
// difference is exact. head_cache (put side) and tail_cache (get side) are
// copies of the other side's word, written only under the owner's lock, and
// always satisfy head_cache <= head <= tail and head <= tail_cache <= tail:
// a stale cache only makes the ring look fuller (or emptier) than it is.
//
// COMMIT POINTS. A producer copies a record into the free part of the ring and
// then stores the new tail word; a consumer reads the record at head and then
// stores the new head word. Each store is one 64-bit atomic store that moves
// the position, the count and in_msg together. So a process killed at any
// instant has either committed a record entirely (its bytes, its count) or
// not at all: nothing half-written is ever visible, and a count can never
// disagree with the ring. The invariants, true between any two instructions:
//   I1  every record in [head.pos, tail.pos) is complete;
//   I2  tail.count - head.count = complete messages in the ring (their LAST or
//       WHOLE record is in the ring) — qsize is exact;
//   I3  while tail.in_msg, at least 8 bytes are free (each FIRST or MIDDLE
//       record is written only if 8 bytes stay free after it), so an ABORT
//       can always be appended without waiting;
//   I4  (joinable) unfinished = tail.count - done, where done counts the
//       task_done() calls; both change by single atomic operations.
//
// LOCKS AND RECOVERY. put_lock and get_lock are robust, process-shared pthread
// mutexes (a single-consumer ring, an actor's mailbox, never takes get_lock:
// its one reader has nobody to exclude, and a reader that dies takes the
// mailbox with it). A process that dies holding one leaves it to the next locker with
// EOWNERDEAD; that locker repairs and calls pthread_mutex_consistent:
// - put side: if tail.in_msg, the dead producer left a message half-sent;
//   append an ABORT (room guaranteed by I3). Everything else is consistent
//   by I1/I2. A consumer that waits mid-message on an empty ring tries
//   put_lock itself, so a dead producer is noticed even with no other
//   producer around.
// - get side: nothing to repair. A consumer that dies mid-message leaves the
//   rest of that message at head; the next consumer, which is not assembling
//   anything, drops MIDDLE and LAST records it did not see the FIRST of
//   ("orphans"), counting the LAST as consumed. The message is lost, once.
// - A consumer assembling a message drops it on ABORT (or on a FIRST or WHOLE,
//   which can only follow an aborted message).
// A message is consumed at the head commit: a consumer killed before it has
// not taken it (the next consumer gets it), one killed after it has, and it
// is gone. Nothing is ever delivered twice.
//
// WAITING. Nobody sleeps holding a lock, except a producer or consumer in the
// middle of a multi-record message (the other side is streaming it). Sleepers
// use futexes (shared, not PRIVATE) on 32-bit words: data_seq (consumers wait
// for records) and space_seq (producers wait for room), whose bit 0 says "a
// sleeper may be here" and whose upper bits are a sequence. A sleeper sets the
// bit, re-checks its condition, and sleeps on the exact value; the other side
// stores its commit (seq_cst), reads the word and, only if the bit is set,
// bumps the sequence, clears the bit and calls FUTEX_WAKE: an uncontended put
// or get makes no system call. Before sleeping, a bounded spin (the `spin`
// option) re-checks the condition. A process killed between its commit and its
// wake could leave a sleeper asleep with work to do, so every sleep is capped
// at wake_slice and re-checks: after such a kill the worst case is a delay of
// one slice, never a hang.
//
// wait() (isola::wait) watches an eventfd: a waiter drains it, sets fd_armed
// and re-checks the ring; a producer that commits while fd_armed is set writes
// the eventfd, then clears fd_armed. A producer never writes the eventfd
// otherwise, so the fast path pays one load.
//
// STALLED PEERS. A producer stopped (SIGSTOP, a debugger) in the middle of a
// multi-record message holds put_lock, and the consumer receiving that
// message holds get_lock while it waits for the rest. Nobody past a deadline
// waits for them: other producers' and consumers' timed or non-blocking calls
// give up on the lock at their deadline (lock()), and the receiving consumer,
// if its own call is timed or non-blocking, gives up once its deadline has
// passed and no chunk has come for stall_grace: it drops what it received and
// leaves the head in_msg, so the rest of that message is dropped as orphans
// when it comes (the message is lost, as when a consumer dies mid-message).
// Untimed calls wait on. Once the stopped producer is killed, the next taker
// of put_lock repairs it (an ABORT) as for any dead producer.
//
// SHARERS THAT CORRUPT. Every process that maps the ring can write all of it;
// a buggy or hostile one must not make another touch memory outside its
// mapping, crash, or hang. So: the configuration is copied out of the header
// when the ring is mapped (and checked in adopt); every position read from
// shared memory is checked, under the lock that makes the snapshot consistent,
// before it is used (both 8-aligned, tail - head <= ring size: sane(); a
// wrong count only makes qsize() wrong, and is not checked); a record
// header is read once, by one 64-bit load, into a local copy that is checked
// (kind, length <= max_record and within tail - head, ABORT empty, FIRST long
// enough and its total <= max_message_size, chunks adding up to it) and is the
// only copy used afterwards; a lock that reports anything but success, a dead
// owner or a timeout counts too. A violation sets `broken` in the header,
// wakes every sleeper (futex words and the eventfd) and raises queue_corrupt;
// from then on every call in every process raises queue_corrupt. A PROT_NONE
// guard page follows the ring in every process's mapping, so an access that
// still strays past the end faults in the process that makes it.
#include "isola/detail/shm_ring.hpp"

#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <exception>
#include <new>
#include <optional>
#include <string>

#include "isola/detail/handle_transfer.hpp"
#include "isola/error.hpp"
#include "sys/futex.hpp"
#include "sys/os.hpp"

namespace isola::detail {

namespace {

using clock = std::chrono::steady_clock;

constexpr std::uint64_t magic_value = 0x474e4952414c4f53ull;  // "SOLARING"
constexpr std::uint32_t version_value = 2;                    // 2: `broken`
constexpr std::size_t header_bytes = 4096;
constexpr std::size_t min_ring = 4096;
constexpr std::size_t max_ring = std::size_t{1} << 32;
constexpr std::size_t record_cap = std::size_t{1} << 20;
// Mapped PROT_NONE after the ring (see SHARERS THAT CORRUPT).
constexpr std::size_t guard_bytes = 4096;
// A spin option beyond this (~15 ms of pause instructions) is a corrupt header.
constexpr unsigned max_spin = 1u << 20;

constexpr unsigned pos_bits = 34;
constexpr std::uint64_t pos_mask = (std::uint64_t{1} << pos_bits) - 1;
constexpr unsigned count_bits = 29;
constexpr std::uint64_t count_mask = (std::uint64_t{1} << count_bits) - 1;
constexpr std::uint64_t in_msg_bit = std::uint64_t{1} << 63;

constexpr std::uint64_t wpos(std::uint64_t w) { return w & pos_mask; }
constexpr std::uint64_t wcount(std::uint64_t w) { return (w >> pos_bits) & count_mask; }
constexpr bool win_msg(std::uint64_t w) { return (w & in_msg_bit) != 0; }
constexpr std::uint64_t make_word(std::uint64_t pos, std::uint64_t count, bool in_msg) {
  return (pos & pos_mask) | ((count & count_mask) << pos_bits) | (in_msg ? in_msg_bit : 0);
}
constexpr std::uint64_t used_bytes(std::uint64_t tail, std::uint64_t head) {
  return (wpos(tail) - wpos(head)) & pos_mask;
}
constexpr std::uint64_t messages(std::uint64_t tail, std::uint64_t head) {
  return (wcount(tail) - wcount(head)) & count_mask;
}

// Record kinds carry a marker so that a corrupted ring is detected, not
// misread.
constexpr std::uint32_t kind_marker = 0x51a0'0000u;
enum : std::uint32_t {
  k_whole = kind_marker | 1,
  k_first = kind_marker | 2,
  k_middle = kind_marker | 3,
  k_last = kind_marker | 4,
  k_abort = kind_marker | 5,
};

struct record_header {
  std::uint32_t len;
  std::uint32_t kind;
};
static_assert(sizeof(record_header) == 8);

constexpr std::uint64_t rec_size(std::uint64_t len) { return 8 + ((len + 7) & ~std::uint64_t{7}); }

// A sleep is never longer than this: see WAITING above.
constexpr auto wake_slice = std::chrono::milliseconds(100);
// How often a consumer waiting in the middle of a message checks that its
// producer is alive.
constexpr auto producer_check_slice = std::chrono::milliseconds(20);
// How long a non-blocking or timed operation waits, past its deadline, for
// another process's put or get (which holds its lock for a copy) to finish.
constexpr auto lock_grace = std::chrono::milliseconds(10);
// How long a timed or non-blocking get, past its deadline, waits for the next
// chunk of a message it is receiving before it gives up (STALLED PEERS): a
// producer streams at memory speed, so this long without a chunk means it is
// stopped or starved.
constexpr auto stall_grace = std::chrono::milliseconds(100);

// After a commit: wake the sleepers on word, if any said they might sleep.
void wake_if_waiting(std::atomic<std::uint32_t>& word) {
  std::uint32_t s = word.load(std::memory_order_seq_cst);
  while (s & 1u) {
    if (word.compare_exchange_weak(s, (s + 2u) & ~1u, std::memory_order_seq_cst)) {
      futex_wake_all(&word);
      return;
    }
  }
}

std::size_t round_up_pow2(std::size_t n) {
  std::size_t p = min_ring;
  while (p < n) p <<= 1;
  return p;
}

}  // namespace

struct shm_ring::header {
  // --- written once by the creator
  std::uint64_t magic;
  std::uint32_t version;
  std::uint32_t kind;
  std::uint64_t type_tag;
  std::uint64_t ring_bytes;
  std::uint64_t maxsize;
  std::uint64_t max_message_size;
  std::uint64_t max_record;
  std::uint32_t spin;
  std::uint32_t single_consumer;

  // --- producers only (under put_lock): stays in the producer's cache
  alignas(64) pthread_mutex_t put_lock;
  std::atomic<std::uint64_t> head_cache;

  // --- written by producers, read by consumers
  alignas(64) std::atomic<std::uint64_t> tail;
  std::atomic<std::uint32_t> data_seq;
  std::atomic<std::uint32_t> fd_armed;

  // --- consumers only (under get_lock)
  alignas(64) pthread_mutex_t get_lock;
  std::atomic<std::uint64_t> tail_cache;

  // --- written by consumers, read by producers
  alignas(64) std::atomic<std::uint64_t> head;
  std::atomic<std::uint32_t> space_seq;

  // --- joinable_queue: task_done() count << 1 | bit 0 "a join() may sleep"
  alignas(64) std::atomic<std::uint32_t> tasks;

  // --- set once when a process finds the ring corrupt; read by every call
  // (a line nobody writes otherwise, so it stays in every reader's cache;
  // last, so that the lines above keep the offsets and neighbours they had)
  alignas(64) std::atomic<std::uint32_t> broken;
  // --- queue::shutdown(): 0 open, 1 shut down (puts refused, gets drain what
  // is left), 2 shut down immediately (gets refused too). Beside `broken`,
  // on a line nobody writes otherwise.
  std::atomic<std::uint32_t> shut;
};
static_assert(sizeof(shm_ring::header) <= header_bytes);
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);

namespace {

// The per-process view of one ring: constants copied out of the header, and
// the operations. Kept out of the public header.
struct ring_ops {
  shm_ring::header* h;
  std::byte* ring;
  std::uint64_t size;
  std::uint64_t mask;
  std::uint64_t maxsize;
  std::uint64_t max_record;
  std::uint64_t max_message;
  unsigned spin;
  int efd;
  bool single_consumer;

  // --- ring bytes ------------------------------------------------------------

  void copy_in(std::uint64_t pos, const std::byte* src, std::size_t n) const noexcept {
    if (n == 0) return;
    std::size_t off = pos & mask;
    std::size_t first = std::min<std::size_t>(n, size - off);
    std::memcpy(ring + off, src, first);
    if (n > first) std::memcpy(ring, src + first, n - first);
  }

  void copy_out(std::uint64_t pos, std::byte* dst, std::size_t n) const noexcept {
    if (n == 0) return;
    std::size_t off = pos & mask;
    std::size_t first = std::min<std::size_t>(n, size - off);
    std::memcpy(dst, ring + off, first);
    if (n > first) std::memcpy(dst + first, ring, n - first);
  }

  // Bytes [from, from + n) of a ‖ b, into the ring at pos.
  void copy_parts(std::uint64_t pos, std::span<const std::byte> a, std::span<const std::byte> b,
                  std::uint64_t from, std::uint64_t n) const noexcept {
    if (from < a.size()) {
      auto k = std::min<std::uint64_t>(n, a.size() - from);
      copy_in(pos, a.data() + from, k);
      pos += k;
      from += k;
      n -= k;
    }
    if (n > 0) copy_in(pos, b.data() + (from - a.size()), n);
  }

  // The n bytes at pos as one or two spans.
  std::pair<std::span<const std::byte>, std::span<const std::byte>> view(std::uint64_t pos,
                                                                         std::size_t n) const {
    std::size_t off = pos & mask;
    std::size_t first = std::min<std::size_t>(n, size - off);
    return {{ring + off, first}, {ring, n - first}};
  }

  // Records start at 8-aligned positions (checked by sane() before any is
  // used) and the ring is page-aligned, so a record header is one aligned
  // 64-bit word that never wraps.
  void write_header(std::uint64_t pos, std::uint32_t len, std::uint32_t kind) const noexcept {
    record_header r{len, kind};
    std::memcpy(ring + (pos & mask), &r, sizeof r);
  }

  // One load of the shared word into a copy: what is checked is what is used,
  // whatever a sharer writes there in between.
  std::uint64_t load_word(std::uint64_t pos) const noexcept {
    return __atomic_load_n(reinterpret_cast<const std::uint64_t*>(ring + (pos & mask)),
                           __ATOMIC_RELAXED);
  }
  record_header load_header(std::uint64_t pos) const noexcept {
    const std::uint64_t w = load_word(pos);
    record_header r;
    std::memcpy(&r, &w, sizeof r);
    return r;
  }

  // --- corruption --------------------------------------------------------------

  // Every position read from shared memory passes this before it is used, in
  // a snapshot its reader's lock makes consistent (tail and head are never
  // more than the ring apart). The counts are not checked: a wrong one makes
  // qsize() wrong and the queue look full or not, never an access stray.
  bool sane(std::uint64_t tail, std::uint64_t head) const noexcept {
    return ((tail | head) & 7) == 0 && used_bytes(tail, head) <= size;
  }

  bool is_broken() const noexcept { return h->broken.load(std::memory_order_relaxed) != 0; }
  std::uint32_t shut_state() const noexcept { return h->shut.load(std::memory_order_seq_cst); }

  [[noreturn, gnu::cold, gnu::noinline]] static void throw_shut_down(bool put_side) {
    throw queue_shut_down(put_side ? "queue: shut down, put refused"
                                   : "queue: shut down and empty (or shut down immediately)");
  }

  [[noreturn, gnu::cold, gnu::noinline]] static void throw_broken() {
    throw queue_corrupt(
        "queue: its shared memory was found corrupt (overwritten by a process sharing it); "
        "the queue is closed");
  }

  // Closes the ring for every process and wakes all of its sleepers, who
  // then raise queue_corrupt too. The caller's locks are released by the
  // public call (shm_ring::put/get) as the exception passes.
  [[noreturn, gnu::cold, gnu::noinline]] void fail(const std::string& what) const {
    h->broken.store(1, std::memory_order_seq_cst);
    for (auto* w : {&h->data_seq, &h->space_seq}) {
      w->fetch_add(2, std::memory_order_seq_cst);
      futex_wake_all(w);
    }
    futex_wake_all(&h->tasks);
    std::uint64_t one = 1;
    [[maybe_unused]] auto r = ::write(efd, &one, sizeof one);
    throw queue_corrupt("queue: " + what +
                        ": its shared memory was overwritten by a process sharing it; the "
                        "queue is closed");
  }

  [[noreturn, gnu::cold, gnu::noinline]] void fail_positions(const char* side, std::uint64_t tail,
                                                             std::uint64_t head) const {
    fail(std::string(side) + " found tail position " + std::to_string(wpos(tail)) + " (count " +
         std::to_string(wcount(tail)) + ") and head position " + std::to_string(wpos(head)) +
         " (count " + std::to_string(wcount(head)) + ") in a ring of " + std::to_string(size) +
         " bytes");
  }

  [[noreturn, gnu::cold, gnu::noinline]] void fail_record(std::uint64_t pos, const record_header& r,
                                                          const char* why) const {
    char kind[16];
    std::snprintf(kind, sizeof kind, "%x", r.kind);
    fail(std::string("corrupt record at ring position ") + std::to_string(pos) + " (kind 0x" +
         kind + ", length " + std::to_string(r.len) + ": " + why + ")");
  }

  // --- space -----------------------------------------------------------------

  bool fits(std::uint64_t tail, std::uint64_t head, std::uint64_t need, bool count_check) const {
    if (size - used_bytes(tail, head) < need) return false;
    if (count_check && maxsize != 0 && messages(tail, head) >= maxsize) return false;
    return true;
  }

  // Under put_lock: is there room for `need` bytes after tail (and, with
  // count_check, for one more message)? Refreshes head_cache when the cached
  // head says no. Checks the positions (and so tail, which the caller then
  // uses as it was passed here, never re-read).
  bool room(std::uint64_t tail, std::uint64_t need, bool count_check) const {
    std::uint64_t cached = h->head_cache.load(std::memory_order_relaxed);
    if (sane(tail, cached) && fits(tail, cached, need, count_check)) [[likely]]
      return true;
    return room_slow(tail, need, count_check);
  }
  [[gnu::noinline]] bool room_slow(std::uint64_t tail, std::uint64_t need, bool count_check) const {
    std::uint64_t head = h->head.load(std::memory_order_acquire);
    if (!sane(tail, head)) fail_positions("a producer", tail, head);
    h->head_cache.store(head, std::memory_order_relaxed);
    return fits(tail, head, need, count_check);
  }

  // Outside the locks: whether it is worth taking put_lock to look. Positions
  // read without the lock need not agree (tail may be read before a burst of
  // puts and gets moved head past it), so an odd pair means "look".
  bool may_fit(std::uint64_t need) const {
    std::uint64_t tail = h->tail.load(std::memory_order_seq_cst);
    std::uint64_t head = h->head.load(std::memory_order_seq_cst);
    return !sane(tail, head) || fits(tail, head, need, true);
  }

  bool has_records() const {
    std::uint64_t head = h->head.load(std::memory_order_seq_cst);
    return wpos(h->tail.load(std::memory_order_seq_cst)) != wpos(head);
  }

  // --- commits ---------------------------------------------------------------

  void commit_tail(std::uint64_t w) const {
    h->tail.store(w, std::memory_order_seq_cst);
    wake_if_waiting(h->data_seq);
    if (h->fd_armed.load(std::memory_order_seq_cst) != 0) {
      std::uint64_t one = 1;
      [[maybe_unused]] auto r = ::write(efd, &one, sizeof one);
      h->fd_armed.store(0, std::memory_order_seq_cst);
    }
  }

  void commit_head(std::uint64_t w) const {
    h->head.store(w, std::memory_order_seq_cst);
    wake_if_waiting(h->space_seq);
  }

  // Under put_lock, with tail.in_msg: end the open message. Never waits (I3).
  void append_abort(std::uint64_t tail) const {
    std::uint64_t head = h->head.load(std::memory_order_acquire);
    if (!sane(tail, head)) fail_positions("the repair of a producer's lock", tail, head);
    if (!fits(tail, head, 8, false))
      fail_positions("no room for an ABORT (I3) after a message in flight:", tail, head);
    write_header(wpos(tail), 0, k_abort);
    commit_tail(make_word(wpos(tail) + 8, wcount(tail), false));
  }

  // Whoever takes put_lock first repairs what a dead holder left.
  void repair_put() const {
    std::uint64_t t = h->tail.load(std::memory_order_relaxed);
    if (win_msg(t)) append_abort(t);
  }

  // --- locks -----------------------------------------------------------------

  // Which locks this call holds, so that an exception (corruption) leaving
  // the public call releases them (release_all) and nobody waits on a lock
  // held by a call that is gone.
  mutable bool holds_put = false;
  mutable bool holds_get = false;

  // After a lock call returned r: 0 and EOWNERDEAD give the lock; a timeout
  // gives nothing; anything else means the lock's word in shared memory is
  // not a lock any more.
  bool took(pthread_mutex_t* m, int r, bool put_side) const {
    if (r != 0) [[unlikely]] {
      if (r == ETIMEDOUT || r == EBUSY) return false;
      if (r != EOWNERDEAD) lock_failed(r, put_side);
      // Consistent before anything can throw: a robust lock released while
      // inconsistent is unusable for good.
      ::pthread_mutex_consistent(m);
    }
    (put_side ? holds_put : holds_get) = true;
    if (is_broken()) [[unlikely]]
      throw_broken();            // found while this call waited for the lock
    if (put_side) repair_put();  // an open message with a free lock (or a dead holder's)
    return true;
  }

  [[noreturn, gnu::cold, gnu::noinline]] void lock_failed(int r, bool put_side) const {
    fail(std::string("its ") + (put_side ? "put" : "get") + " lock is unusable (" +
         std::strerror(r) + ")");
  }

  // Takes a robust lock. `streaming` tells whether its holder may hold it for
  // long (a multi-record message in flight); non-blocking and timed callers
  // give up at once / at the deadline then, and otherwise wait lock_grace at
  // most for the holder's copy to finish.
  template <class Streaming>
  bool lock(pthread_mutex_t* m, deadline d, Streaming streaming, bool put_side) const {
    int r = ::pthread_mutex_trylock(m);
    if (r == EBUSY) {
      if (d.mode == deadline::block) {
        r = ::pthread_mutex_lock(m);
      } else {
        bool long_hold = streaming();
        if (long_hold && d.mode == deadline::nowait) return false;
        auto until = clock::now() + lock_grace;
        if (d.mode == deadline::timed) until = long_hold ? d.at : std::max(d.at, until);
        r = lock_mutex_until(m, until);
      }
    }
    return took(m, r, put_side);
  }

  bool lock_put(deadline d) const {
    return lock(
        &h->put_lock, d, [this] { return win_msg(h->tail.load(std::memory_order_relaxed)); }, true);
  }
  // A single-consumer ring (a mailbox) has nobody to exclude on the get side.
  bool lock_get(deadline d) const {
    if (single_consumer) {
      if (is_broken()) throw_broken();
      return true;
    }
    return lock(
        &h->get_lock, d, [this] { return win_msg(h->head.load(std::memory_order_relaxed)); },
        false);
  }
  void unlock_put() const {
    holds_put = false;
    ::pthread_mutex_unlock(&h->put_lock);
  }
  void unlock_get() const {
    if (single_consumer) return;
    holds_get = false;
    ::pthread_mutex_unlock(&h->get_lock);
  }
  void release_all() const noexcept {
    if (holds_put) unlock_put();
    if (holds_get) unlock_get();
  }

  // --- sleeping --------------------------------------------------------------

  // Waits until cond() holds, the ring is broken, or `until`; returns whether
  // one of the first two happened (callers check `broken` when they next
  // take their lock). See WAITING above for the protocol on `word`. cond()
  // must read the other side's commit word with seq_cst loads: with the
  // seq_cst CAS here and the seq_cst store + load in wake_if_waiting, either
  // the sleeper sees the commit or the committer sees the sleeper's bit.
  template <class Cond>
  bool wait_on(std::atomic<std::uint32_t>& word, Cond cond, std::optional<clock::time_point> until,
               bool wake_on_shut = true) const {
    auto done = [&] { return cond() || is_broken() || (wake_on_shut && shut_state() != 0); };
    // Re-check with exponential backoff: polling the other side's commit word
    // on every pause would pull its cache line away from the side that is
    // about to write it again; polling less often lets it do several
    // commits per line transfer.
    for (unsigned i = 0, step = 1; i < spin; step = std::min(step * 2, 64u)) {
      if (cond()) return true;
      for (unsigned k = 0; k < step && i < spin; ++k, ++i) cpu_relax();
    }
    for (;;) {
      std::uint32_t s = word.load(std::memory_order_seq_cst);
      if (!(s & 1u)) {
        if (!word.compare_exchange_weak(s, s | 1u, std::memory_order_seq_cst)) continue;
        s |= 1u;
      }
      if (done()) return true;
      auto now = clock::now();
      if (until && now >= *until) return false;
      auto wake = now + wake_slice;
      if (until && *until < wake) wake = *until;
      futex_wait_until(&word, s, &wake);
      if (done()) return true;
    }
  }

  // --- put -------------------------------------------------------------------

  bool put(std::span<const std::byte> a, std::span<const std::byte> b, deadline d) const {
    const std::uint64_t total = a.size() + b.size();
    const bool whole = rec_size(total) <= max_record;
    // What must be free before the message starts: its record, or its first
    // chunk plus room for an ABORT (I3); a non-blocking put of a chunked
    // message must fit entirely, since it cannot wait for the rest.
    std::uint64_t need;
    if (whole) {
      need = rec_size(total);
    } else if (d.mode == deadline::nowait) {
      std::uint64_t chunk = max_record - 16;
      need = total + 8 + 16 * (total / chunk + 2) + 8;
    } else {
      need = max_record + 8;
    }
    if (shut_state() != 0) throw_shut_down(true);
    if (!lock_put(d)) return false;
    // Read once under the lock and checked by room(); used as it is from
    // here on (only this lock's holder moves it).
    std::uint64_t t;
    for (;;) {
      if (shut_state() != 0) throw_shut_down(true);  // the lock goes with the exception
      t = h->tail.load(std::memory_order_relaxed);
      if (room(t, need, true)) break;
      unlock_put();
      if (d.mode == deadline::nowait || need > size) return false;
      bool ok = wait_on(
          h->space_seq, [&] { return may_fit(need); }, d.until());
      if (!ok) return false;
      if (!lock_put(d)) return false;
    }

    if (whole) {
      write_header(wpos(t), static_cast<std::uint32_t>(total), k_whole);
      copy_parts(wpos(t) + 8, a, b, 0, total);
      commit_tail(make_word(wpos(t) + rec_size(total), wcount(t) + 1, false));
      unlock_put();
      return true;
    }

    // Stream it: FIRST, MIDDLE..., LAST, each as soon as there is room.
    std::uint64_t sent = 0;
    bool first = true;
    for (;;) {
      std::uint64_t extra = first ? 8 : 0;
      std::uint64_t chunk = std::min(total - sent, max_record - 8 - extra);
      bool last = !first && sent + chunk == total;
      std::uint64_t rec = rec_size(extra + chunk);
      std::uint64_t need_now = rec + (last ? 0 : 8);
      if (!room(t, need_now, first)) {
        // The lock stays held: the message's records must be contiguous.
        bool ok = wait_on(
            h->space_seq,
            [&] {
              std::uint64_t head = h->head.load(std::memory_order_seq_cst);
              return !sane(t, head) || fits(t, head, need_now, first);
            },
            d.until());
        if (is_broken()) throw_broken();
        if (!room(t, need_now, first) && shut_state() != 0) {
          // Shut down while this message streams: it is withdrawn whole.
          if (!first) append_abort(t);
          throw_shut_down(true);
        }
        if (!ok) {
          if (!first) append_abort(t);
          unlock_put();
          return false;
        }
        if (!room(t, need_now, first)) continue;
      }
      std::uint64_t p = wpos(t);
      write_header(p, static_cast<std::uint32_t>(extra + chunk),
                   first ? k_first : (last ? k_last : k_middle));
      if (first) {
        copy_in(p + 8, reinterpret_cast<const std::byte*>(&total), 8);
      }
      copy_parts(p + 8 + extra, a, b, sent, chunk);
      sent += chunk;
      t = make_word(p + rec, wcount(t) + (last ? 1 : 0), !last);
      commit_tail(t);
      if (last) break;
      first = false;
    }
    unlock_put();
    return true;
  }

  // --- get -------------------------------------------------------------------

  bool get(ring_sink& sink, deadline d) const {
    if (shut_state() == 2) throw_shut_down(false);
    if (!lock_get(d)) return false;
    bool assembling = false;
    std::uint64_t total = 0, received = 0;
    // Chunks received of the message being assembled, and when the last
    // wait for one began to count (see STALLED PEERS).
    std::uint64_t chunks = 0, chunks_seen = 0;
    clock::time_point progress{};
    std::exception_ptr failed;
    auto deliver = [&](auto&& f) {
      if (failed) return;
      try {
        f();
      } catch (...) {
        failed = std::current_exception();
      }
    };
    auto drop_partial = [&] {
      if (assembling) sink.reset();
      assembling = false;
      failed = nullptr;
    };
    for (;;) {
      // head is ours (get_lock); tail is read after it, so the pair is
      // consistent, and it is checked before either is used.
      std::uint64_t hw = h->head.load(std::memory_order_relaxed);
      std::uint64_t tw = h->tail_cache.load(std::memory_order_relaxed);
      if (wpos(hw) == wpos(tw)) {
        tw = h->tail.load(std::memory_order_acquire);
        h->tail_cache.store(tw, std::memory_order_relaxed);
      }
      if (!sane(tw, hw)) fail_positions("a consumer", tw, hw);
      if (wpos(hw) == wpos(tw)) {
        if (!assembling) {
          unlock_get();
          if (shut_state() != 0) throw_shut_down(false);  // nothing left, nothing to come
          if (d.mode == deadline::nowait) return false;
          if (!wait_on(
                  h->data_seq, [this] { return has_records(); }, d.until()))
            return false;
          if (!lock_get(d)) return false;
          continue;
        }
        // Mid-message with nothing to read: its producer is streaming it, or
        // died. If put_lock can be had, nothing more of this message can
        // come but what the repair appends (an ABORT).
        int r = ::pthread_mutex_trylock(&h->put_lock);
        if (r != EBUSY) {
          if (took(&h->put_lock, r, true)) unlock_put();
          tw = h->tail.load(std::memory_order_acquire);
          h->tail_cache.store(tw, std::memory_order_relaxed);
          if (wpos(hw) == wpos(tw)) drop_partial();  // abandoned and unrepairable
          continue;
        }
        // Its producer holds put_lock: streaming, or stalled. A timed or
        // non-blocking get waits past its deadline only while chunks come.
        auto now = clock::now();
        auto slice_end = now + producer_check_slice;
        if (d.mode != deadline::block) {
          if (chunks != chunks_seen) {
            chunks_seen = chunks;
            progress = now;
          }
          auto give_up = progress + stall_grace;
          if (d.mode == deadline::timed) give_up = std::max(give_up, d.at);
          if (now >= give_up) {
            // head stays in_msg: the rest is dropped as orphans when it comes.
            drop_partial();
            unlock_get();
            return false;
          }
          slice_end = std::min(slice_end, give_up);
        }
        // (Not woken by a shutdown: this message's producer ends it either way.)
        wait_on(
            h->data_seq, [this] { return has_records(); }, slice_end, false);
        if (is_broken()) throw_broken();
        continue;
      }

      const std::uint64_t p = wpos(hw);
      const record_header r = load_header(p);  // the only read of it
      const std::uint64_t avail = used_bytes(tw, hw);
      if ((r.kind & 0xffff'0000u) != kind_marker) fail_record(p, r, "not a record");
      const std::uint64_t rec = rec_size(r.len);
      if (rec > max_record) fail_record(p, r, "longer than a record can be");
      if (rec > avail) fail_record(p, r, "longer than what was put");
      switch (r.kind) {
        case k_whole: {
          drop_partial();
          // A pair, not a structured binding: lambdas may capture bindings
          // only from C++20 compilers newer than clang-tidy 14.
          const auto xy = view(p + 8, r.len);
          deliver([&] { sink.whole(xy.first, xy.second); });
          commit_head(make_word(p + rec, wcount(hw) + 1, false));
          unlock_get();
          if (failed) std::rethrow_exception(failed);
          return true;
        }
        case k_first: {
          if (r.len < 8) fail_record(p, r, "a first chunk without its total");
          drop_partial();
          total = load_word(p + 8);  // 8-aligned, inside the record: one read
          received = r.len - 8;
          if (total > max_message || received > total)
            fail_record(p, r,
                        ("a message of " + std::to_string(total) +
                         " bytes, more than max_message_size or its first chunk")
                            .c_str());
          assembling = true;
          ++chunks;
          deliver([&] {
            sink.begin(total);
            auto [x, y] = view(p + 16, r.len - 8);
            sink.append(x);
            if (!y.empty()) sink.append(y);
          });
          commit_head(make_word(p + rec, wcount(hw), true));
          continue;
        }
        case k_middle:
        case k_last: {
          const bool last = r.kind == k_last;
          if (assembling) {
            received += r.len;
            if (received > total || (last && received != total))
              fail_record(p, r, "chunks that do not add up to their message's length");
            ++chunks;
            deliver([&] {
              auto [x, y] = view(p + 8, r.len);
              sink.append(x);
              if (!y.empty()) sink.append(y);
              if (last) sink.end();
            });
          }
          // Without `assembling` this is the rest of a message whose start a
          // consumer that died (or gave up) took: dropped (and counted, if LAST).
          commit_head(make_word(p + rec, wcount(hw) + (last ? 1 : 0), !last));
          if (last && assembling) {
            unlock_get();
            if (failed) std::rethrow_exception(failed);
            return true;
          }
          continue;
        }
        case k_abort:
          if (r.len != 0) fail_record(p, r, "an abort with a payload");
          drop_partial();
          commit_head(make_word(p + 8, wcount(hw), false));
          continue;
        default: fail_record(p, r, "an unknown kind");
      }
    }
  }
};

}  // namespace

// ---------------------------------------------------------------------------

void prepare_receive_buffer(void* data, std::size_t bytes) noexcept {
  constexpr std::uintptr_t huge = std::uintptr_t{2} << 20;
  if (bytes < (std::size_t{8} << 20)) return;
  auto p = reinterpret_cast<std::uintptr_t>(data);
  std::uintptr_t from = (p + huge - 1) & ~(huge - 1), to = (p + bytes) & ~(huge - 1);
  if (to > from) ::madvise(reinterpret_cast<void*>(from), to - from, MADV_HUGEPAGE);
}

std::shared_ptr<shm_ring> shm_ring::create(const ring_config& cfg) {
  if (cfg.ring_bytes > max_ring) throw value_error("queue: ring_bytes is larger than 4 GiB");
  std::size_t size = round_up_pow2(std::max(cfg.ring_bytes, min_ring));
  unique_fd memfd(::memfd_create("isola-queue", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!memfd) throw_errno("memfd_create");
  if (::ftruncate(memfd.get(), static_cast<off_t>(header_bytes + size)) != 0)
    throw_errno("ftruncate(queue memory)");
  // Nobody can shrink it under a mapping (SIGBUS) or grow it (adopt checks).
  if (::fcntl(memfd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0)
    throw_errno("fcntl(F_ADD_SEALS, queue memory)");
  unique_fd efd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!efd) throw_errno("eventfd");

  std::shared_ptr<shm_ring> r(new shm_ring());
  r->map(memfd.release(), efd.release());
  header* h = new (r->hdr_) header;
  h->magic = 0;
  h->version = version_value;
  h->kind = cfg.kind;
  h->type_tag = cfg.type_tag;
  h->ring_bytes = size;
  h->maxsize = cfg.maxsize;
  h->max_message_size = cfg.max_message_size;
  h->max_record = std::min<std::uint64_t>(size / 4, record_cap);
  h->spin = std::min(cfg.spin, max_spin);
  h->single_consumer = cfg.single_consumer ? 1 : 0;
  h->broken.store(0, std::memory_order_relaxed);
  h->shut.store(0, std::memory_order_relaxed);
  for (pthread_mutex_t* m : {&h->put_lock, &h->get_lock}) {
    init_robust_mutex(m, PTHREAD_MUTEX_DEFAULT, "pthread_mutex_init(queue lock)");
  }
  const std::uint64_t start =
      make_word(cfg.start_position & ~std::uint64_t{7}, cfg.start_count, false);
  h->tail.store(start, std::memory_order_relaxed);
  h->head_cache.store(start, std::memory_order_relaxed);
  h->data_seq.store(0, std::memory_order_relaxed);
  h->fd_armed.store(0, std::memory_order_relaxed);
  h->head.store(start, std::memory_order_relaxed);
  h->tail_cache.store(start, std::memory_order_relaxed);
  h->space_seq.store(0, std::memory_order_relaxed);
  h->tasks.store(static_cast<std::uint32_t>(wcount(start) << 1), std::memory_order_relaxed);
  // No other process can see the memory yet: it gets the memfd only later,
  // through fork or SCM_RIGHTS, which order everything written here.
  h->magic = magic_value;
  r->load_constants();
  return r;
}

std::shared_ptr<shm_ring> shm_ring::adopt(std::uint32_t mem_index, std::uint32_t ev_index,
                                          std::uint64_t type_tag) {
  unique_fd memfd(import_fd(mem_index));
  unique_fd efd(import_fd(ev_index));
  struct stat st {};
  if (::fstat(memfd.get(), &st) != 0) throw_errno("fstat(queue memory)");
  if (st.st_size < static_cast<off_t>(header_bytes + min_ring))
    throw decode_error("queue: the descriptor received is not a queue's shared memory");
  std::shared_ptr<shm_ring> r(new shm_ring());
  r->map(memfd.release(), efd.release());
  const header* h = r->hdr_;
  auto size = static_cast<std::uint64_t>(st.st_size) - header_bytes;
  // What this process will trust from now on (load_constants) is checked
  // here: a sharer may have written anything into the header; and the memfd
  // must be sealed against shrinking, or a sharer could truncate it under
  // this process's mapping (SIGBUS).
  const int seals = ::fcntl(r->memfd_, F_GET_SEALS);
  if (h->magic != magic_value || h->version != version_value || h->ring_bytes != size ||
      size > max_ring || (size & (size - 1)) != 0 ||
      h->max_record != std::min<std::uint64_t>(size / 4, record_cap) || h->spin > max_spin ||
      h->single_consumer > 1 || seals < 0 || (seals & F_SEAL_SHRINK) == 0)
    throw decode_error("queue: the descriptor received is not a queue's shared memory");
  if (h->type_tag != type_tag)
    throw decode_error(
        "queue: the queue received holds another type than the parameter it "
        "was passed to");
  r->load_constants();
  return r;
}

// Every process maps the ring here (the creator, and a forkserver or spawn
// child that received the memfd; fork children inherit the whole mapping),
// with the size of the memfd itself, which is sealed: header, ring, then a
// PROT_NONE guard page, reserved first so that the ring's mapping is followed
// by the guard and not by whatever the kernel would put there.
void shm_ring::map(int memfd, int efd) {
  memfd_ = memfd;
  efd_ = efd;
  struct stat st {};
  if (::fstat(memfd_, &st) != 0) throw_errno("fstat(queue memory)");
  const auto bytes = static_cast<std::size_t>(st.st_size);
  void* area = ::mmap(nullptr, bytes + guard_bytes, PROT_NONE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (area == MAP_FAILED) throw_errno("mmap(queue memory guard)");
  void* p = ::mmap(area, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, memfd_, 0);
  if (p == MAP_FAILED) {
    int e = errno;
    ::munmap(area, bytes + guard_bytes);
    throw_errno("mmap(queue memory)", e);
  }
  map_bytes_ = bytes + guard_bytes;
  hdr_ = static_cast<header*>(p);
  ring_ = static_cast<std::byte*>(p) + header_bytes;
}

void shm_ring::load_constants() {
  ring_bytes_ = hdr_->ring_bytes;
  maxsize_ = hdr_->maxsize;
  max_record_ = hdr_->max_record;
  max_message_ = hdr_->max_message_size;
  spin_ = hdr_->spin;
  single_consumer_ = hdr_->single_consumer != 0;
}

shm_ring::shared_layout shm_ring::layout() noexcept {
  return {header_bytes,
          guard_bytes,
          offsetof(header, head),
          offsetof(header, tail),
          offsetof(header, head_cache),
          offsetof(header, tail_cache),
          offsetof(header, put_lock),
          offsetof(header, broken)};
}

shm_ring::~shm_ring() { close(); }

void shm_ring::close() noexcept {
  if (hdr_) ::munmap(hdr_, map_bytes_);
  hdr_ = nullptr;
  ring_ = nullptr;
  if (memfd_ >= 0) ::close(memfd_);
  if (efd_ >= 0) ::close(efd_);
  memfd_ = efd_ = -1;
}

// put and get look at `broken` once they hold their lock (ring_ops::took);
// the other calls here.
void shm_ring::check_open() const {
  if (!hdr_) throw value_error("queue is closed");
  if (hdr_->broken.load(std::memory_order_relaxed) != 0) ring_ops::throw_broken();
}

#define ISOLA_RING_OPS                                                                           \
  ring_ops ops {                                                                                 \
    hdr_, ring_, ring_bytes_, ring_bytes_ - 1, maxsize_, max_record_, max_message_, spin_, efd_, \
        single_consumer_                                                                         \
  }

bool shm_ring::put(std::span<const std::byte> a, std::span<const std::byte> b, deadline d) {
  if (!hdr_) throw value_error("queue is closed");
  std::uint64_t total = a.size() + b.size();
  if (total > max_message_)
    throw value_error("queue: a message of " + std::to_string(total) +
                      " bytes exceeds max_message_size (" + std::to_string(max_message_) +
                      "); nothing was put");
  ISOLA_RING_OPS;
  try {
    return ops.put(a, b, d);
  } catch (...) {
    ops.release_all();
    throw;
  }
}

bool shm_ring::get(ring_sink& sink, deadline d) {
  if (!hdr_) throw value_error("queue is closed");
  ISOLA_RING_OPS;
  try {
    return ops.get(sink, d);
  } catch (...) {
    ops.release_all();
    throw;
  }
}

namespace {
// Takes a message and forgets it (shutdown(immediate) draining the queue).
struct discard_sink final : ring_sink {
  void whole(std::span<const std::byte>, std::span<const std::byte>) override {}
  void begin(std::uint64_t) override {}
  void append(std::span<const std::byte>) override {}
  void end() override {}
  void reset() noexcept override {}
};
}  // namespace

void shm_ring::wake_everyone() noexcept {
  for (auto* w : {&hdr_->data_seq, &hdr_->space_seq}) {
    w->fetch_add(2, std::memory_order_seq_cst);
    futex_wake_all(w);
  }
  futex_wake_all(&hdr_->tasks);
  std::uint64_t one = 1;
  [[maybe_unused]] auto r = ::write(efd_, &one, sizeof one);
}

void shm_ring::shutdown(bool immediate) {
  check_open();
  // 1 first: puts are refused from here on, gets still take what is left.
  std::uint32_t expected = 0;
  hdr_->shut.compare_exchange_strong(expected, 1, std::memory_order_seq_cst);
  wake_everyone();
  if (!immediate) return;
  // Python's immediate shutdown empties the queue, with a task_done() for
  // each message it drops (so that join() returns), then refuses gets.
  discard_sink drop;
  for (;;) {
    try {
      if (!get(drop, deadline::after(std::chrono::seconds(5)))) break;
    } catch (const queue_shut_down&) {
      break;  // empty
    }
    try {
      task_done();
    } catch (const value_error&) {}
  }
  hdr_->shut.store(2, std::memory_order_seq_cst);
  wake_everyone();
}

bool shm_ring::is_shut_down() const {
  check_open();
  return hdr_->shut.load(std::memory_order_seq_cst) != 0;
}

std::size_t shm_ring::qsize() const {
  check_open();
  std::uint64_t head = hdr_->head.load(std::memory_order_seq_cst);  // head first: see I2
  std::uint64_t tail = hdr_->tail.load(std::memory_order_seq_cst);
  return static_cast<std::size_t>(messages(tail, head));
}

bool shm_ring::empty() const { return qsize() == 0; }

bool shm_ring::known_records() const noexcept {
  if (!hdr_ || !single_consumer_) return false;
  return wpos(hdr_->head.load(std::memory_order_relaxed)) !=
         wpos(hdr_->tail_cache.load(std::memory_order_relaxed));
}

bool shm_ring::full() const {
  check_open();
  std::uint64_t head = hdr_->head.load(std::memory_order_seq_cst);
  std::uint64_t tail = hdr_->tail.load(std::memory_order_seq_cst);
  if (maxsize_ != 0 && messages(tail, head) >= maxsize_) return true;
  return ring_bytes_ - used_bytes(tail, head) < rec_size(1);
}

std::size_t shm_ring::maxsize() const { return maxsize_; }
std::size_t shm_ring::ring_bytes() const { return ring_bytes_; }
std::size_t shm_ring::max_message_size() const { return max_message_; }

bool shm_ring::ready_for_wait() {
  if (!hdr_) return true;  // get() would not block: it throws value_error
  if (hdr_->broken.load(std::memory_order_relaxed) != 0) return true;  // nor here
  if (hdr_->shut.load(std::memory_order_seq_cst) != 0) return true;    // gets answer at once
  ISOLA_RING_OPS;
  if (ops.has_records()) return true;
  std::uint64_t n;
  while (::read(efd_, &n, sizeof n) > 0) {}
  hdr_->fd_armed.store(1, std::memory_order_seq_cst);
  if (ops.has_records()) {
    // We may have drained a wake-up meant for another waiter too: re-arm it.
    std::uint64_t one = 1;
    [[maybe_unused]] auto w = ::write(efd_, &one, sizeof one);
    return true;
  }
  return false;
}

void shm_ring::task_done() {
  check_open();
  auto& tasks = hdr_->tasks;
  std::uint32_t w = tasks.load(std::memory_order_seq_cst);
  // The consumers' copy of tail is a lower bound of the put count, on a line
  // the consumer calling this most likely has in its cache; the real tail
  // is read only when that bound is not enough.
  std::uint64_t put = wcount(hdr_->tail_cache.load(std::memory_order_seq_cst));
  for (;;) {
    std::uint32_t done = w >> 1;
    std::uint64_t left = (put - done) & count_mask;
    if (left == 0) {
      put = wcount(hdr_->tail.load(std::memory_order_seq_cst));
      left = (put - done) & count_mask;
      if (left == 0) throw value_error("task_done() called too many times");
    }
    // join() waits for zero: only the call that gets there wakes it, and
    // the "a join() may sleep" bit stays set until then.
    std::uint32_t keep = left > 1 ? (w & 1u) : 0u;
    if (tasks.compare_exchange_weak(w, ((done + 1) << 1) | keep, std::memory_order_seq_cst)) {
      if ((w & 1u) && !keep) futex_wake_all(&tasks);
      return;
    }
  }
}

std::size_t shm_ring::unfinished_tasks() const {
  check_open();
  std::uint32_t w = hdr_->tasks.load(std::memory_order_seq_cst);  // done first: see I4
  std::uint64_t put = wcount(hdr_->tail.load(std::memory_order_seq_cst));
  return static_cast<std::size_t>((put - (w >> 1)) & count_mask);
}

bool shm_ring::join(deadline d) {
  check_open();
  ISOLA_RING_OPS;
  auto none_left = [this] {
    std::uint32_t w = hdr_->tasks.load(std::memory_order_seq_cst);
    std::uint64_t put = wcount(hdr_->tail.load(std::memory_order_seq_cst));
    return ((put - (w >> 1)) & count_mask) == 0;
  };
  // join's sleepers mark bit 0 of `tasks` like the other futex words. A
  // shutdown does not end a join (Python's does not either): only the tasks
  // do, and an immediate shutdown's task_done() for each message it drops
  // wakes it through `tasks`; a task taken and not yet done still holds it.
  bool done = ops.wait_on(hdr_->tasks, none_left, d.until(), /*wake_on_shut=*/false);
  check_open();  // woken because the ring was found corrupt
  return done;
}

#undef ISOLA_RING_OPS

}  // namespace isola::detail
