// Segments (memfds) under the synchronization objects, and what those objects
// share beyond the futex layer (sys/futex.hpp): taking a robust mutex with a
// deadline and a short spin, the calling thread's id.
#include "isola/detail/sync_segment.hpp"

#include <fcntl.h>
#include <linux/futex.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <string>

#include "isola/detail/handle_transfer.hpp"
#include "isola/error.hpp"
#include "isola/lock.hpp"
#include "sync/sync_util.hpp"
#include "sys/futex.hpp"
#include "sys/os.hpp"

namespace isola::detail {

namespace {

constexpr std::uint64_t segment_magic = 0x314e5953414c4f53ull;  // "SOLASYN1"
constexpr std::uint32_t segment_version = 1;

// A fork child's only thread (the one that forked) has a new id.
[[maybe_unused]] const bool atfork_registered = [] {
  ::pthread_atfork(nullptr, nullptr, [] { cached_tid = 0; });
  return true;
}();

}  // namespace

// ------------------------------------------------------------ robust mutexes

namespace {

// A lock held by a process on the other CPU is usually held for a few
// instructions (a counter update): watching its word for a moment takes it
// without the futex sleep and wake-up (several µs, tens across vCPUs) that a
// blocking lock costs. Reads only, so the holder's line is not stolen.
int spin_trylock(pthread_mutex_t* m) noexcept {
  int r = ::pthread_mutex_trylock(m);
  for (int i = 0; r == EBUSY && i < 128; ++i) {
    cpu_relax();
    if (__atomic_load_n(&m->__data.__lock, __ATOMIC_RELAXED) == 0) r = ::pthread_mutex_trylock(m);
  }
  return r;
}

}  // namespace

take_result take_mutex(pthread_mutex_t* m, const deadline& d) {
  int r;
  switch (d.mode) {
    case deadline::nowait: r = ::pthread_mutex_trylock(m); break;
    case deadline::block:
      r = spin_trylock(m);
      if (r == EBUSY) r = ::pthread_mutex_lock(m);
      break;
    default: {
      r = spin_trylock(m);
      if (r == EBUSY) {
        r = lock_mutex_until(m, d.at);
      }
    }
  }
  switch (r) {
    case 0: return take_result::ok;
    case EOWNERDEAD:
      // The lock is ours; make it usable again for everybody after us. The
      // caller is told (lock_owner_died): what the lock guards may be
      // half-updated.
      ::pthread_mutex_consistent(m);
      return take_result::owner_died;
    case EBUSY:
    case ETIMEDOUT: return take_result::timed_out;
    case EDEADLK: return take_result::deadlock;
    case ENOTRECOVERABLE:
      throw error(
          "lock: the lock is unusable (ENOTRECOVERABLE): a process recovered it after "
          "its holder died and released it without making it consistent");
    default: throw_errno("pthread_mutex_lock", r);
  }
}

__thread int cached_tid = 0;

int fetch_tid() noexcept {
  cached_tid = static_cast<int>(::syscall(SYS_gettid));
  return cached_tid;
}

pid_t current_tid() noexcept { return this_tid(); }

// ------------------------------------------------------------------ segments

std::shared_ptr<sync_segment> sync_segment::create(sync_kind kind, std::size_t payload,
                                                   const char* memfd_name,
                                                   std::size_t payload_offset) {
  if (payload_offset < sizeof(sync_header) || payload_offset % 64 != 0)
    throw value_error("sync segment: bad payload offset");
  if (payload > (std::size_t{1} << 46))
    throw value_error("shared memory: " + std::to_string(payload) + " bytes is too large");
  std::size_t bytes = payload_offset + payload;
  unique_fd fd(::memfd_create(memfd_name, MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd) throw_errno("memfd_create");
  if (::ftruncate(fd.get(), static_cast<off_t>(bytes)) != 0)
    throw_errno("ftruncate(shared memory)");
  // Nobody can shrink it under a mapping (SIGBUS) or grow it.
  ::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
  std::shared_ptr<sync_segment> s(new sync_segment());
  s->map(fd.release(), bytes);
  auto& h = s->header_for_init();
  h.kind = static_cast<std::uint32_t>(kind);
  h.version = segment_version;
  h.total_bytes = bytes;
  h.payload_offset = payload_offset;
  h.count = 1;
  // No other process sees the memory before it gets the descriptor (fork or
  // SCM_RIGHTS), which orders everything written here before its reads.
  h.magic = segment_magic;
  s->payload_offset_ = payload_offset;
  return s;
}

std::shared_ptr<sync_segment> sync_segment::adopt(std::uint32_t index, std::uint32_t kinds_mask) {
  return from_fd(import_fd(index), kinds_mask);
}

std::shared_ptr<sync_segment> sync_segment::from_fd(int raw_fd, std::uint32_t kinds_mask) {
  unique_fd fd(raw_fd);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) throw_errno("fstat(shared memory)");
  auto bad = [] {
    return decode_error(
        "the descriptor received is not an isola lock, semaphore, value, array, "
        "shared_memory, event, condition or barrier of the expected kind");
  };
  if (!S_ISREG(st.st_mode) || st.st_size < static_cast<off_t>(sizeof(sync_header))) throw bad();
  std::shared_ptr<sync_segment> s(new sync_segment());
  s->map(fd.release(), static_cast<std::size_t>(st.st_size));
  const auto& h = s->header();
  if (h.magic != segment_magic || h.version != segment_version ||
      h.total_bytes != static_cast<std::uint64_t>(st.st_size) ||
      h.payload_offset < sizeof(sync_header) || h.payload_offset > h.total_bytes ||
      h.payload_offset % 64 != 0 || h.kind >= 32 ||
      (kinds_mask != 0 && (kinds_mask & (std::uint32_t{1} << h.kind)) == 0))
    throw bad();
  s->payload_offset_ = h.payload_offset;
  return s;
}

void sync_segment::map(int fd, std::size_t bytes) {
  fd_ = fd;
  bytes_ = bytes;
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) throw_errno("mmap(shared memory)");
  base_ = p;
}

