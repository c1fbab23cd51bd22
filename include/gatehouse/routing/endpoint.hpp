// The endpoints a host offers (PROTOCOL.md §7, §10): what each is called,
// who may call it, how it describes itself, and the code that answers it.
#pragma once

#include <gatehouse/detail/config.hpp>
#include <gatehouse/routing/handler.hpp>
#include <gatehouse/routing/salted_guid.hpp>

#include <nlohmann/json.hpp>

#include <cstddef>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace gatehouse::routing {

/// How a host declares one endpoint. Validated by `endpoint_registry::add`.
struct endpoint_options {
    /// Internal service name (`account`): non-empty, no ':' , at most 128 bytes.
    std::string service;
    /// Endpoint path (`/account/get`): starts with '/', no '{' (templated paths
    /// cannot be called over the WebSocket), at most 512 bytes. Unique: clients
    /// key endpoints by path.
    std::string path;
    /// Informational (meta responses); WebSocket calls carry a JSON body.
    std::string method = "POST";
    /// Sent in the manifest (omitted when empty) and in meta responses.
    std::string description;
    /// Only sessions holding this permission see (and can call) the endpoint.
    /// Empty: no permission needed.
    std::string required_permission;
    /// Only sessions holding this role see the endpoint. Empty: any role.
    std::string required_role;
    /// JSON schemas for meta requests (§10); null when not described.
    nlohmann::json request_schema;
    nlohmann::json response_schema;
    std::string schema_version = "1.0.0";
};

/// A registered endpoint. Addresses are stable for the registry's lifetime.
struct endpoint {
    endpoint_options options;
    /// `service:path`, the salted-GUID key (§6.2).
    std::string key;
    /// Registration order, 0-based.
    std::size_t index = 0;
    /// Exactly one of `fn` and `forward` is set.
    handler fn;
    std::shared_ptr<router> forward;

    /// Whether a session with these roles and permissions may use it.
    GATEHOUSE_DECL bool allowed(const std::vector<std::string>& roles,
                                const std::vector<std::string>& permissions) const noexcept;
};

/// Every endpoint of a gateway. Filled at start-up, before the gateway
/// accepts connections; read-only (and therefore thread-safe) afterwards.
class endpoint_registry {
public:
    /// Registers an endpoint answered by `fn`. Throws std::invalid_argument
    /// with a clear message on invalid options, a duplicate path or an empty
    /// handler (start-up configuration errors).
    GATEHOUSE_DECL const endpoint& add(endpoint_options options, handler fn);
    /// Registers endpoints whose calls all go to `target`.
    GATEHOUSE_DECL void add_routed(std::vector<endpoint_options> endpoints, std::shared_ptr<router> target);

    /// The endpoint with this path, or nullptr.
    GATEHOUSE_DECL const endpoint* find(std::string_view path) const noexcept;
    const std::deque<endpoint>& all() const noexcept { return endpoints_; }
    std::size_t size() const noexcept { return endpoints_.size(); }

private:
    GATEHOUSE_DECL endpoint& insert(endpoint_options options);

    std::deque<endpoint> endpoints_;
    std::unordered_map<std::string, std::size_t> by_path_;
};

/// One session's view of the registry: the salted GUID of every endpoint it
/// may use (§6, §7.5). Rebuilt as a whole whenever permissions change;
/// GUIDs of unchanged endpoints stay the same (they depend only on session,
/// key and salt).
class session_routes {
public:
    struct entry {
        protocol::guid id;
        const endpoint* target = nullptr;
    };

    GATEHOUSE_DECL void rebuild(const endpoint_registry& registry, std::string_view session_id, std::string_view salt,
                                guid_input_order order, const std::vector<std::string>& roles,
                                const std::vector<std::string>& permissions);

    /// The endpoint `id` routes to for this session, or nullptr (→ 30).
    const endpoint* find(const protocol::guid& id) const noexcept {
        const auto it = by_guid_.find(id);
        return it == by_guid_.end() ? nullptr : it->second;
    }
    /// In registration order.
    const std::vector<entry>& entries() const noexcept { return entries_; }
    void clear() noexcept {
        entries_.clear();
        by_guid_.clear();
    }

private:
    std::vector<entry> entries_;
    std::unordered_map<protocol::guid, const endpoint*> by_guid_;
};

}  // namespace gatehouse::routing

#if defined(GATEHOUSE_HEADER_ONLY)
#include <gatehouse/routing/impl/endpoint.ipp>
#endif
