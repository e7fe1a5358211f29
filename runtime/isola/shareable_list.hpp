// isola/shareable_list.hpp — a fixed-length list of values in a shared_memory
// block, readable and writable by every process that has it (Python's
// multiprocessing.shared_memory.ShareableList).
//
//   isola::shareable_list<int> sl{1, 2, 3};           // ShareableList([1, 2, 3])
//   isola::process p(work, sl);                       // a copy goes to the child
//   auto other = isola::shareable_list<int>(sl.shm().name());  // ShareableList(name=...)
//   sl[0] = 42;  int x = sl[2];  sl.count(42);  sl.index(3);
//   isola::shareable_list<std::string> names({"ann", "bob"}, 16);  // 16 bytes per item
//
// Differences from Python, and why:
// - One element type per list, fixed at compile time: T trivially copyable,
//   or std::string (Python's str/bytes) with a capacity per item fixed at
//   creation (the longest value given, rounded up to 8 bytes like Python's
//   slots, or the capacity asked for). set() of a longer string is a
//   value_error ("exceeds available storage"), as in Python.
// - The block is an isola::shared_memory (a memfd, see shared_memory.hpp):
//   attaching by name works while its creator holds it, and nothing leaks.
//
// The first 64 bytes of the block describe the list: a magic number, the
// element type's tag, the length, the item size and the stride. Another
// process can write anything there (or into a string's length), so every
// access reads the header once into locals and checks it against the size
// of this process's mapping before touching an item: a wrong type is a
// type_error, garbage is a decode_error, and nothing is ever read or written
// outside the block. Nothing synchronizes access to the items (as in Python):
// a reader racing a writer may see a torn value, never memory outside it.
#pragma once

#include <algorithm>
#include <atomic>
#include <concepts>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <iterator>
#include <ranges>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "isola/error.hpp"
#include "isola/shared_memory.hpp"
#include "isola/type_name.hpp"

namespace isola {

class shared_memory_manager;

namespace detail {

/// The list's header, at offset 0 of its block.
struct shareable_list_header {
  std::uint64_t magic;
  std::uint64_t type_tag;
  std::uint64_t length;
  std::uint64_t item_size;  // sizeof(T), or a string item's capacity in bytes
  std::uint64_t stride;     // bytes from one item to the next
  std::uint64_t data_offset;
  std::uint64_t reserved[2];
};
static_assert(sizeof(shareable_list_header) == 64);

inline constexpr std::uint64_t shareable_list_magic = 0x3174734c6c6f7349ull;  // "IsolLst1"
/// Largest capacity of one string item (a sanity bound on what a header says).
inline constexpr std::uint64_t shareable_list_max_item = std::uint64_t{1} << 40;

/// What a validated header says, copied out of shared memory.
struct shareable_list_layout {
  std::size_t length = 0;
  std::size_t item_size = 0;
  std::size_t stride = 0;
};

[[noreturn]] void throw_shareable_list_corrupt(const std::string& what);
[[noreturn]] void throw_shareable_list_index(const std::string& i, std::size_t n);
/// Reads the header at the start of block (of block_size bytes) once, and
/// checks it: type_error if it holds another type, decode_error if it is not
/// a list or is inconsistent with block_size. is_string: items are a u64
/// length followed by item_size bytes.
shareable_list_layout read_shareable_list_header(std::byte* block, std::size_t block_size,
                                                 std::uint64_t tag, std::string (*type)(),
                                                 bool is_string, std::size_t elem_size);
void write_shareable_list_header(std::byte* block, std::uint64_t tag, std::size_t length,
                                 std::size_t item_size, std::size_t stride);

}  // namespace detail

template <class T>
class shareable_list {
  static constexpr bool is_string = std::is_same_v<T, std::string>;
  static_assert(is_string || std::is_trivially_copyable_v<T>,
                "isola::shareable_list<T>: T must be trivially copyable (or std::string, stored "
                "with a fixed capacity per item): the items live in shared memory that other "
                "processes read as bytes");
  static_assert(!std::is_const_v<T> && !std::is_volatile_v<T> && !std::is_reference_v<T>,
                "isola::shareable_list<T>: T must be a plain object type");

 public:
  using value_type = T;

  /// One item, read or written through the list (Python: sl[i], sl[i] = v).
  /// It reads the list each time it is converted: `auto x = sl[i]` keeps a
  /// reference, `T x = sl[i]` (or get(i)) a value.
  class reference {
   public:
    operator T() const { return list_->get(index_); }
    reference& operator=(const T& v) {
      list_->set(index_, v);
      return *this;
    }
    reference(const reference&) = default;
    reference& operator=(const reference& o) { return *this = static_cast<T>(o); }
    template <class U>
    requires(std::convertible_to<const U&, T>&& std::equality_comparable<T>) friend bool operator==(
        const reference& r, const U& v) {
      return static_cast<T>(r) == static_cast<T>(v);
    }
    /// Prints the item (for test frameworks and logs).
    template <class Out>
    requires requires(Out& o, const T& t) { o << t; }
    friend Out& operator<<(Out& o, const reference& r) {
      o << static_cast<T>(r);
      return o;
    }

