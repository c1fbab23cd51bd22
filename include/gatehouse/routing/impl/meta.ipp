// Implementation of gatehouse/routing/meta.hpp.
#pragma once

#include <gatehouse/routing/event.hpp>
#include <gatehouse/routing/meta.hpp>

namespace gatehouse::routing {

GATEHOUSE_DECL std::string meta_json(const endpoint& target, protocol::meta_type type) {
    const auto& o = target.options;
    nlohmann::json info = {{"service", o.service}, {"path", o.path}, {"method", o.method}};
    if (!o.description.empty()) info["description"] = o.description;
    nlohmann::json data;
    switch (type) {
    case protocol::meta_type::endpoint_info: data = std::move(info); break;
    case protocol::meta_type::request_schema: data = o.request_schema; break;
    case protocol::meta_type::response_schema: data = o.response_schema; break;
    case protocol::meta_type::full_schema:
        data = {{"info", std::move(info)}, {"request", o.request_schema}, {"response", o.response_schema}};
        break;
    }
    nlohmann::json body = {{"metaType", protocol::meta_type_name(type)},
                           {"serviceName", o.service},
                           {"method", o.method},
                           {"path", o.path},
                           {"data", std::move(data)},
                           {"generatedAt", iso8601_utc(std::chrono::system_clock::now())},
                           {"schemaVersion", o.schema_version}};
    return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace gatehouse::routing
