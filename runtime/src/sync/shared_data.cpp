// The segment under value<T> and array<T>: header, an rlock cell (unless
// raw), then the elements on their own cache line.
#include "isola/detail/shared_data.hpp"

#include <string>

#include "isola/error.hpp"
#include "sync/sync_util.hpp"

namespace isola::detail {

namespace {

constexpr std::size_t round_up(std::size_t n, std::size_t a) { return (n + a - 1) / a * a; }

const char* kind_name(sync_kind k) { return k == sync_kind::array ? "array" : "value"; }

}  // namespace

shared_data make_shared_data(sync_kind kind, std::uint64_t type_tag, std::size_t elem_size,
                             std::size_t align, std::size_t count, bool synchronized,
                             const char* memfd_name) {
  if (align == 0 || (align & (align - 1)) != 0 || align > 4096)
    throw value_error(std::string(kind_name(kind)) + ": unsupported alignment");
  if (elem_size != 0 && count > (std::size_t{1} << 46) / elem_size)
    throw value_error(std::string(kind_name(kind)) + ": " + std::to_string(count) +
                      " elements is too many");
  const std::size_t lock_bytes = synchronized ? mutex_cell_bytes : 0;
  // A small value shares its lock's cache line (one line moves between CPUs
  // per hand-over, not two); larger values and arrays start on a line of
  // their own.
  static_assert(sizeof(mutex_cell) + 8 <= mutex_cell_bytes);
  const bool beside_lock = synchronized && count == 1 && elem_size <= 8 && align <= 8;
  const std::size_t data_at = beside_lock ? round_up(sizeof(mutex_cell), align)
                                          : round_up(lock_bytes, std::max<std::size_t>(align, 64));
  const std::size_t payload = std::max(data_at + elem_size * count, lock_bytes);
  // The payload starts at a 4 KiB boundary when the alignment asks for more
  // than a cache line.
  const std::size_t payload_offset = std::max<std::size_t>(128, round_up(128, align));
  auto seg = sync_segment::create(kind, payload, memfd_name, payload_offset);
  auto& h = seg->header_for_init();
  h.type_tag = type_tag;
  h.elem_size = elem_size;
  h.count = count;
  h.data_offset = payload_offset + data_at;
  shared_data d;
  if (synchronized) {
    d.cell = reinterpret_cast<mutex_cell*>(seg->payload());
    init_mutex_cell(d.cell, true);
    h.lock_offset = seg->offset_of(d.cell);
  }
  d.data = seg->base() + h.data_offset;
  d.count = count;
  d.seg = std::move(seg);
  return d;
}

shared_data adopt_shared_data(std::uint32_t index, sync_kind kind, std::uint64_t type_tag,
                              std::size_t elem_size, std::size_t align) {
  auto seg = sync_segment::adopt(index, kind_bit(kind));
  const auto& h = seg->header();
  if (h.type_tag != type_tag || h.elem_size != elem_size)
    throw decode_error(std::string(kind_name(kind)) +
                       ": the shared object received holds another type than the parameter it "
                       "was passed to (elements of " +
                       std::to_string(h.elem_size) + " bytes, expected " +
                       std::to_string(elem_size) + ")");
  if (elem_size != 0 && h.count > seg->total_bytes() / elem_size)
    throw decode_error("array: bad size");
  shared_data d;
  d.data = seg->at(h.data_offset, elem_size * h.count, align);
  d.count = h.count;
  if (h.lock_offset != 0) d.cell = mutex_cell_at(*seg, h.lock_offset, 1);
  d.seg = std::move(seg);
  return d;
}

void throw_raw_has_no_lock(const char* what) {
  throw value_error(std::string(what) +
                    ": get_lock() on a raw object (made with isola::raw, Python's lock=False): "
                    "it has no lock");
}

void throw_index_error(std::size_t i, std::size_t n) {
  throw value_error("array: index " + std::to_string(i) + " out of range (size " +
                    std::to_string(n) + ")");
}

void throw_handle_empty(const char* what) {
  throw value_error(std::string(what) + ": this handle is empty");
}

void throw_owner_died_in(const char* what) {
  throw lock_owner_died(std::string(what) +
                        ": the process that held this object's lock died while holding it; the "
                        "lock is released again and the operation was not done (the object may "
                        "be half-updated: check it, then call again)");
}

}  // namespace isola::detail
