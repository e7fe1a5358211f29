#include "isola/wait.hpp"

#include <poll.h>

#include <algorithm>
#include <cerrno>

#include "isola/connection.hpp"
#include "isola/process.hpp"
#include "sys/os.hpp"

namespace isola {

waitable::waitable(const connection& c)
    : fd_(c.fileno()), ready_now_([&c] { return c.has_buffered_message(); }) {}

waitable::waitable(const process& p) : fd_(p.sentinel()) {}

std::vector<std::size_t> wait(std::span<const waitable> objects,
                              std::optional<std::chrono::duration<double>> timeout) {
  using clock = std::chrono::steady_clock;
  std::optional<clock::time_point> deadline;
  if (timeout) deadline = clock::now() + std::chrono::duration_cast<clock::duration>(*timeout);
  std::vector<pollfd> fds(objects.size());
  for (;;) {
    std::vector<bool> now(objects.size());
    bool any_now = false;
    for (std::size_t i = 0; i < objects.size(); ++i) any_now |= (now[i] = objects[i].ready_now());
    for (std::size_t i = 0; i < objects.size(); ++i) fds[i] = {objects[i].fd(), POLLIN, 0};
    int ms = -1;
    if (any_now) {
      ms = 0;  // something is ready: only look whether the others are too
    } else if (deadline) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          *deadline - clock::now() + std::chrono::microseconds(999));
      ms = static_cast<int>(std::clamp<long long>(left.count(), 0, 1 << 30));
    }
    int r = ::poll(fds.data(), fds.size(), ms);
    if (r < 0) {
      if (errno == EINTR) continue;
      detail::throw_errno("poll");
    }
    std::vector<std::size_t> ready;
    for (std::size_t i = 0; i < objects.size(); ++i) {
      if (now[i]) {
        ready.push_back(i);
        continue;
      }
      if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      // A queue's descriptor can wake us for an item another consumer took:
      // such objects confirm with ready_now (which also rearms the fd).
      if (objects[i].confirm() && !objects[i].ready_now()) continue;
      ready.push_back(i);
    }
    if (!ready.empty()) return ready;
    if (deadline && clock::now() >= *deadline) return {};
  }
}

std::vector<std::size_t> wait(std::initializer_list<waitable> objects,
                              std::optional<std::chrono::duration<double>> timeout) {
  return wait(std::span<const waitable>(objects.begin(), objects.size()), timeout);
}

}  // namespace isola