   private:
    friend class shareable_list;
    reference(shareable_list* l, long long i) : list_(l), index_(i) {}
    shareable_list* list_;
    long long index_;
  };

  /// An empty list (Python: ShareableList()); also what a process argument
  /// decodes into before it is loaded.
  shareable_list() : shareable_list(std::span<const T>{}) {}
  /// A new list holding values (Python: ShareableList(sequence)).
  shareable_list(std::initializer_list<T> values)
      : shareable_list(std::span<const T>(values.begin(), values.size())) {}
  explicit shareable_list(std::span<const T> values, std::size_t capacity = 0) {
    create(values, capacity);
  }
  template <std::ranges::input_range R>
  requires(std::convertible_to<std::ranges::range_reference_t<R>, T> &&
           !std::convertible_to<const R&, std::string_view> &&
           !std::convertible_to<
               const R&, std::span<const T>>) explicit shareable_list(R&& values,
                                                                      std::size_t capacity = 0) {
    std::vector<T> v;
    for (auto&& x : values) v.push_back(static_cast<T>(x));
    create(std::span<const T>(v), capacity);
  }
  /// std::string items of `capacity` bytes each (0: the longest value given,
  /// rounded up to 8).
  shareable_list(std::initializer_list<T> values, std::size_t capacity) requires is_string
      : shareable_list(std::span<const T>(values.begin(), values.size()), capacity) {}

  /// Attaches to the list in the block called name (Python:
  /// ShareableList(name=name)): file_not_found_error if there is none,
  /// type_error if it holds another type. For shareable_list<std::string>
  /// write the name in parentheses, or use attach(): in braces,
  /// shareable_list<std::string>{name} is a new one-item list.
  static shareable_list attach(std::string_view name) {
    return shareable_list(shared_memory(name));
  }
  template <class S>
  requires std::convertible_to<const S&, std::string_view>
  explicit shareable_list(const S& name) : shareable_list(shared_memory(std::string_view(name))) {}
  /// Attaches to the list that block holds.
  explicit shareable_list(shared_memory block) : shm_(std::move(block)) { layout(); }

  /// Copies share the list.
  shareable_list(const shareable_list&) = default;
  shareable_list& operator=(const shareable_list&) = default;
  shareable_list(shareable_list&&) noexcept = default;
  shareable_list& operator=(shareable_list&&) noexcept = default;

  /// The number of items (fixed at creation).
  std::size_t size() const { return layout().length; }

  /// Item i; a negative i counts from the end, as in Python. index_error if
  /// out of range.
  template <std::integral I>
  T get(I i) const {
    auto l = layout();
    std::byte* p = slot(l, position(i, l));
    if constexpr (is_string) {
      std::uint64_t n = length_of(p);
      if (n > l.item_size)
        detail::throw_shareable_list_corrupt("an item's length (" + std::to_string(n) +
                                             ") exceeds its capacity (" +
                                             std::to_string(l.item_size) + ")");
      return std::string(reinterpret_cast<const char*>(p + 8), static_cast<std::size_t>(n));
    } else {
      T v;
      std::memcpy(static_cast<void*>(&v), p, sizeof(T));
      return v;
    }
  }
  /// Replaces item i. For strings, value_error if v is longer than an item's
  /// capacity (the item keeps its value).
  template <std::integral I>
  void set(I i, const T& v) {
    auto l = layout();
    std::byte* p = slot(l, position(i, l));
    if constexpr (is_string) {
      if (v.size() > l.item_size)
        throw value_error("shareable_list: bytes/str item exceeds available storage (" +
                          std::to_string(v.size()) + " bytes for an item of " +
                          std::to_string(l.item_size) + ")");
      std::memcpy(p + 8, v.data(), v.size());
      std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(p))
          .store(v.size(), std::memory_order_release);
    } else {
      std::memcpy(static_cast<void*>(p), &v, sizeof(T));
    }
  }
  template <std::integral I>
  reference operator[](I i) {
    return reference(this, static_cast<long long>(i));
  }
  template <std::integral I>
  T operator[](I i) const {
    return get(i);
  }

  /// How many items equal v.
  std::size_t count(const T& v) const requires std::equality_comparable<T> {
    std::size_t n = 0;
    for (const auto& x : to_vector()) n += x == v ? 1 : 0;
    return n;
  }
  /// The position of the first item equal to v; value_error if none.
  std::size_t index(const T& v) const requires std::equality_comparable<T> {
    auto all = to_vector();
    for (std::size_t i = 0; i < all.size(); ++i)
      if (all[i] == v) return i;
    throw value_error("shareable_list::index: the value is not in the list");
  }
  /// Every item (Python: list(sl)).
  std::vector<T> to_vector() const {
    auto l = layout();
    std::vector<T> out;
    out.reserve(l.length);
    for (std::size_t i = 0; i < l.length; ++i) out.push_back(get(i));
    return out;
  }

