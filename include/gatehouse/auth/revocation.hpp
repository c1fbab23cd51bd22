// Revocation of single tokens ("jti"), sessions and whole accounts, with an
// in-memory implementation. Revoking is observable, so the gateway can close
// the connections it affects.
#pragma once

#include <gatehouse/auth/clock.hpp>
#include <gatehouse/auth/error.hpp>
#include <gatehouse/auth/identity.hpp>
#include <gatehouse/detail/config.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <vector>

namespace gatehouse::auth {

/// What a revocation applies to.
enum class revocation_scope {
    token,    ///< one token, by its id (identity::token_id, the JWT "jti")
    session,  ///< every credential bound to a session key (identity::session_key)
    account,  ///< every credential of an account (identity::subject)
};

/// One revocation. `until` is how long it is remembered: set it to the
/// latest expiry of the credentials it must block (time_point::max() for
/// ever). Entries past `until` are forgotten.
struct revocation {
    revocation_scope scope = revocation_scope::token;
    std::string value;
    std::chrono::system_clock::time_point until = std::chrono::system_clock::time_point::max();
};

/// Ends a subscription when destroyed (or on reset()). Movable, not copyable.
class revocation_subscription {
public:
    revocation_subscription() = default;
    explicit revocation_subscription(std::function<void()> cancel) : cancel_(std::move(cancel)) {}
    revocation_subscription(revocation_subscription&& other) noexcept : cancel_(std::move(other.cancel_)) {
        other.cancel_ = nullptr;
    }
    revocation_subscription& operator=(revocation_subscription&& other) noexcept {
        if (this != &other) {
            reset();
            cancel_ = std::move(other.cancel_);
            other.cancel_ = nullptr;
        }
        return *this;
    }
    revocation_subscription(const revocation_subscription&) = delete;
    revocation_subscription& operator=(const revocation_subscription&) = delete;
    ~revocation_subscription() { reset(); }

    /// Unsubscribes now. Afterwards the listener is not running (unless
    /// reset() is called from inside it) and is never called again.
    void reset() noexcept {
        if (cancel_) {
            auto cancel = std::move(cancel_);
            cancel_ = nullptr;
            cancel();
        }
    }
    explicit operator bool() const noexcept { return static_cast<bool>(cancel_); }

private:
    std::function<void()> cancel_;
};

/// Where revocations are kept. Implementations may need I/O (a shared store
/// for a cluster), so both operations complete through a callback.
///
/// Threading: every member may be called concurrently. Completions may run
/// inline or on any thread. Listeners run on whatever thread learned of the
/// revocation (the revoking thread for the in-memory list, an I/O thread for
/// a networked one); they must be quick and must not throw. A listener must
/// not call subscribe() or async_revoke() on the same list from inside the
/// callback.
///
/// Lifetime: the list must outlive pending operations; a subscription may
/// outlive the list (it then does nothing).
class revocation_list {
public:
    using completion = std::function<void(std::error_code)>;
    using listener = std::function<void(const revocation&)>;

    virtual ~revocation_list() = default;

    /// Completes with token_revoked, session_revoked or account_revoked if
    /// any field of `id` is revoked (token id first, then session, then
    /// account), with success otherwise. Empty fields are never revoked.
    virtual void async_check(const identity& id, completion done) = 0;

    /// Records `entry`, then notifies every listener; completes with
    /// success, revocation_list_full, or the store's own error.
    virtual void async_revoke(revocation entry, completion done) = 0;

    /// Calls `on_revoked` for every later revocation, until the returned
    /// subscription is destroyed.
    virtual revocation_subscription subscribe(listener on_revoked) = 0;
};

struct memory_revocation_options {
    /// Most unexpired entries kept (all scopes together) (1,000,000).
    std::size_t max_entries = 1000000;
    /// Where "now" comes from (the system clock).
    time_source clock = system_time();
};

/// An in-process revocation_list for one node. Checks take a shared lock;
/// revocations an exclusive one. Everything completes inline.
class memory_revocation_list final : public revocation_list {
public:
    GATEHOUSE_DECL explicit memory_revocation_list(memory_revocation_options options = {});
    GATEHOUSE_DECL ~memory_revocation_list() override;

    /// Synchronous forms of the interface.
    GATEHOUSE_DECL std::error_code check(const identity& id) const;
    GATEHOUSE_DECL std::error_code revoke(revocation entry);
    GATEHOUSE_DECL bool is_revoked(revocation_scope scope, std::string_view value) const;

    /// Forgets entries past their `until`; returns how many.
    GATEHOUSE_DECL std::size_t purge_expired();
    /// Entries currently held (expired ones included until purged).
    GATEHOUSE_DECL std::size_t size() const;

    GATEHOUSE_DECL void async_check(const identity& id, completion done) override;
    GATEHOUSE_DECL void async_revoke(revocation entry, completion done) override;
    GATEHOUSE_DECL revocation_subscription subscribe(listener on_revoked) override;

private:
    struct listener_entry {
        std::recursive_mutex running;  // held while the listener runs; cancel waits for it
        bool active = true;
        listener fn;
    };
    struct listeners {
        std::mutex mutex;
        std::vector<std::shared_ptr<listener_entry>> entries;
    };
    using table = std::unordered_map<std::string, std::chrono::system_clock::time_point>;

    table& table_for(revocation_scope scope) noexcept;
    const table& table_for(revocation_scope scope) const noexcept;
    bool revoked_in(const table& t, const std::string& value, std::chrono::system_clock::time_point now) const;
    std::size_t purge_locked(std::chrono::system_clock::time_point now);

    memory_revocation_options options_;
    mutable std::shared_mutex mutex_;
    table tokens_;
    table sessions_;
    table accounts_;
    std::shared_ptr<listeners> listeners_;
};

}  // namespace gatehouse::auth

#if defined(GATEHOUSE_HEADER_ONLY)
#include <gatehouse/auth/impl/revocation.ipp>
#endif
