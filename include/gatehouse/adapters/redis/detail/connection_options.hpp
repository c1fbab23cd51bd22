// How the Redis adapters reach Redis: the connection options
// redis_session_store_options and redis_event_bus_options share (each adds
// its own key prefix, with its own default, and options of its own).
#pragma once

#include <chrono>
#include <string>

namespace gatehouse::adapters::redis::detail {

struct connection_options {
    /// An IP address or a host name (resolved asynchronously on every
    /// (re)connect, by the adapters' shared link: detail/redis_link.hpp).
    std::string host = "127.0.0.1";
    int port = 6379;
    /// Sent with AUTH after every connect when not empty. Never logged.
    std::string password;
    /// SELECTed after every connect when not 0.
    int database = 0;
    /// Longest wait for an answer before an operation fails with a timeout.
    std::chrono::milliseconds command_timeout{1000};
    /// Backoff between reconnection attempts: doubles from min up to max.
    std::chrono::milliseconds reconnect_delay_min{50};
    std::chrono::milliseconds reconnect_delay_max{1000};
};

/// What is wrong with `o` (for the std::invalid_argument an adapter throws
/// at start-up), or nullptr when nothing is.
inline const char* connection_options_problem(const connection_options& o) noexcept {
    if (o.host.empty()) return "host is empty";
    if (o.port <= 0 || o.port > 65535) return "port out of range";
    if (o.database < 0) return "database is negative";
    if (o.command_timeout.count() <= 0 || o.reconnect_delay_min.count() <= 0 ||
        o.reconnect_delay_max < o.reconnect_delay_min)
        return "timeouts must be positive (and max >= min delay)";
    return nullptr;
}

}  // namespace gatehouse::adapters::redis::detail
