// shared_memory: a memfd whose first page describes it (creator, descriptor,
// token, size, unlinked flag) and whose user bytes start at the second page.
// A name is resolved through /proc/<creator pid>/fd/<fd>: opening that link
// opens the memfd itself, for a process of the same user.
#include "isola/shared_memory.hpp"

#include <fcntl.h>
#include <sys/random.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <string>

#include "isola/error.hpp"
#include "sync/sync_util.hpp"
#include "sys/os.hpp"
#include "sys/random.hpp"

namespace isola {

namespace {

constexpr std::size_t page = 4096;
constexpr std::uint32_t shm_tag = 0x4d485349u;  // "ISHM"

struct shm_cell {  // at offset 128 of the first page
  std::uint32_t tag;
  std::uint32_t creator_pid;
  std::uint32_t creator_fd;
  std::uint32_t reserved;
  std::uint64_t token;
  std::uint64_t size;
  std::atomic<std::uint32_t> unlinked;
};

shm_cell& cell_of(const detail::sync_segment& s) {
  return *reinterpret_cast<shm_cell*>(s.at(sizeof(detail::sync_header), sizeof(shm_cell), 8));
}

std::string make_name(const shm_cell& c) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "isola-shm-%u-%u-%016llx", c.creator_pid, c.creator_fd,
                static_cast<unsigned long long>(c.token));
  return buf;
}

[[noreturn]] void no_such(std::string_view name, const char* why) {
  throw file_not_found_error("shared_memory: no shared memory named '" + std::string(name) +
                             "' (" + why + ")");
}

template <class N>
bool parse_number(std::string_view& s, N& out, int base, char stop) {
  auto end = s.find(stop);
  std::string_view part = s.substr(0, end);
  auto r = std::from_chars(part.data(), part.data() + part.size(), out, base);
  if (r.ec != std::errc() || r.ptr != part.data() + part.size() || part.empty()) return false;
  s = end == std::string_view::npos ? std::string_view{} : s.substr(end + 1);
  return true;
}

}  // namespace

struct shared_memory::state {
  std::shared_ptr<detail::sync_segment> seg;
  std::string name;
  std::size_t size = 0;
};

shared_memory::shared_memory(std::size_t size) {
  if (size == 0) throw value_error("shared_memory: size must be a positive number of bytes");
  auto seg =
      detail::sync_segment::create(detail::sync_kind::shared_memory, size, "isola-shm", page);
  auto& c = cell_of(*seg);
  const auto token = detail::random_value<std::uint64_t>();
  c.creator_pid = static_cast<std::uint32_t>(::getpid());
  c.creator_fd = static_cast<std::uint32_t>(seg->fd());
  c.token = token;
  c.size = size;
  c.tag = shm_tag;
  st_ = std::make_shared<state>();
  st_->name = make_name(c);
  st_->size = size;
  st_->seg = std::move(seg);
}

shared_memory::shared_memory(std::string_view name) {
  // isola-shm-<pid>-<fd>-<token>
  constexpr std::string_view prefix = "isola-shm-";
  std::string_view s = name;
  if (s.substr(0, prefix.size()) != prefix) no_such(name, "not a name isola made");
  s.remove_prefix(prefix.size());
  unsigned pid = 0, fd = 0;
  std::uint64_t token = 0;
  if (!parse_number(s, pid, 10, '-') || !parse_number(s, fd, 10, '-') ||
      !parse_number(s, token, 16, '\0') || pid == 0)
    no_such(name, "not a name isola made");
  std::string path = "/proc/" + std::to_string(pid) + "/fd/" + std::to_string(fd);
  int raw = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (raw < 0) {
    if (errno == EACCES || errno == EPERM)
      throw os_error(errno, "shared_memory: no permission to attach to '" + std::string(name) +
                                "' (it belongs to another user's process)");
    no_such(name, "its creator has closed it or ended");
  }
  std::shared_ptr<detail::sync_segment> seg;
  try {
    seg = detail::sync_segment::from_fd(raw, detail::kind_bit(detail::sync_kind::shared_memory));
  } catch (const decode_error&) {
    no_such(name, "its creator's descriptor now holds something else");
  }
  auto& c = cell_of(*seg);
  if (c.tag != shm_tag || c.token != token || c.creator_pid != pid)
    no_such(name, "its creator's descriptor now holds something else");
  if (c.unlinked.load(std::memory_order_acquire) != 0) no_such(name, "it was unlinked");
  if (c.size > seg->payload_size()) throw decode_error("shared_memory: corrupt size");
  st_ = std::make_shared<state>();
  st_->name = make_name(c);
  st_->size = c.size;
  st_->seg = std::move(seg);
}

void shared_memory::adopt(std::uint32_t index) {
  auto seg = detail::sync_segment::adopt(index, detail::kind_bit(detail::sync_kind::shared_memory));
  auto& c = cell_of(*seg);
  if (c.tag != shm_tag || c.size > seg->payload_size())
    throw decode_error("shared_memory: the descriptor received is not a shared_memory block");
  auto st = std::make_shared<state>();
  st->name = make_name(c);
  st->size = c.size;
  st->seg = std::move(seg);
  st_ = std::move(st);
}

detail::sync_segment& shared_memory::segment() const {
  if (!st_ || !st_->seg || st_->seg->closed())
    throw value_error("shared_memory: the block is closed in this process");
  return *st_->seg;
}

std::span<std::byte> shared_memory::buf() const {
  auto& s = segment();
  return {s.payload(), st_->size};
}

std::size_t shared_memory::size() const {
  segment();
  return st_->size;
}

const std::string& shared_memory::name() const {
  if (!st_) throw value_error("shared_memory: this handle is empty");
  return st_->name;
}

void shared_memory::close() noexcept {
  if (st_ && st_->seg) st_->seg->close();
}

bool shared_memory::closed() const noexcept { return !st_ || !st_->seg || st_->seg->closed(); }

void shared_memory::unlink() {
  if (!st_) throw value_error("shared_memory: this handle is empty");
  // A second unlink, here or anywhere, is Python's FileNotFoundError.
  auto end_name = [this](shm_cell& c) {
    if (c.unlinked.exchange(1, std::memory_order_acq_rel) != 0)
      no_such(st_->name, "it was unlinked already");
  };
  if (!closed()) return end_name(cell_of(*st_->seg));
  // Closed here (Python's usual close(); unlink()): reach the block through
  // its name. A name that no longer resolves (unlinked, or its creator has
  // closed it or ended) is file_not_found_error, as in Python.
  try {
    shared_memory again(std::string_view(st_->name));
    end_name(cell_of(*again.st_->seg));
  } catch (const file_not_found_error&) {
    throw;
  } catch (const os_error&) {}  // another user's: not ours to end
}

}  // namespace isola
