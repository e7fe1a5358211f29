// shareable_list: the header checks. The header lives in memory other
// processes can write, so each field is read exactly once (an atomic load:
// a concurrent writer is a race on the data, never undefined behaviour here)
// and the accessor works only from those copies.
#include "isola/shareable_list.hpp"

#include <cstddef>

namespace isola::detail {

namespace {

std::uint64_t read_field(std::byte* block, std::size_t offset) {
  return std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(block + offset))
      .load(std::memory_order_acquire);
}

void write_field(std::byte* block, std::size_t offset, std::uint64_t v) {
  std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(block + offset))
      .store(v, std::memory_order_release);
}

}  // namespace

void throw_shareable_list_corrupt(const std::string& what) {
  throw decode_error("shareable_list: the list's header in shared memory is corrupt: " + what);
}

void throw_shareable_list_index(const std::string& i, std::size_t n) {
  throw index_error("shareable_list: index " + i + " out of range (size " + std::to_string(n) +
                    ")");
}

shareable_list_layout read_shareable_list_header(std::byte* block, std::size_t block_size,
                                                 std::uint64_t tag, std::string (*type)(),
                                                 bool is_string, std::size_t elem_size) {
  using h = shareable_list_header;
  constexpr std::size_t header = sizeof(h);
  if (block_size < header)
    throw decode_error("shareable_list: the block (" + std::to_string(block_size) +
                       " bytes) is too small to hold a list");
  const std::uint64_t magic = read_field(block, offsetof(h, magic));
  const std::uint64_t stored_tag = read_field(block, offsetof(h, type_tag));
  const std::uint64_t length = read_field(block, offsetof(h, length));
  const std::uint64_t item = read_field(block, offsetof(h, item_size));
  const std::uint64_t stride = read_field(block, offsetof(h, stride));
  const std::uint64_t data = read_field(block, offsetof(h, data_offset));
  if (magic != shareable_list_magic)
    throw decode_error(
        "shareable_list: the block does not hold a shareable_list (its header's magic number "
        "is wrong: not a list, or overwritten)");
  if (stored_tag != tag)
    throw type_error("shareable_list: the block holds a list of " + type_name_for_tag(stored_tag) +
                     ", not of " + type());
  if (data != header) throw_shareable_list_corrupt("data offset " + std::to_string(data));
  if (is_string) {
    if (item == 0 || item > shareable_list_max_item)
      throw_shareable_list_corrupt("item capacity " + std::to_string(item));
    if (stride != (8 + item + 7) / 8 * 8)
      throw_shareable_list_corrupt("stride " + std::to_string(stride) + " for items of " +
                                   std::to_string(item) + " bytes");
  } else if (item != elem_size || stride != elem_size) {
    throw_shareable_list_corrupt("item size " + std::to_string(item) + ", stride " +
                                 std::to_string(stride) + " for a type of " +
                                 std::to_string(elem_size) + " bytes");
  }
  if (length > (block_size - header) / stride)
    throw_shareable_list_corrupt("length " + std::to_string(length) + " of " +
                                 std::to_string(stride) + "-byte items in a block of " +
                                 std::to_string(block_size) + " bytes");
  return {static_cast<std::size_t>(length), static_cast<std::size_t>(item),
          static_cast<std::size_t>(stride)};
}

void write_shareable_list_header(std::byte* block, std::uint64_t tag, std::size_t length,
                                 std::size_t item_size, std::size_t stride) {
  using h = shareable_list_header;
  write_field(block, offsetof(h, type_tag), tag);
  write_field(block, offsetof(h, length), length);
  write_field(block, offsetof(h, item_size), item_size);
  write_field(block, offsetof(h, stride), stride);
  write_field(block, offsetof(h, data_offset), sizeof(h));
  write_field(block, offsetof(h, magic), shareable_list_magic);  // last: the list is ready
}

}  // namespace isola::detail
