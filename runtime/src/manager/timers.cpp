// The manager's deadlines (see timers.hpp).
#include "manager/timers.hpp"

#include <algorithm>

// The manager server's internals live in their own namespace: names such
// as peer and waiter are taken in isola::detail by the actor layer.
namespace isola::detail::mgr {

int deadlines::wait_ms() const {
  if (map_.empty()) return -1;
  auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(map_.begin()->first - clk::now())
          .count();
  return static_cast<int>(std::clamp<long long>(left + 1, 0, 1 << 30));
}

std::optional<deadline_target> deadlines::pop_due(clk::time_point now) {
  if (map_.empty() || map_.begin()->first > now) return std::nullopt;
  auto t = map_.begin()->second;
  map_.erase(map_.begin());
  return t;
}

}  // namespace isola::detail::mgr
