// isola/joinable_queue.hpp — a queue that counts unfinished tasks
// (Python's multiprocessing.JoinableQueue).
//
//   isola::joinable_queue<job> q;
//   // consumers:  auto j = q.get(); work(j); q.task_done();
//   q.join();     // returns once every job put has been marked done
//
// Every message put raises the count of unfinished tasks, in the same atomic
// step that makes the message visible (so the count can never include a
// message that is not in the queue, or miss one that is); task_done()
// lowers it, in one atomic step, and throws value_error("task_done() called
// too many times") rather than go below zero. join() waits until it is zero.
//
// What other processes see when one is SIGKILLed: the count is always
// exactly (messages put) - (task_done calls), with "put" meaning the message
// was committed to the queue: a producer killed inside put either committed
// the message and its count or neither. A consumer killed after taking a
// message but before its task_done() leaves that task unfinished for good,
// so join() would wait forever — as in Python; a supervisor that knows the
// task died can call task_done() for it.
//
// Every handle of a queue counts: a joinable_queue passed to a function
// taking queue<T> still raises the count on put.
#pragma once

#include <cstddef>

#include "isola/queue.hpp"

namespace isola {

template <class T = message>
class joinable_queue : public queue<T> {
 public:
  explicit joinable_queue(std::size_t maxsize = 0, queue_options opts = {})
      : queue<T>(maxsize, opts, 2) {}

  /// Marks one task taken from the queue as finished.
  void task_done() { this->ring().task_done(); }
  /// Waits until every message put has been marked done.
  void join() { this->ring().join(detail::deadline::forever()); }
  /// Waits at most timeout; returns whether every task was done.
  bool join(duration timeout) { return this->ring().join(detail::deadline::after(timeout)); }
  /// Messages put and not yet marked done (taken or not).
  std::size_t unfinished_tasks() const { return this->ring().unfinished_tasks(); }
};

}  // namespace isola
