// getrandom(2) behind random.hpp's one error policy.
#include "sys/random.hpp"

#include <sys/random.h>

#include <cerrno>

#include "sys/os.hpp"

namespace isola::detail {

void random_bytes(std::span<std::byte> out) {
  std::size_t got = 0;
  while (got < out.size()) {
    ssize_t r = ::getrandom(out.data() + got, out.size() - got, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      throw_errno("getrandom");
    }
    if (r == 0) throw_errno("getrandom", EIO);  // never returned by Linux; no loop on it
    got += static_cast<std::size_t>(r);
  }
}

}  // namespace isola::detail
