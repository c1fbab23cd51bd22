// Counters (gateway_core): the stats snapshot and the Prometheus exposition.
#pragma once

#include <gatehouse/server/detail/connection_state.hpp>

namespace gatehouse::server::detail {

// ---------------------------------------------------------------------------
// gateway_core: statistics and GET metrics_path

inline gateway_stats gateway_core::snapshot() const {
    gateway_stats s;
    s.connections = connections.load(std::memory_order_acquire);
    s.client_calls_pending = client_calls_pending.load(std::memory_order_relaxed);
    {
        const auto reg = sessions.lock();
        s.sessions = reg->sessions.size();
        s.parked_sessions = reg->parked.size();
        s.queued_events = reg->parked_events;
    }
#define GATEHOUSE_DETAIL_COUNTER_LOAD(field, exposed, help) s.field = field.load(std::memory_order_relaxed);
    GATEHOUSE_GATEWAY_COUNTERS(GATEHOUSE_DETAIL_COUNTER_LOAD)
#undef GATEHOUSE_DETAIL_COUNTER_LOAD
    if (observer_events) {
#define GATEHOUSE_DETAIL_OBSERVER_LOAD(field, accessor, help) s.field = observer_events->accessor();
        GATEHOUSE_GATEWAY_OBSERVER_COUNTERS(GATEHOUSE_DETAIL_OBSERVER_LOAD)
#undef GATEHOUSE_DETAIL_OBSERVER_LOAD
    }
    return s;
}

inline bool gateway_core::render_metrics(std::string& out) const {
    if (!metrics) return false;
    const auto s = snapshot();
    // Gauges, then the exposed counters, in table order (gateway_stats.hpp).
    struct row {
        scrape_value value;
        bool exposed;
    };
    const row all[] = {
#define GATEHOUSE_DETAIL_GAUGE_ROW(field, name, help) {{name, "gauge", help, s.field}, true},
        GATEHOUSE_GATEWAY_GAUGES(GATEHOUSE_DETAIL_GAUGE_ROW)
#undef GATEHOUSE_DETAIL_GAUGE_ROW
#define GATEHOUSE_DETAIL_COUNTER_ROW(field, exposed, help) {{#field "_total", "counter", help, s.field}, exposed},
        GATEHOUSE_GATEWAY_COUNTERS(GATEHOUSE_DETAIL_COUNTER_ROW)
#undef GATEHOUSE_DETAIL_COUNTER_ROW
#define GATEHOUSE_DETAIL_OBSERVER_ROW(field, accessor, help) {{#field "_total", "counter", help, s.field}, true},
        GATEHOUSE_GATEWAY_OBSERVER_COUNTERS(GATEHOUSE_DETAIL_OBSERVER_ROW)
#undef GATEHOUSE_DETAIL_OBSERVER_ROW
    };
    scrape_value values[sizeof all / sizeof all[0]];
    std::size_t count = 0;
    for (const auto& row : all)
        if (row.exposed) values[count++] = row.value;
    return metrics->render_exposition(out, values, count);
}

inline bool gateway_core::metrics_allowed(std::string_view remote) const {
    // Loopback by default: 127.0.0.0/8 and ::1 (IPv4-mapped addresses arrive as IPv4).
    if (options.metrics_allowed_addresses.empty()) return is_loopback_address(remote);
    return std::find(options.metrics_allowed_addresses.begin(), options.metrics_allowed_addresses.end(), remote) !=
           options.metrics_allowed_addresses.end();
}

}  // namespace gatehouse::server::detail
