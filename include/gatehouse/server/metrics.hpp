// What the gateway reports about itself, and a built-in sink that renders it
// in the Prometheus text exposition format (version 0.0.4) for GET /metrics.
//
// `metrics_sink` is the interface: the gateway calls it on its I/O threads,
// once per event (upgrade, message, response, close, handler latency). A host
// implements it to feed its own monitoring, overriding only what it needs
// (every function has an empty default), or uses `prometheus_metrics`.
//
// Threading: every function may be called concurrently from any number of
// I/O threads, on the per-message path. Implementations must be thread-safe,
// must not block and must not throw (they are noexcept).
#pragma once

#include <gatehouse/protocol/response_code.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace gatehouse::server {

/// How an upgrade request ended (PROTOCOL.md §18 "Rejected upgrades").
enum class upgrade_result : std::uint8_t {
    accepted,           ///< 101
    bad_request,        ///< 400: not a WebSocket upgrade, malformed request
    not_found,          ///< 404: not the WebSocket path
    unauthorized,       ///< 401: missing or bad credentials
    forbidden_origin,   ///< 403: Origin not allowed
    rate_limited,       ///< 429: connect-rate limit of the source address
    over_capacity,      ///< 503: node or account connection cap
    handshake_timeout,  ///< the upgrade did not complete in time
    internal_error,     ///< 500 or a failure of ours
    shutting_down,      ///< 503: the gateway is stopping
    address_limit,      ///< 429: connections from the source address at max_connections_per_address
};
inline constexpr std::size_t upgrade_result_count = 11;

/// Label value of an upgrade result ("accepted", "unauthorized", ...).
constexpr std::string_view upgrade_result_name(upgrade_result r) noexcept {
    switch (r) {
    case upgrade_result::accepted: return "accepted";
    case upgrade_result::bad_request: return "bad_request";
    case upgrade_result::not_found: return "not_found";
    case upgrade_result::unauthorized: return "unauthorized";
    case upgrade_result::forbidden_origin: return "forbidden_origin";
    case upgrade_result::rate_limited: return "rate_limited";
    case upgrade_result::over_capacity: return "over_capacity";
    case upgrade_result::handshake_timeout: return "handshake_timeout";
    case upgrade_result::internal_error: return "internal_error";
    case upgrade_result::shutting_down: return "shutting_down";
    case upgrade_result::address_limit: return "address_limit";
    }
    return "internal_error";
}

/// HTTP status answered for an upgrade result (0: none, the socket was
/// dropped before an answer).
constexpr int upgrade_result_status(upgrade_result r) noexcept {
    switch (r) {
    case upgrade_result::accepted: return 101;
    case upgrade_result::bad_request: return 400;
    case upgrade_result::not_found: return 404;
    case upgrade_result::unauthorized: return 401;
    case upgrade_result::forbidden_origin: return 403;
    case upgrade_result::rate_limited: return 429;
    case upgrade_result::over_capacity: return 503;
    case upgrade_result::handshake_timeout: return 0;
    case upgrade_result::internal_error: return 500;
    case upgrade_result::shutting_down: return 503;
    case upgrade_result::address_limit: return 429;
    }
    return 500;
}

/// A value the gateway keeps itself (gateway_stats: sessions, the
/// reconnection queue, server-to-client requests), handed to the sink when
/// the exposition is rendered rather than reported event by event.
struct scrape_value {
    std::string_view name;  ///< without the sink's prefix, e.g. "parked_sessions"
    std::string_view type;  ///< "gauge" or "counter"
    std::string_view help;
    std::uint64_t value = 0;
};

class metrics_sink {
public:
    virtual ~metrics_sink() = default;

    virtual void on_upgrade(upgrade_result) noexcept {}
    /// A WebSocket connection was opened (after the 101).
    virtual void on_connection_open() noexcept {}
    /// An open connection closed; `close_code` is the code sent or received
    /// (1006 when the TCP connection dropped without a close frame).
    virtual void on_connection_close(std::uint16_t /*close_code*/) noexcept {}
    /// One complete WebSocket message received / sent, `bytes` long.
    virtual void on_message_in(std::size_t /*bytes*/) noexcept {}
    virtual void on_message_out(std::size_t /*bytes*/) noexcept {}
    /// A response frame with this code was sent to a client.
    virtual void on_response(protocol::response_code) noexcept {}
    /// A handler or router answered (or timed out) this long after dispatch.
    virtual void on_handler_latency(std::chrono::nanoseconds) noexcept {}

    /// GET /metrics (gateway_options::metrics_path): appends a Prometheus
    /// text exposition (format 0.0.4) of what the sink counted, followed by
    /// `extra`, and returns true; false (the default) when this sink has no
    /// exposition, which the gateway answers with 404. Called on an I/O
    /// thread, once per scrape (not on the message path): it may allocate.
    virtual bool render_exposition(std::string& /*out*/, const scrape_value* /*extra*/,
                                   std::size_t /*extra_count*/) const {
        return false;
    }
};