std::byte* sync_segment::at(std::uint64_t offset, std::size_t size, std::size_t align) const {
  if (!base_ || offset > bytes_ || size > bytes_ - offset || align == 0 || offset % align != 0)
    throw decode_error(
        "a shared-memory object's layout does not fit its segment "
        "(the descriptor received is not what its handle expects)");
  return base() + offset;
}

std::uint32_t sync_segment::export_fd() const {
  if (!base_) return detail::export_fd(-1);
  return detail::export_fd(fd_);
}

sync_segment::~sync_segment() { close(); }

namespace {
// Whether the calling thread holds a robust mutex inside [base, base + bytes):
// glibc keeps the robust mutexes a thread holds on a list threaded through
// the mutexes themselves, which the kernel walks when the thread dies. A
// segment unmapped under a held one (a target that returns holding a lock
// whose last handle was its argument) would leave the kernel nothing to read:
// the lock would stay held by a dead thread for ever, and the entries after
// it on the list would be lost too.
bool thread_holds_a_mutex_in(const void* base, std::size_t bytes) noexcept {
  robust_list_head* head = nullptr;
  std::size_t len = 0;
  if (::syscall(SYS_get_robust_list, 0, &head, &len) != 0 || !head) return false;
  auto* lo = static_cast<const std::byte*>(base);
  auto inside = [&](const void* p) {
    auto* b = static_cast<const std::byte*>(p);
    return b >= lo && b < lo + bytes;
  };
  if (head->list_op_pending && inside(head->list_op_pending)) return true;
  int n = 0;
  for (robust_list* e = head->list.next; e && e != &head->list && n < 65536; e = e->next, ++n)
    if (inside(e)) return true;
  return false;
}
}  // namespace

void sync_segment::close() noexcept {
  // Such a mapping stays until the process ends (the kernel then releases
  // the mutex with FUTEX_OWNER_DIED, and the next acquirer is told).
  if (base_ && !thread_holds_a_mutex_in(base_, bytes_)) ::munmap(base_, bytes_);
  base_ = nullptr;
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

}  // namespace isola::detail
