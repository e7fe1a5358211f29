// A copy of the running test program started as a peer (another node, a
// relay's far end): it prints "PORT <n>" once it listens, then answers one
// line per command line sent to its stdin. The node suites each start such
// peers; this is the one place that starts, asks and reaps them.
#pragma once

#include <boost/test/unit_test.hpp>

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <isola/popen.hpp>

namespace isola_test {

/// The path of the running program, to start copies of it.
inline std::string self_exe() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  BOOST_REQUIRE(n > 0);
  return std::string(buf, static_cast<std::size_t>(n));
}

/// self_exe() run with args; killed and reaped on destruction if still running.
class peer_program {
 public:
  explicit peer_program(std::vector<std::string> args) {
    isola::popen_options o;
    o.in = isola::stdio::pipe;
    o.out = isola::stdio::pipe;
    o.die_with_parent = true;
    args.insert(args.begin(), self_exe());
    p_ = std::make_unique<isola::popen>(std::move(args), o);
    auto line = p_->out().read_line(std::chrono::seconds(20));
    BOOST_REQUIRE(line);
    BOOST_REQUIRE_EQUAL(line->rfind("PORT ", 0), 0u);
    port_ = static_cast<std::uint16_t>(std::stoi(line->substr(5)));
  }
  ~peer_program() {
    try {
      if (!p_->poll()) {
        p_->kill();
        p_->wait();
      }
    } catch (...) {
    }
  }
  peer_program(const peer_program&) = delete;
  peer_program& operator=(const peer_program&) = delete;

  std::uint16_t port() const { return port_; }
  bool alive() { return !p_->poll(); }
  isola::popen& process() { return *p_; }

  /// Sends one command line; the peer's one-line answer.
  std::string ask(const std::string& command) {
    p_->in().write(command + "\n");
    auto line = p_->out().read_line(std::chrono::seconds(10));
    BOOST_REQUIRE(line);
    return *line;
  }

 private:
  std::unique_ptr<isola::popen> p_;
  std::uint16_t port_ = 0;
};

}  // namespace isola_test
