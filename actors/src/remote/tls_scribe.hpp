// A CAF scribe whose bytes go through a tls_session (runtime/src/sys/tls.hpp):
// what a node link is when it was opened with TLS. It is CAF's own stream
// machinery (caf::io::network::stream_impl) with a policy that reads and
// writes through SSL_read/SSL_write, as CAF's OpenSSL module builds its
// scribes; the BASP broker adds it with add_scribe where a plain link gets
// new_scribe(fd). The TLS handshake is over before the scribe exists (the
// gatekeeper's thread, or the connecting one), so the scribe only ever moves
// application data, without blocking.
#pragma once

#include <caf/io/scribe.hpp>

#include <memory>

namespace caf::io::network {
class default_multiplexer;
}

namespace isola::detail {
class tls_session;

/// A scribe over fd (which it then owns, as CAF's scribes do) whose traffic
/// goes through s (already established).
caf::io::scribe_ptr make_tls_scribe(caf::io::network::default_multiplexer& mx, int fd,
                                    std::shared_ptr<tls_session> s);
}  // namespace isola::detail
