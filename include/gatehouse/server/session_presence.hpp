// Where a session is (gateway::local_sessions, local_session,
// account_presence): its own header so that the session registry
// (detail/session_registry.hpp) can report it without the gateway.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <system_error>
#include <vector>

namespace gatehouse::server {

/// Where a session is, as presence queries report it.
struct session_presence {
    enum class state : std::uint8_t {
        connected,  ///< a live connection on `node_id` (this node)
        parked,     ///< waiting on `node_id` (this node) for its client to come back
        held,       ///< held by another live node of the cluster (connected or parked there)
    };
    std::string session_id;
    std::string account_id;
    std::string node_id;
    state where = state::connected;
    /// This node's sessions only: the connection's source address.
    std::string remote_address;
};

/// Completion of gateway::account_presence: called exactly once.
using presence_handler = std::function<void(std::error_code, std::vector<session_presence>)>;

}  // namespace gatehouse::server
