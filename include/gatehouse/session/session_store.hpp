// session_store: where sessions live. A small asynchronous interface a host
// can implement over any backend; gatehouse ships memory_session_store (the
// default) and adapters::redis::redis_session_store. Run the conformance kit
// (gatehouse/testing/session_store_conformance.hpp) against your own store.
//
// Contract shared by every operation:
// - Each operation calls its completion exactly once: with a default
//   std::error_code and the result on success, or with a session_errc (or, for
//   backend errors, another specific code) and a default-constructed result.
// - Completions may run inline, before the call returns (memory store), or
//   later on another thread (the Redis store completes on the executor it was
//   given). Callers must not hold a lock a completion also takes, and must
//   not assume either order.
// - Operations never throw on the runtime path and never block on I/O.
// - Calls are thread-safe: any thread may call any operation at any time.
// - string_view arguments are copied before the call returns.
// - Lifetime: the store must outlive its calls' completions, except that a
//   store shut down with operations pending completes them with store_closed.
//
// Expiry: a session expires `idle_timeout` after its last activity (create,
// touch, consuming a reconnection token), or `max_lifetime` after creation,
// whichever is first; an outstanding reconnection token holds the session at
// least until the token expires. Expired and revoked sessions are reported as
// `expired` / `revoked` for `tombstone_retention`, then as `not_found`, and
// their memory is freed. Nothing needs a thread per session.
#pragma once

#include <gatehouse/session/error.hpp>
#include <gatehouse/session/session.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <string_view>
#include <system_error>
#include <vector>

namespace gatehouse::session {

/// The expiry rules a store applies (session_store_options), as the gateway
/// needs them: it touches each connected session well within idle_timeout
/// and ends it at max_lifetime. Zero: the store does not say.
struct session_timing {
    std::chrono::milliseconds idle_timeout{0};
    std::chrono::milliseconds max_lifetime{0};
};

class session_store {
public:
    template <class T>
    using completion = std::function<void(std::error_code, T)>;
    using done_completion = std::function<void(std::error_code)>;

    virtual ~session_store() = default;

    /// Stores a new session. The store sets created_at, last_activity and
    /// expires_at, assigns a random session_id when it is empty, clears
    /// reconnect_expires_at, and returns the stored record. Errors:
    /// invalid_session_id, invalid_account_id, record_too_large,
    /// too_many_attributes, attribute_too_large, already_exists.
    virtual void create(session_record record, completion<session_record> done) = 0;

    /// The record of a live session. Errors: invalid_session_id, not_found,
    /// expired, revoked.
    virtual void load(std::string_view session_id, completion<session_record> done) = 0;

    /// Records activity now: slides the idle expiry. Errors as load.
    virtual void touch(std::string_view session_id, done_completion done) = 0;

    /// Replaces the mutable fields of a live session: roles, permissions,
    /// token_expires_at, node_id and attributes. session_id selects the
    /// session; account_id and the store-owned fields are ignored. Returns the
    /// stored record. Errors: those of load and the limit errors of create.
    virtual void update(session_record record, completion<session_record> done) = 0;

    /// Revokes one session: it can no longer be loaded, touched, updated or
    /// reconnected to; its outstanding reconnection token dies with it.
    /// Errors: invalid_session_id, not_found, expired, revoked (already).
    virtual void revoke(std::string_view session_id, done_completion done) = 0;

    /// Revokes every live session of an account; returns how many were
    /// revoked (0 is not an error). Errors: invalid_account_id.
    virtual void revoke_account(std::string_view account_id, completion<std::size_t> done) = 0;

    /// The live sessions of an account, in no particular order.
    /// Errors: invalid_account_id.
    virtual void list_account(std::string_view account_id, completion<std::vector<session_record>> done) = 0;

    /// Issues a single-use reconnection token valid for `window`. A session
    /// has at most one outstanding token: issuing another invalidates the
    /// previous one. Errors: those of load, invalid_window.
    virtual void issue_reconnect_token(std::string_view session_id, std::chrono::milliseconds window,
                                       completion<reconnect_token> done) = 0;

    /// Atomically consumes a token and returns its session, with activity
    /// recorded. A token works exactly once, even when several callers (on
    /// several nodes) race for it: all but one get token_consumed. Errors:
    /// token_invalid (malformed, unknown, superseded or past its window),
    /// token_consumed, and expired / revoked when the session died meanwhile.
    virtual void consume_reconnect_token(std::string_view token, completion<session_record> done) = 0;

    /// The store's idle_timeout and max_lifetime. Stores that keep the
    /// default (zero: unknown) are refreshed by a gateway every
    /// gateway_options::session_refresh_interval (one minute unless set),
    /// and their sessions end when a refresh answers expired. Any thread.
    virtual session_timing timing() const noexcept { return {}; }
};

}  // namespace gatehouse::session