/// Counts everything in relaxed atomics, sharded per thread so that I/O
/// threads do not contend on one cache line, and renders the Prometheus text
/// format on demand. Rendering reads the shards without stopping writers, so
/// a scrape is a consistent-enough snapshot, as Prometheus expects.
class prometheus_metrics final : public metrics_sink {
public:
    /// Upper bounds of the handler latency histogram, in seconds.
    static constexpr std::array<double, 16> latency_buckets = {
        0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
        0.025,   0.05,   0.1,     0.25,   0.5,   1.0,    2.5,   10.0};

    /// Close codes counted by value; every other code counts as "other".
    static constexpr std::array<std::uint16_t, 11> known_close_codes = {1000, 1001, 1005, 1006, 1008, 1009,
                                                                         1011, 4001, 4002, 4005, 4008};

    /// `prefix` starts every metric name. Throws std::invalid_argument when it
    /// is not a valid Prometheus metric name prefix ([a-zA-Z_:][a-zA-Z0-9_:]*).
    explicit prometheus_metrics(std::string prefix = "gatehouse_") : prefix_(std::move(prefix)) {
        if (!valid_prefix(prefix_))
            throw std::invalid_argument("prometheus_metrics: invalid metric name prefix '" + prefix_ + "'");
    }

    void on_upgrade(upgrade_result r) noexcept override { add(shard().upgrades[static_cast<std::size_t>(r)]); }
    void on_connection_open() noexcept override {
        auto& s = shard();
        add(s.connections_opened);
    }
    void on_connection_close(std::uint16_t code) noexcept override {
        auto& s = shard();
        add(s.connections_closed);
        add(s.closes[close_slot(code)]);
    }
    void on_message_in(std::size_t bytes) noexcept override {
        auto& s = shard();
        add(s.messages_in);
        add(s.bytes_in, bytes);
    }
    void on_message_out(std::size_t bytes) noexcept override {
        auto& s = shard();
        add(s.messages_out);
        add(s.bytes_out, bytes);
    }
    void on_response(protocol::response_code code) noexcept override {
        add(shard().responses[protocol::to_byte(code)]);
    }
    void on_handler_latency(std::chrono::nanoseconds d) noexcept override {
        auto& s = shard();
        const auto ns = d.count() < 0 ? std::uint64_t{0} : static_cast<std::uint64_t>(d.count());
        const double seconds = static_cast<double>(ns) / 1e9;
        std::size_t bucket = 0;
        while (bucket < latency_buckets.size() && seconds > latency_buckets[bucket]) ++bucket;
        add(s.latency[bucket]);  // the slot after the last bound is +Inf
        add(s.latency_sum_ns, ns);
    }

    /// Connections open now (opened minus closed).
    std::int64_t open_connections() const noexcept {
        return static_cast<std::int64_t>(sum(&shard_data::connections_opened)) -
               static_cast<std::int64_t>(sum(&shard_data::connections_closed));
    }
    std::uint64_t upgrades(upgrade_result r) const noexcept {
        std::uint64_t total = 0;
        for (const auto& s : shards_) total += s.upgrades[static_cast<std::size_t>(r)].load(std::memory_order_relaxed);
        return total;
    }
    std::uint64_t responses(protocol::response_code code) const noexcept {
        std::uint64_t total = 0;
        for (const auto& s : shards_) total += s.responses[protocol::to_byte(code)].load(std::memory_order_relaxed);
        return total;
    }
    std::uint64_t messages_in() const noexcept { return sum(&shard_data::messages_in); }
    std::uint64_t messages_out() const noexcept { return sum(&shard_data::messages_out); }

