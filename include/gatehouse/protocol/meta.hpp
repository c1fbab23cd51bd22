// Meta requests (PROTOCOL.md §10): flag 0x80, the channel carries the meta type.
#pragma once

#include <cstdint>
#include <string_view>

namespace gatehouse::protocol {

enum class meta_type : std::uint8_t {
    endpoint_info = 0,
    request_schema = 1,
    response_schema = 2,
    full_schema = 3,
};

/// The meta type a request's channel asks for; unknown values mean endpoint info,
/// as the reference server treats them.
constexpr meta_type meta_type_from_channel(std::uint16_t channel) noexcept {
    return channel <= 3 ? static_cast<meta_type>(channel) : meta_type::endpoint_info;
}

/// The `metaType` string of a meta response body.
constexpr std::string_view meta_type_name(meta_type t) noexcept {
    switch (t) {
    case meta_type::endpoint_info: return "endpoint-info";
    case meta_type::request_schema: return "request-schema";
    case meta_type::response_schema: return "response-schema";
    case meta_type::full_schema: return "full-schema";
    }
    return "endpoint-info";
}

/// The path suffix the reference server routes a meta request to.
constexpr std::string_view meta_path_suffix(meta_type t) noexcept {
    switch (t) {
    case meta_type::endpoint_info: return "/meta/info";
    case meta_type::request_schema: return "/meta/request-schema";
    case meta_type::response_schema: return "/meta/response-schema";
    case meta_type::full_schema: return "/meta/schema";
    }
    return "/meta/info";
}

}  // namespace gatehouse::protocol
