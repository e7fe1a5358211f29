// What the game server's leak check counts: the root's open descriptors and
// its descendant processes, which must come back to their baseline.
#pragma once

#include <chrono>
#include <utility>

namespace game_server {

/// Open descriptors of this process (the directory stream's own excluded).
int count_fds();

/// Processes descended from this one (children, grandchildren, ...).
int count_descendants();

/// Waits (at most t) until both counts are what they were (fds < 0: any);
/// returns them.
std::pair<int, int> settle_to(int procs, int fds, std::chrono::milliseconds t);

}  // namespace game_server