  /// The element type as stored ("int32", "string[16]"): Python's format.
  std::string format() const {
    auto l = layout();
    if constexpr (is_string) return "string[" + std::to_string(l.item_size) + "]";
    return type_name<T>();
  }
  /// A string item's capacity in bytes; sizeof(T) otherwise.
  std::size_t item_size() const { return layout().item_size; }

  /// The block the list lives in (Python: sl.shm): its name(), close(), unlink().
  shared_memory& shm() noexcept { return shm_; }
  const shared_memory& shm() const noexcept { return shm_; }

  /// Only while process arguments are encoded/decoded (handle_transfer.hpp).
  template <class Archive>
  void save(Archive& ar) const {
    ar(shm_);
  }
  template <class Archive>
  requires std::is_class_v<Archive>
  void load(Archive& ar) {
    shared_memory s;
    ar(s);
    shareable_list attached(std::move(s));
    *this = std::move(attached);
  }

 private:
  friend class shared_memory_manager;
  struct in_block_t {};
  // A new list in block (which is big enough: bytes_for()).
  shareable_list(in_block_t, shared_memory block, std::span<const T> values, std::size_t capacity)
      : shm_(std::move(block)) {
    fill(values, capacity);
  }

  static std::size_t capacity_for(std::span<const T> values, std::size_t capacity) {
    if constexpr (is_string) {
      if (capacity == 0) {
        for (const auto& v : values) capacity = std::max(capacity, v.size());
        capacity = std::max<std::size_t>(8, (capacity + 7) / 8 * 8);
      }
      if (capacity > detail::shareable_list_max_item)
        throw value_error("shareable_list: item capacity too large");
      return capacity;
    } else {
      return sizeof(T);
    }
  }
  static std::size_t stride_for(std::size_t item_size) {
    if constexpr (is_string) return (8 + item_size + 7) / 8 * 8;
    return item_size;
  }
  /// Bytes of a block for values (header included).
  static std::size_t bytes_for(std::span<const T> values, std::size_t capacity) {
    std::size_t stride = stride_for(capacity_for(values, capacity));
    if (values.size() > (SIZE_MAX - sizeof(detail::shareable_list_header)) / stride)
      throw value_error("shareable_list: too many items");
    return sizeof(detail::shareable_list_header) + values.size() * stride;
  }
  void create(std::span<const T> values, std::size_t capacity) {
    shm_ = shared_memory(bytes_for(values, capacity));
    fill(values, capacity);
  }
  void fill(std::span<const T> values, std::size_t capacity) {
    std::size_t item = capacity_for(values, capacity);
    std::size_t stride = stride_for(item);
    auto b = shm_.buf();
    if (b.size() < sizeof(detail::shareable_list_header) + values.size() * stride)
      throw value_error("shareable_list: the block is too small for the list");
    // Items first, header last: a process attaching meanwhile sees no list.
    std::byte* data = b.data() + sizeof(detail::shareable_list_header);
    for (std::size_t i = 0; i < values.size(); ++i) {
      std::byte* p = data + i * stride;
      if constexpr (is_string) {
        const auto& v = values[i];
        if (v.size() > item)
          throw value_error("shareable_list: bytes/str item exceeds available storage (" +
                            std::to_string(v.size()) + " bytes for an item of " +
                            std::to_string(item) + ")");
        std::uint64_t n = v.size();
        std::memcpy(p, &n, 8);
        std::memcpy(p + 8, v.data(), v.size());
      } else {
        std::memcpy(static_cast<void*>(p), &values[i], sizeof(T));
      }
    }
    detail::write_shareable_list_header(b.data(), type_tag<T>(), values.size(), item, stride);
  }
  detail::shareable_list_layout layout() const {
    auto b = shm_.buf();  // value_error once closed
    return detail::read_shareable_list_header(b.data(), b.size(), type_tag<T>(), &type_name<T>,
                                              is_string, is_string ? 0 : sizeof(T));
  }
  template <class I>
  static std::size_t position(I i, const detail::shareable_list_layout& l) {
    if constexpr (std::is_unsigned_v<I>) {
      if (i >= l.length) detail::throw_shareable_list_index(std::to_string(i), l.length);
      return static_cast<std::size_t>(i);
    } else {
      // Python's negative indices count from the end. (length fits a long
      // long: it is at most the block's size.)
      const long long p = static_cast<long long>(i);
      const long long n = static_cast<long long>(l.length);
      const long long q = p < 0 ? p + n : p;
      if (q < 0 || q >= n) detail::throw_shareable_list_index(std::to_string(p), l.length);
      return static_cast<std::size_t>(q);
    }
  }
  std::byte* slot(const detail::shareable_list_layout& l, std::size_t i) const {
    // i < l.length, checked against the mapping by read_shareable_list_header.
    return shm_.buf().data() + sizeof(detail::shareable_list_header) + i * l.stride;
  }
  static std::uint64_t length_of(std::byte* p) {
    return std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(p))
        .load(std::memory_order_acquire);
  }

  shared_memory shm_;
};

}  // namespace isola
