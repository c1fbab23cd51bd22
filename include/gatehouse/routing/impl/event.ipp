// Implementation of gatehouse/routing/event.hpp.
#pragma once

#include <gatehouse/protocol/header.hpp>
#include <gatehouse/protocol/limits.hpp>
#include <gatehouse/protocol/message_id.hpp>
#include <gatehouse/routing/event.hpp>

#include <gatehouse/detail/random.hpp>

#include <cstdio>
#include <ctime>

namespace gatehouse::routing {

GATEHOUSE_DECL std::string iso8601_utc(std::chrono::system_clock::time_point t) {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
    std::time_t seconds = static_cast<std::time_t>(ms / 1000);
    long millis = static_cast<long>(ms % 1000);
    if (millis < 0) {
        millis += 1000;
        --seconds;
    }
    std::tm utc{};
    gmtime_r(&seconds, &utc);
    char text[96];
    std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", utc.tm_year + 1900, utc.tm_mon + 1,
                  utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, millis);
    return text;
}

// Event ids and the low bits of server message ids come from the library's
// random source, from its per-thread block (cheap, lock-free).
GATEHOUSE_DECL protocol::guid random_guid() {
    protocol::guid g;
    gatehouse::detail::random_bytes_fast(g.bytes.data(), g.bytes.size());
    g.bytes[6] = static_cast<std::uint8_t>((g.bytes[6] & 0x0f) | 0x40);
    g.bytes[8] = static_cast<std::uint8_t>((g.bytes[8] & 0x3f) | 0x80);
    return g;
}

GATEHOUSE_DECL std::uint64_t new_server_message_id() {
    const auto now = std::chrono::system_clock::now().time_since_epoch();
    const auto unix_ms = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(now).count());
    return protocol::make_message_id(unix_ms, gatehouse::detail::random_value_fast<std::uint16_t>());
}

GATEHOUSE_DECL std::string event_frame(std::string_view json) {
    protocol::request_header header;
    header.flags = protocol::message_flags::event;
    header.message_id = new_server_message_id();
    std::string frame;
    frame.reserve(protocol::request_header_size + json.size());
    protocol::append_frame(frame, header, protocol::bytes_view(json));
    return frame;
}

GATEHOUSE_DECL std::string event_json(std::string_view event_name, const nlohmann::json& body) {
    if (!body.is_null() && !body.is_object()) return {};
    nlohmann::json event = body.is_null() ? nlohmann::json::object() : body;
    event["eventName"] = event_name;
    event["eventId"] = random_guid().to_string();
    event["timestamp"] = iso8601_utc(std::chrono::system_clock::now());
    // Invalid UTF-8 in a host's strings must not throw on the push path.
    return event.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

GATEHOUSE_DECL std::string manifest_json(std::string_view session_id, const session_routes& routes,
                                         std::string_view reason, int version) {
    nlohmann::json apis = nlohmann::json::array();
    for (const auto& entry : routes.entries()) {
        nlohmann::json api = {{"serviceId", entry.id.to_string()},
                              {"endpoint", entry.target->options.path},
                              {"service", entry.target->options.service}};
        if (!entry.target->options.description.empty()) api["description"] = entry.target->options.description;
        apis.push_back(std::move(api));
    }
    nlohmann::json manifest = {{"eventName", protocol::event_names::capability_manifest},
                               {"eventId", random_guid().to_string()},
                               {"timestamp", iso8601_utc(std::chrono::system_clock::now())},
                               {"sessionId", session_id},
                               {"availableApis", std::move(apis)},
                               {"version", version},
                               {"reason", reason}};
    return manifest.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace gatehouse::routing
