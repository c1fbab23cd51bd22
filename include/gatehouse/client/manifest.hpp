// The client's view of capability manifests (PROTOCOL.md §7.4): each manifest
// is a full snapshot; endpoints are keyed by their path; entries without an
// endpoint, service or a valid GUID are skipped, as the TypeScript client does.
#pragma once

#include <gatehouse/client/error.hpp>
#include <gatehouse/protocol/guid.hpp>
#include <gatehouse/protocol/limits.hpp>

#include <nlohmann/json.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace gatehouse::client {

struct manifest_entry {
    std::string endpoint;  ///< the path, e.g. "/account/get": the key a caller uses
    std::string service;
    protocol::guid service_id{};
    std::string description;
};

struct manifest {
    protocol::guid session_id{};
    std::vector<manifest_entry> apis;
    std::string reason;
    std::optional<protocol::guid> peer_guid;
    /// Entries ignored because a field was empty or the GUID was malformed.
    std::size_t skipped_entries = 0;
};

/// Reads a manifest event from its parsed JSON payload. Never throws.
inline std::error_code read_manifest(const nlohmann::json& doc, manifest& out) {
    if (!doc.is_object()) return client_errc::manifest_not_json;
    const auto name = doc.find("eventName");
    if (name == doc.end() || !name->is_string() ||
        name->get_ref<const std::string&>() != protocol::event_names::capability_manifest)
        return client_errc::manifest_wrong_event;
    const auto apis = doc.find("availableApis");
    if (apis == doc.end() || !apis->is_array()) return client_errc::manifest_missing_apis;

    manifest m;
    const auto sid = doc.find("sessionId");
    if (sid == doc.end() || !sid->is_string() || protocol::parse_guid(sid->get_ref<const std::string&>(), m.session_id))
        return client_errc::manifest_bad_session_id;

    const auto text = [](const nlohmann::json& obj, const char* key) -> std::string {
        const auto it = obj.find(key);
        return it != obj.end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    for (const auto& entry : *apis) {
        if (!entry.is_object()) {
            ++m.skipped_entries;
            continue;
        }
        manifest_entry e;
        e.endpoint = text(entry, "endpoint");
        e.service = text(entry, "service");
        e.description = text(entry, "description");
        const auto id = text(entry, "serviceId");
        if (e.endpoint.empty() || e.service.empty() || id.empty() || protocol::parse_guid(id, e.service_id)) {
            ++m.skipped_entries;
            continue;
        }
        m.apis.push_back(std::move(e));
    }
    m.reason = text(doc, "reason");
    const auto peer = text(doc, "peerGuid");
    protocol::guid peer_guid;
    if (!peer.empty() && !protocol::parse_guid(peer, peer_guid)) m.peer_guid = peer_guid;
    out = std::move(m);
    return {};
}

/// Parses a manifest event's JSON payload. Never throws.
inline std::error_code parse_manifest(std::string_view json, manifest& out) {
    return read_manifest(nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false), out);
}

/// What a new manifest changed.
struct capability_diff {
    std::vector<manifest_entry> added;    ///< endpoints that were not there before
    std::vector<manifest_entry> removed;  ///< endpoints that are gone
};

/// Endpoint path -> GUID of the current manifest.
class capability_table {
public:
    /// Replaces the table with `m` (a full snapshot) and reports the change.
    /// A path listed twice keeps its last entry, as the TypeScript client does.
    capability_diff apply(const manifest& m) {
        std::unordered_map<std::string, manifest_entry> next;
        for (const auto& e : m.apis) next[e.endpoint] = e;
        capability_diff diff;
        for (const auto& [path, e] : next)
            if (entries_.find(path) == entries_.end()) diff.added.push_back(e);
        for (const auto& [path, e] : entries_)
            if (next.find(path) == next.end()) diff.removed.push_back(e);
        entries_ = std::move(next);
        return diff;
    }

    std::optional<protocol::guid> find(std::string_view endpoint) const {
        const auto it = entries_.find(std::string(endpoint));
        if (it == entries_.end()) return std::nullopt;
        return it->second.service_id;
    }

    const manifest_entry* entry(std::string_view endpoint) const {
        const auto it = entries_.find(std::string(endpoint));
        return it == entries_.end() ? nullptr : &it->second;
    }

    std::size_t size() const noexcept { return entries_.size(); }
    void clear() noexcept { entries_.clear(); }

private:
    std::unordered_map<std::string, manifest_entry> entries_;
};

}  // namespace gatehouse::client
