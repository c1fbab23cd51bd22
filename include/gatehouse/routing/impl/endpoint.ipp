// Implementation of gatehouse/routing/endpoint.hpp.
#pragma once

#include <gatehouse/routing/endpoint.hpp>

#include <algorithm>
#include <stdexcept>

namespace gatehouse::routing {

GATEHOUSE_DECL bool endpoint::allowed(const std::vector<std::string>& roles,
                                      const std::vector<std::string>& permissions) const noexcept {
    const auto holds = [](const std::vector<std::string>& set, const std::string& wanted) {
        return wanted.empty() || std::find(set.begin(), set.end(), wanted) != set.end();
    };
    return holds(permissions, options.required_permission) && holds(roles, options.required_role);
}

GATEHOUSE_DECL endpoint& endpoint_registry::insert(endpoint_options options) {
    const auto fail = [&](const std::string& why) {
        throw std::invalid_argument("gatehouse: endpoint '" + options.service + ":" + options.path + "': " + why);
    };
    if (options.service.empty()) fail("service name is empty");
    if (options.service.size() > 128) fail("service name is longer than 128 bytes");
    if (options.service.find(':') != std::string::npos) fail("service name contains ':'");
    if (options.path.empty() || options.path.front() != '/') fail("path must start with '/'");
    if (options.path.size() > 512) fail("path is longer than 512 bytes");
    if (options.path.find('{') != std::string::npos)
        fail("templated paths cannot be called over the WebSocket (they carry no path parameters)");
    for (const char c : options.service + options.path)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) fail("control character in service or path");
    if (by_path_.count(options.path) != 0) fail("path already registered (clients key endpoints by path)");

    endpoint e;
    e.key = options.service + ":" + options.path;
    e.index = endpoints_.size();
    e.options = std::move(options);
    by_path_.emplace(e.options.path, e.index);
    endpoints_.push_back(std::move(e));
    return endpoints_.back();
}

GATEHOUSE_DECL const endpoint& endpoint_registry::add(endpoint_options options, handler fn) {
    if (!fn) throw std::invalid_argument("gatehouse: endpoint '" + options.service + ":" + options.path + "': empty handler");
    auto& e = insert(std::move(options));
    e.fn = std::move(fn);
    return e;
}

GATEHOUSE_DECL void endpoint_registry::add_routed(std::vector<endpoint_options> endpoints, std::shared_ptr<router> target) {
    if (!target) throw std::invalid_argument("gatehouse: add_routed needs a router");
    for (auto& options : endpoints) insert(std::move(options)).forward = target;
}

GATEHOUSE_DECL const endpoint* endpoint_registry::find(std::string_view path) const noexcept {
    const auto it = by_path_.find(std::string(path));
    return it == by_path_.end() ? nullptr : &endpoints_[it->second];
}

GATEHOUSE_DECL void session_routes::rebuild(const endpoint_registry& registry, std::string_view session_id,
                                            std::string_view salt, guid_input_order order,
                                            const std::vector<std::string>& roles,
                                            const std::vector<std::string>& permissions) {
    std::vector<entry> entries;
    std::unordered_map<protocol::guid, const endpoint*> by_guid;
    entries.reserve(registry.size());
    by_guid.reserve(registry.size());
    for (const auto& e : registry.all()) {
        if (!e.allowed(roles, permissions)) continue;
        const auto id = service_guid(session_id, e.key, salt, order);
        entries.push_back({id, &e});
        by_guid.emplace(id, &e);
    }
    entries_ = std::move(entries);
    by_guid_ = std::move(by_guid);
}

}  // namespace gatehouse::routing
