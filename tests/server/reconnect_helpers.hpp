// Helpers of the reconnection tests (in-memory transport): event names as
// a client saw them, the reconnection token of its disconnect notification,
// reconnecting with it, waiting for sessions to be parked.
#pragma once

#include "harness.hpp"

#include <string>
#include <vector>

namespace gatehouse::test {

inline std::vector<std::string> event_names(const s::memory_client& c) {
    std::vector<std::string> names;
    for (const auto& e : harness::events(c)) names.push_back(e.value("eventName", ""));
    return names;
}

/// Every event frame (manifests included) in arrival order, by name.
inline std::vector<std::string> all_event_names(const s::memory_client& c) {
    std::vector<std::string> names;
    for (const auto& m : decode_all(c.frames())) {
        if (m.frame.is_response()) continue;
        const auto j = m.json();
        if (j.is_object()) names.push_back(j.value("eventName", ""));
    }
    return names;
}

inline std::string reconnection_token_of(const s::memory_client& c) {
    for (const auto& e : harness::events(c))
        if (e.value("eventName", "") == "connect.disconnect-notification") return e.value("reconnectionToken", "");
    return {};
}

inline std::shared_ptr<s::memory_client> reconnect_with(harness& h, const std::string& reconnection_token) {
    auto c = h.upgrade_with("Reconnect " + reconnection_token);
    REQUIRE(c->status() == 101);
    h.run_until([&] { return harness::manifest_of(*c).has_value() || c->closed(); });
    return c;
}

inline void wait_parked(harness& h, std::size_t n) {
    h.run_until([&] { return h.gw.stats().parked_sessions == n && h.gw.stats().connections == 0; });
}

}  // namespace gatehouse::test