    /// Appends the text exposition to `out`.
    void render(std::string& out) const {
        const auto family = [&](std::string_view name, std::string_view type, std::string_view help) {
            out.append("# HELP ").append(prefix_).append(name).append(" ").append(help).append("\n");
            out.append("# TYPE ").append(prefix_).append(name).append(" ").append(type).append("\n");
        };
        const auto sample = [&](std::string_view name, std::string_view labels, auto value) {
            out.append(prefix_).append(name);
            if (!labels.empty()) out.append("{").append(labels).append("}");
            out.append(" ").append(std::to_string(value)).append("\n");
        };

        family("connections", "gauge", "WebSocket connections open now.");
        sample("connections", "", open_connections());
        family("connections_opened_total", "counter", "WebSocket connections opened.");
        sample("connections_opened_total", "", sum(&shard_data::connections_opened));

        family("upgrades_total", "counter", "Upgrade requests by result.");
        for (std::size_t i = 0; i < upgrade_result_count; ++i) {
            const auto r = static_cast<upgrade_result>(i);
            const int status = upgrade_result_status(r);
            sample("upgrades_total",
                   label("result", upgrade_result_name(r)) + "," +
                       label("status", status == 0 ? std::string("none") : std::to_string(status)),
                   upgrades(r));
        }

        family("messages_received_total", "counter", "WebSocket messages received.");
        sample("messages_received_total", "", sum(&shard_data::messages_in));
        family("received_bytes_total", "counter", "Bytes of WebSocket messages received.");
        sample("received_bytes_total", "", sum(&shard_data::bytes_in));
        family("messages_sent_total", "counter", "WebSocket messages sent.");
        sample("messages_sent_total", "", sum(&shard_data::messages_out));
        family("sent_bytes_total", "counter", "Bytes of WebSocket messages sent.");
        sample("sent_bytes_total", "", sum(&shard_data::bytes_out));

        family("responses_total", "counter", "Response frames sent, by response code.");
        for (int code = 0; code < 256; ++code) {
            const auto c = static_cast<protocol::response_code>(code);
            const auto n = responses(c);
            if (n == 0 && !protocol::is_known_response_code(static_cast<std::uint8_t>(code))) continue;
            const auto name = protocol::response_code_name(c);
            sample("responses_total",
                   label("code", std::to_string(code)) + "," + label("name", name.empty() ? "unknown" : name), n);
        }

        family("disconnects_total", "counter", "Closed connections by WebSocket close code.");
        for (std::size_t i = 0; i <= known_close_codes.size(); ++i) {
            const std::uint64_t n = sum_closes(i);
            sample("disconnects_total",
                   label("code", i < known_close_codes.size() ? std::to_string(known_close_codes[i]) : "other"), n);
        }

        family("handler_latency_seconds", "histogram", "Time from dispatch to a handler's answer.");
        std::uint64_t cumulative = 0;
        for (std::size_t i = 0; i <= latency_buckets.size(); ++i) {
            for (const auto& s : shards_) cumulative += s.latency[i].load(std::memory_order_relaxed);
            const std::string le = i < latency_buckets.size() ? format_double(latency_buckets[i]) : "+Inf";
            sample("handler_latency_seconds_bucket", label("le", le), cumulative);
        }
        out.append(prefix_).append("handler_latency_seconds_sum ")
            .append(format_double(static_cast<double>(sum(&shard_data::latency_sum_ns)) / 1e9))
            .append("\n");
        sample("handler_latency_seconds_count", "", cumulative);
    }

    std::string render() const {
        std::string out;
        render(out);
        return out;
    }

    /// render(out), then one family per `extra` value, named with this
    /// sink's prefix.
    bool render_exposition(std::string& out, const scrape_value* extra, std::size_t extra_count) const override {
        render(out);
        for (std::size_t i = 0; i < extra_count; ++i) {
            const auto& v = extra[i];
            out.append("# HELP ").append(prefix_).append(v.name).append(" ").append(v.help).append("\n");
            out.append("# TYPE ").append(prefix_).append(v.name).append(" ").append(v.type).append("\n");
            out.append(prefix_).append(v.name).append(" ").append(std::to_string(v.value)).append("\n");
        }
        return true;
    }

    /// The Content-Type of the exposition.
    static constexpr std::string_view content_type = "text/plain; version=0.0.4; charset=utf-8";

private:
    using counter = std::atomic<std::uint64_t>;
    static constexpr std::size_t shard_count = 8;

    struct alignas(64) shard_data {
        counter connections_opened{0}, connections_closed{0};
        counter messages_in{0}, messages_out{0}, bytes_in{0}, bytes_out{0};
        counter latency_sum_ns{0};
        std::array<counter, upgrade_result_count> upgrades{};
        std::array<counter, 256> responses{};
        std::array<counter, known_close_codes.size() + 1> closes{};
        std::array<counter, latency_buckets.size() + 1> latency{};
    };

    static void add(counter& c, std::uint64_t n = 1) noexcept { c.fetch_add(n, std::memory_order_relaxed); }

    /// Each thread keeps to one shard, assigned round-robin on first use.
    shard_data& shard() noexcept {
        static std::atomic<std::size_t> next{0};
        thread_local const std::size_t index = next.fetch_add(1, std::memory_order_relaxed) % shard_count;
        return shards_[index];
    }

    std::uint64_t sum(counter shard_data::*member) const noexcept {
        std::uint64_t total = 0;
        for (const auto& s : shards_) total += (s.*member).load(std::memory_order_relaxed);
        return total;
    }
    std::uint64_t sum_closes(std::size_t slot) const noexcept {
        std::uint64_t total = 0;
        for (const auto& s : shards_) total += s.closes[slot].load(std::memory_order_relaxed);
        return total;
    }

    static std::size_t close_slot(std::uint16_t code) noexcept {
        for (std::size_t i = 0; i < known_close_codes.size(); ++i)
            if (known_close_codes[i] == code) return i;
        return known_close_codes.size();
    }

    static std::string label(std::string_view name, std::string_view value) {
        // Label values here are ours (enumerator names, numbers): no escaping needed.
        std::string s(name);
        s.append("=\"").append(value).append("\"");
        return s;
    }

    static std::string format_double(double v) {
        char buf[32];
        const int n = std::snprintf(buf, sizeof buf, "%.9g", v);
        return std::string(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
    }

    static bool valid_prefix(std::string_view p) noexcept {
        if (p.empty()) return false;
        for (std::size_t i = 0; i < p.size(); ++i) {
            const char c = p[i];
            const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
            const bool digit = c >= '0' && c <= '9';
            if (!(alpha || (i > 0 && digit))) return false;
        }
        return true;
    }

    std::string prefix_;
    std::array<shard_data, shard_count> shards_{};
};

}  // namespace gatehouse::server
