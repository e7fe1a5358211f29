// The gateway's tables, as counts (for the tests and the logs): what it holds
// for other nodes' requests, and what waits for room in a full mailbox. Both
// are bounded: a request's record goes with its answer, its deadline or its
// target's end; parking is bounded per target and in bytes (core/parking.hpp).
#pragma once

#include <cstddef>

namespace isola::detail {

struct gateway_tables {
  std::size_t in_flight = 0;     // requests from other nodes not answered yet
  std::size_t parked = 0;        // envelopes waiting for room in a mailbox
  std::size_t parked_bytes = 0;  // their payloads
};

/// The current counts; zeros where no gateway runs (not listening).
gateway_tables gateway_table_sizes();

/// How many links to other nodes are up in this root (a lost one leaves the
/// table: node_client.cpp).
std::size_t linked_node_count();

/// How many envelopes the gateway parks for one mailbox at most.
constexpr std::size_t gateway_parking_per_target = 256;

}  // namespace isola::detail
