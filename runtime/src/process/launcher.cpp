// The launcher thread (see launcher.hpp). A fork child starts without it:
// the state belongs to the process that made it, found by pid.
#include "process/launcher.hpp"

#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>

namespace isola::detail {

namespace {
struct job {
  const std::function<void()>* f;
  std::exception_ptr error;
  bool done = false;
};

struct launcher {
  std::mutex m;
  std::condition_variable cv;
  std::deque<job*> jobs;

  launcher() {
    std::thread([this] { loop(); }).detach();
  }
  void loop() {
    ::prctl(PR_SET_NAME, "isola-launcher");
    std::unique_lock lk(m);
    for (;;) {
      cv.wait(lk, [&] { return !jobs.empty(); });
      job* j = jobs.front();
      jobs.pop_front();
      lk.unlock();
      try {
        (*j->f)();
      } catch (...) {
        j->error = std::current_exception();
      }
      lk.lock();
      j->done = true;
      cv.notify_all();
    }
  }
};

std::mutex owner_m;
launcher* the_launcher = nullptr;
pid_t the_owner = 0;

launcher& get() {
  std::lock_guard lk(owner_m);
  // After a fork the parent's launcher thread is not here: make our own
  // (the parent's object is left alone; its mutex may be held).
  if (!the_launcher || the_owner != ::getpid()) {
    the_launcher = new launcher;  // lives until the process ends
    the_owner = ::getpid();
  }
  return *the_launcher;
}
}  // namespace

void run_on_launcher(const std::function<void()>& f) {
  if (::syscall(SYS_gettid) == ::getpid()) return f();  // the main thread lives as long
  auto& l = get();
  job j{&f, nullptr, false};
  std::unique_lock lk(l.m);
  l.jobs.push_back(&j);
  l.cv.notify_all();
  l.cv.wait(lk, [&] { return j.done; });
  if (j.error) std::rethrow_exception(j.error);
}

}  // namespace isola::detail
