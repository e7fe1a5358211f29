// Test support for the serialization suites: a counting replacement of the
// global operator new/delete, to measure what decoding allocates.
//
// Replacement allocation functions may be defined once per program: include
// this header from exactly one source file of a test executable.
#pragma once

#include <malloc.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>

#if defined(__SANITIZE_ADDRESS__)
#define ISOLA_FUZZ_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ISOLA_FUZZ_ASAN 1
#endif
#endif
#ifndef ISOLA_FUZZ_ASAN
#define ISOLA_FUZZ_ASAN 0
#endif

// --- counting allocator ------------------------------------------------------
//
// Only allocations made by the thread that opened a window, while it is open,
// are counted; everything else passes straight through to malloc. A window can
// also refuse requests above a cap (as a failed allocation: std::bad_alloc), so
// that a decoder which tries to allocate what the input claims is caught by
// the request it makes, without the machine having to provide the memory.

namespace alloc_count {
thread_local bool tracking_ = false;
thread_local std::size_t largest_ = 0;     // largest single request, in bytes
thread_local std::size_t count_ = 0;       // number of allocations
thread_local std::int64_t live_ = 0;       // bytes live, relative to the window's start
thread_local std::int64_t peak_ = 0;       // highest live_ seen
thread_local std::size_t cap_ = SIZE_MAX;  // larger requests are refused
thread_local std::size_t live_cap_ = SIZE_MAX;  // as are those that would take live_ above it
thread_local std::size_t refused_ = 0;     // number of requests refused

inline void note_request(std::size_t n) noexcept {
  if (!tracking_) return;
  ++count_;
  if (n > largest_) largest_ = n;
}
inline void note_alloc(void* p) noexcept {
  if (!tracking_ || p == nullptr) return;
  live_ += static_cast<std::int64_t>(malloc_usable_size(p));
  if (live_ > peak_) peak_ = live_;
}
inline void note_free(void* p) noexcept {
  if (!tracking_ || p == nullptr) return;
  live_ -= static_cast<std::int64_t>(malloc_usable_size(p));
}

inline bool refuse(std::size_t n) noexcept {
  if (!tracking_) return false;
  const bool over_live = live_ > 0 && static_cast<std::size_t>(live_) + n > live_cap_;
  if (n <= cap_ && n <= live_cap_ && !over_live) return false;
  ++refused_;
  return true;
}

inline void* allocate(std::size_t n) noexcept {
  note_request(n);
  if (refuse(n)) return nullptr;
  void* p = std::malloc(n == 0 ? 1 : n);
  note_alloc(p);
  return p;
}
inline void* allocate_aligned(std::size_t n, std::align_val_t a) noexcept {
  note_request(n);
  if (refuse(n)) return nullptr;
  auto align = static_cast<std::size_t>(a);
  if (align < sizeof(void*)) align = sizeof(void*);
  std::size_t rounded = (n == 0 ? align : (n + align - 1) / align * align);
  void* p = std::aligned_alloc(align, rounded);
  note_alloc(p);
  return p;
}
// Out of line, so that the compiler does not see a free() of what it knows
// came from operator new (-Wmismatched-new-delete).
[[gnu::noinline]] void release(void* p) noexcept {
  note_free(p);
  std::free(p);
}

struct window {
  explicit window(std::size_t cap = SIZE_MAX, std::size_t live_cap = SIZE_MAX) {
    largest_ = 0;
    count_ = 0;
    live_ = 0;
    peak_ = 0;
    cap_ = cap;
    live_cap_ = live_cap;
    refused_ = 0;
    tracking_ = true;
  }
  ~window() {
    tracking_ = false;
    cap_ = SIZE_MAX;
    live_cap_ = SIZE_MAX;
  }
  window(const window&) = delete;
  window& operator=(const window&) = delete;
};

struct stats {
  std::size_t largest = 0;  // including refused requests
  std::size_t count = 0;
  std::int64_t peak = 0;
  std::size_t refused = 0;
};
inline stats current() { return {largest_, count_, peak_, refused_}; }
}  // namespace alloc_count

void* operator new(std::size_t n) {
  if (void* p = alloc_count::allocate(n)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) {
  if (void* p = alloc_count::allocate(n)) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  return alloc_count::allocate(n);
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  return alloc_count::allocate(n);
}
void* operator new(std::size_t n, std::align_val_t a) {
  if (void* p = alloc_count::allocate_aligned(n, a)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n, std::align_val_t a) {
  if (void* p = alloc_count::allocate_aligned(n, a)) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return alloc_count::allocate_aligned(n, a);
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return alloc_count::allocate_aligned(n, a);
}
void operator delete(void* p) noexcept { alloc_count::release(p); }
void operator delete[](void* p) noexcept { alloc_count::release(p); }
void operator delete(void* p, std::size_t) noexcept { alloc_count::release(p); }
void operator delete[](void* p, std::size_t) noexcept { alloc_count::release(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { alloc_count::release(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { alloc_count::release(p); }
void operator delete(void* p, std::align_val_t) noexcept { alloc_count::release(p); }
void operator delete[](void* p, std::align_val_t) noexcept { alloc_count::release(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { alloc_count::release(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { alloc_count::release(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  alloc_count::release(p);
}
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  alloc_count::release(p);
}
