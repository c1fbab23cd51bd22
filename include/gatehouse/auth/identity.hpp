// Who a connection is, as established by a token_validator.
#pragma once

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gatehouse::auth {

/// Every claim of a credential, kept as the JSON text it arrived in and
/// parsed into a DOM only when someone asks: validation itself never needs
/// the DOM. Immutable and thread-safe; shared between identity copies.
class claim_set {
public:
    /// From JSON text (for a validated token: its payload).
    explicit claim_set(std::string json_text) : text_(std::move(json_text)) {}
    /// From a JSON value, for hosts whose own validators have one already.
    /// Throws nlohmann::json::type_error if a string in it is not UTF-8.
    static std::shared_ptr<const claim_set> from_json(nlohmann::json value) {
        auto set = std::make_shared<claim_set>(value.dump());
        std::call_once(set->once_, [&] { set->parsed_ = std::move(value); });
        return set;
    }
    claim_set(const claim_set&) = delete;
    claim_set& operator=(const claim_set&) = delete;

    /// The claims as JSON (an object for every validated token; null if the
    /// text does not parse). Parsed on first call, once, by whichever thread
    /// gets there first.
    const nlohmann::json& json() const {
        std::call_once(once_, [this] { parsed_ = nlohmann::json::parse(text_, nullptr, false); });
        return parsed_.is_discarded() ? null_value() : parsed_;
    }
    /// The claims exactly as received.
    const std::string& text() const noexcept { return text_; }

private:
    static const nlohmann::json& null_value() {
        static const nlohmann::json null;
        return null;
    }
    std::string text_;
    mutable std::once_flag once_;
    mutable nlohmann::json parsed_;
};

/// The result of a successful validation. A plain value: copy it, move it,
/// keep it for the life of the connection. The validators fill every field
/// they know; fields a credential does not carry stay empty.
struct identity {
    /// The account the credential belongs to (JWT: the subject claim).
    std::string subject;
    /// The opaque key of the session the credential is bound to (PROTOCOL.md
    /// §2.3): reconnecting with the same token yields the same session. Empty
    /// for credentials that carry none (e.g. API keys without one configured).
    std::string session_key;
    std::vector<std::string> roles;
    std::vector<std::string> permissions;
    /// When the credential stops being valid; empty when it never expires.
    std::optional<std::chrono::system_clock::time_point> expires_at;
    /// The clock skew tolerated past expires_at: the validator accepts this
    /// credential until expires_at + expiry_leeway; the gateway ends the
    /// session then. jwt_validator sets it to jwt_options::leeway; for other
    /// credentials (e.g. API keys) it is whatever the host registered (0).
    /// Meaningless without expires_at; a negative value counts as 0.
    std::chrono::seconds expiry_leeway{0};
    /// The token id ("jti"), used for revocation of a single token.
    std::string token_id;
    /// The issuer ("iss") when the credential has one.
    std::string issuer;
    /// Every claim of the token (JWT payload), or null for credentials that
    /// have no claims. Shared and immutable: copying an identity is cheap.
    std::shared_ptr<const claim_set> claims;

    bool has_role(std::string_view role) const noexcept {
        return std::find(roles.begin(), roles.end(), role) != roles.end();
    }
    bool has_permission(std::string_view permission) const noexcept {
        return std::find(permissions.begin(), permissions.end(), permission) != permissions.end();
    }
    /// The claim `name`, or nullptr when absent (or when there are no
    /// claims). The first call parses the claims (see claim_set).
    const nlohmann::json* claim(std::string_view name) const {
        if (!claims) return nullptr;
        const auto& all = claims->json();
        if (!all.is_object()) return nullptr;
        const auto it = all.find(name);
        return it == all.end() ? nullptr : &*it;
    }
    /// The end of validity: expires_at + expiry_leeway (saturating at
    /// time_point::max()), or empty when the credential never expires. The
    /// one deadline for accepting the credential and for ending its session.
    std::optional<std::chrono::system_clock::time_point> valid_until() const noexcept {
        using clock = std::chrono::system_clock;
        if (!expires_at) return std::nullopt;
        if (expiry_leeway <= std::chrono::seconds(0)) return expires_at;
        if (expiry_leeway >= std::chrono::duration_cast<std::chrono::seconds>(clock::duration::max()))
            return clock::time_point::max();
        const auto leeway = std::chrono::duration_cast<clock::duration>(expiry_leeway);
        if (*expires_at > clock::time_point::max() - leeway) return clock::time_point::max();
        return *expires_at + leeway;
    }
    /// True when the credential has expired at `now`: valid_until() is set
    /// and not after `now` (so expires_at + expiry_leeway <= now).
    bool expired(std::chrono::system_clock::time_point now) const noexcept {
        const auto until = valid_until();
        return until && *until <= now;
    }
};

}  // namespace gatehouse::auth
