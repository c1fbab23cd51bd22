// memory_session_store: the default session_store, in this process's memory.
//
// Threading: every operation runs and completes inline, on the calling
// thread, before the call returns. Sessions are spread over independently
// locked shards (by session id, token hash and account id), so threads
// working on different sessions rarely contend; no lock is held while a
// completion runs, so a completion may call the store again.
//
// Expiry needs no thread: an expired session is detected when accessed, and
// memory is freed by an expiry heap per shard that every create advances a
// little (so memory stays bounded by what is live plus what expired within
// tombstone_retention) and that sweep() empties of everything due. Hosts with
// bursty creation may call sweep() from a periodic timer.
//
// Sessions are lost when the process exits: use a persistent store (e.g.
// adapters::redis::redis_session_store) when sessions must outlive a node.
#pragma once

#include <gatehouse/detail/config.hpp>
#include <gatehouse/session/session_store.hpp>

#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <queue>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace gatehouse::session {

class memory_session_store final : public session_store {
public:
    struct options : session_store_options {
        /// Number of independently locked shards (rounded up to at least 1).
        std::size_t shards = 16;
        /// Clock; tests inject a fake one. Default: now_ms.
        std::function<time_point()> clock;
    };

    GATEHOUSE_DECL memory_session_store();
    GATEHOUSE_DECL explicit memory_session_store(options opts);

    memory_session_store(const memory_session_store&) = delete;
    memory_session_store& operator=(const memory_session_store&) = delete;

    GATEHOUSE_DECL void create(session_record record, completion<session_record> done) override;
    GATEHOUSE_DECL void load(std::string_view session_id, completion<session_record> done) override;
    GATEHOUSE_DECL void touch(std::string_view session_id, done_completion done) override;
    GATEHOUSE_DECL void update(session_record record, completion<session_record> done) override;
    GATEHOUSE_DECL void revoke(std::string_view session_id, done_completion done) override;
    GATEHOUSE_DECL void revoke_account(std::string_view account_id, completion<std::size_t> done) override;
    GATEHOUSE_DECL void list_account(std::string_view account_id,
                                     completion<std::vector<session_record>> done) override;
    GATEHOUSE_DECL void issue_reconnect_token(std::string_view session_id, std::chrono::milliseconds window,
                                              completion<reconnect_token> done) override;
    GATEHOUSE_DECL void consume_reconnect_token(std::string_view token, completion<session_record> done) override;

    session_timing timing() const noexcept override { return {options_.idle_timeout, options_.max_lifetime}; }

    /// Frees every session, tombstone and token whose time is up; returns how
    /// many entries were freed.
    GATEHOUSE_DECL std::size_t sweep();

    /// Entries held: live sessions plus tombstones not yet freed.
    GATEHOUSE_DECL std::size_t size() const;

    const options& config() const noexcept { return options_; }

private:
    enum class state : unsigned char { live, revoked };

    struct session_entry {
        session_record record;
        state st = state::live;
        time_point revoked_at{};
        std::string token_hash;  // hash of the outstanding reconnection token, "" when none
    };

    struct token_entry {
        std::string session_id;
        time_point expires_at{};
        bool consumed = false;
    };

    using due_entry = std::pair<time_point, std::string>;
    using due_heap = std::priority_queue<due_entry, std::vector<due_entry>, std::greater<>>;

    struct session_shard {
        mutable std::mutex mutex;
        std::unordered_map<std::string, session_entry> sessions;
        due_heap due;  // (earliest time the entry may be freed, id); stale items are re-pushed
    };
    struct token_shard {
        mutable std::mutex mutex;
        std::unordered_map<std::string, token_entry> tokens;
        due_heap due;
    };
    struct account_shard {
        mutable std::mutex mutex;
        /// An account's session ids. A vector: most accounts have one or a
        /// few sessions, and a one-element hash set costs ~250 bytes more.
        std::unordered_map<std::string, std::vector<std::string>> accounts;
    };

    time_point now() const { return options_.clock ? options_.clock() : now_ms(); }
    time_point expiry_of(const session_entry& e) const noexcept;
    time_point free_time_of(const session_entry& e) const noexcept;
    std::error_code check_live(const session_entry& e, time_point now) const noexcept;

    session_shard& session_shard_for(std::string_view id) noexcept;
    token_shard& token_shard_for(std::string_view hash) noexcept;
    account_shard& account_shard_for(std::string_view account) noexcept;

    // Frees up to `budget` due entries of a shard; the caller holds its mutex.
    // Appends (account, id) of freed sessions to `freed`.
    std::size_t sweep_sessions_locked(session_shard& shard, time_point now, std::size_t budget,
                                      std::vector<std::pair<std::string, std::string>>& freed);
    std::size_t sweep_tokens_locked(token_shard& shard, time_point now, std::size_t budget);
    void unindex(const std::vector<std::pair<std::string, std::string>>& freed);
    void forget_token(const std::string& hash);
    session_record visible(const session_entry& e) const;

    options options_;
    std::unique_ptr<session_shard[]> session_shards_;
    std::unique_ptr<token_shard[]> token_shards_;
    std::unique_ptr<account_shard[]> account_shards_;
    std::size_t shard_count_;
};

}  // namespace gatehouse::session

#if defined(GATEHOUSE_HEADER_ONLY)
#include <gatehouse/session/impl/memory_session_store.ipp>
#endif
