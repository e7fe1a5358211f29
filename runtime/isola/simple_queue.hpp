// isola/simple_queue.hpp — an unbounded queue with only put, get, empty and
// close (Python's multiprocessing.SimpleQueue).
//
//   isola::simple_queue<std::string> q;
//   q.put("hello");
//   auto s = q.get();
//
// Everything queue.hpp says about processes, crashes and close() holds: it is
// the same shared-memory queue with maxsize 0 and fewer members.
#pragma once

#include "isola/queue.hpp"

namespace isola {

template <class T = message>
class simple_queue {
 public:
  using value_type = T;

  simple_queue() : simple_queue(queue_options{}) {}
  explicit simple_queue(queue_options opts) : q_(0, opts) {}

  /// Puts v (waits only if the ring has no room for it).
  void put(const T& v) { q_.put(v); }
  /// Takes the next message, waiting while there is none.
  T get() { return q_.get(); }
  /// get() into out, reusing its memory (see queue::get_into).
  void get_into(T& out) { q_.get_into(out); }
  bool empty() const { return q_.empty(); }
  void close() noexcept { q_.close(); }
  bool closed() const noexcept { return q_.closed(); }
  waitable wait_handle() const { return q_.wait_handle(); }

  template <class Archive>
  void save(Archive& ar) const {
    q_.save(ar);
  }
  template <class Archive>
  void load(Archive& ar) {
    q_.load(ar);
  }

 private:
  queue<T> q_;
};

}  // namespace isola
