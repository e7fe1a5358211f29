// isola/detail/sync_segment.hpp — the shared memory under isola's locks,
// semaphores, values, arrays, shared_memory blocks, events, conditions and
// barriers.
//
// Each such object lives in its own memfd (MFD_CLOEXEC, sealed against
// resizing), mapped by every process that has a handle to it: copies made by
// fork share the mapping; a handle given to a forkserver or spawn child as a
// process argument sends the memfd along (SCM_RIGHTS, see handle_transfer.hpp)
// and the child maps it. The memory has no name in any file system: nothing
// needs unlinking, and the kernel frees it when the last process holding it
// ends, even if every one is SIGKILLed.
//
// A segment starts with a small header (magic, kind, sizes, the element type's
// tag) that a child checks before it uses what it received; the object's own
// state follows at payload_offset.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "isola/detail/deadline.hpp"

namespace isola::detail {

/// What a segment holds (checked when a child adopts one).
enum class sync_kind : std::uint32_t {
  lock = 1,
  rlock,
  semaphore,
  value,
  array,
  shared_memory,
  event,
  condition,
  barrier,
};

/// The header at offset 0 of every segment. Written once by the creator,
/// before any other process can see the memory; read-only afterwards.
struct sync_header {
  std::uint64_t magic;
  std::uint32_t kind;
  std::uint32_t version;
  std::uint64_t total_bytes;     // size of the memfd
  std::uint64_t payload_offset;  // where the object's state starts
  std::uint64_t type_tag;        // value/array: the element type's tag
  std::uint64_t elem_size;       // value/array: sizeof(T)
  std::uint64_t count;           // array: elements; others: 1
  std::uint64_t data_offset;     // value/array: where the elements start
  std::uint64_t lock_offset;     // value/array/condition: the lock's cell (0: none)
  std::uint64_t reserved[7];
};
static_assert(sizeof(sync_header) == 128);

/// A memfd mapped in this process.
class sync_segment {
 public:
  /// A new zero-filled segment with `payload` bytes at `payload_offset`
  /// (>= sizeof(sync_header), a multiple of 64), named memfd_name in
  /// /proc/<pid>/fd (for humans; the name is not a path).
  static std::shared_ptr<sync_segment> create(sync_kind kind, std::size_t payload,
                                              const char* memfd_name,
                                              std::size_t payload_offset = 128);
  /// In a child decoding its arguments: maps the segment that arrived as
  /// import_fd(index). Throws decode_error if it is not an isola sync segment
  /// of one of the kinds accepted (a bit per sync_kind value; 0: any).
  static std::shared_ptr<sync_segment> adopt(std::uint32_t index, std::uint32_t kinds_mask = 0);
  /// Maps a segment from a descriptor this process opened itself (it takes
  /// ownership). Same checks as adopt.
  static std::shared_ptr<sync_segment> from_fd(int fd, std::uint32_t kinds_mask = 0);

  ~sync_segment();
  sync_segment(const sync_segment&) = delete;
  sync_segment& operator=(const sync_segment&) = delete;

  const sync_header& header() const noexcept { return *static_cast<const sync_header*>(base_); }
  sync_header& header_for_init() noexcept { return *static_cast<sync_header*>(base_); }
  std::byte* base() const noexcept { return static_cast<std::byte*>(base_); }
  std::byte* payload() const noexcept { return base() + payload_offset_; }
  std::size_t payload_size() const noexcept { return bytes_ - payload_offset_; }
  std::size_t total_bytes() const noexcept { return bytes_; }
  /// A pointer `offset` bytes into the segment, checked to leave room for
  /// `size` bytes aligned to `align`; decode_error otherwise (a corrupt or
  /// foreign segment must not make this process touch memory outside it).
  std::byte* at(std::uint64_t offset, std::size_t size, std::size_t align) const;
  std::uint64_t offset_of(const void* p) const noexcept {
    return static_cast<std::uint64_t>(static_cast<const std::byte*>(p) - base());
  }
  int fd() const noexcept { return fd_; }
  bool closed() const noexcept { return base_ == nullptr; }
  /// Only while process arguments are encoded (handle_transfer.hpp).
  std::uint32_t export_fd() const;
  /// Unmaps and closes the descriptor in this process (shared_memory::close).
  void close() noexcept;

 private:
  sync_segment() = default;
  void map(int fd, std::size_t bytes);
  void* base_ = nullptr;
  std::size_t bytes_ = 0;
  std::size_t payload_offset_ = 0;
  int fd_ = -1;
};

constexpr std::uint32_t kind_bit(sync_kind k) noexcept {
  return std::uint32_t{1} << static_cast<std::uint32_t>(k);
}

}  // namespace isola::detail
