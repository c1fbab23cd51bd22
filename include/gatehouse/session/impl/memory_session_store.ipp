// Implementation of gatehouse/session/memory_session_store.hpp.
#pragma once

#include <gatehouse/session/memory_session_store.hpp>

#include <algorithm>
#include <limits>

namespace gatehouse::session {

namespace detail {
// How many due heap items a create or token issue frees in passing: enough
// to keep up with any steady creation rate, small enough to bound latency.
inline constexpr std::size_t amortized_sweep_budget = 4;
}  // namespace detail

GATEHOUSE_DECL memory_session_store::memory_session_store() : memory_session_store(options{}) {}

GATEHOUSE_DECL memory_session_store::memory_session_store(options opts)
    : options_(std::move(opts)), shard_count_(std::max<std::size_t>(1, options_.shards)) {
    session_shards_ = std::make_unique<session_shard[]>(shard_count_);
    token_shards_ = std::make_unique<token_shard[]>(shard_count_);
    account_shards_ = std::make_unique<account_shard[]>(shard_count_);
}

GATEHOUSE_DECL time_point memory_session_store::expiry_of(const session_entry& e) const noexcept {
    auto sliding = e.record.last_activity + options_.idle_timeout;
    if (!e.token_hash.empty()) sliding = std::max(sliding, e.record.reconnect_expires_at);
    return std::min(e.record.created_at + options_.max_lifetime, sliding);
}

GATEHOUSE_DECL time_point memory_session_store::free_time_of(const session_entry& e) const noexcept {
    return (e.st == state::revoked ? e.revoked_at : expiry_of(e)) + options_.tombstone_retention;
}

GATEHOUSE_DECL std::error_code memory_session_store::check_live(const session_entry& e, time_point now) const noexcept {
    if (now >= free_time_of(e)) return session_errc::not_found;
    if (e.st == state::revoked) return session_errc::revoked;
    if (now >= expiry_of(e)) return session_errc::expired;
    return {};
}

GATEHOUSE_DECL session_record memory_session_store::visible(const session_entry& e) const {
    session_record r = e.record;
    r.expires_at = expiry_of(e);
    // A token past its window is no longer outstanding.
    if (e.token_hash.empty() || r.reconnect_expires_at <= now()) r.reconnect_expires_at = {};
    return r;
}

GATEHOUSE_DECL memory_session_store::session_shard& memory_session_store::session_shard_for(std::string_view id) noexcept {
    return session_shards_[std::hash<std::string_view>{}(id) % shard_count_];
}

GATEHOUSE_DECL memory_session_store::token_shard& memory_session_store::token_shard_for(std::string_view hash) noexcept {
    return token_shards_[std::hash<std::string_view>{}(hash) % shard_count_];
}

GATEHOUSE_DECL memory_session_store::account_shard& memory_session_store::account_shard_for(
    std::string_view account) noexcept {
    return account_shards_[std::hash<std::string_view>{}(account) % shard_count_];
}

GATEHOUSE_DECL std::size_t memory_session_store::sweep_sessions_locked(
    session_shard& shard, time_point now, std::size_t budget, std::vector<std::pair<std::string, std::string>>& freed) {
    std::size_t count = 0;
    while (budget > 0 && !shard.due.empty() && shard.due.top().first <= now) {
        auto id = std::move(const_cast<due_entry&>(shard.due.top()).second);
        shard.due.pop();
        --budget;
        auto it = shard.sessions.find(id);
        if (it == shard.sessions.end()) continue;  // already freed or replaced and freed
        const auto free_at = free_time_of(it->second);
        if (free_at > now) {  // touched since it was scheduled: look again later
            shard.due.emplace(free_at, std::move(id));
            continue;
        }
        if (it->second.st == state::live) freed.emplace_back(it->second.record.account_id, id);
        shard.sessions.erase(it);
        ++count;
    }
    return count;
}

GATEHOUSE_DECL std::size_t memory_session_store::sweep_tokens_locked(token_shard& shard, time_point now,
                                                                      std::size_t budget) {
    std::size_t count = 0;
    while (budget > 0 && !shard.due.empty() && shard.due.top().first <= now) {
        auto hash = std::move(const_cast<due_entry&>(shard.due.top()).second);
        shard.due.pop();
        --budget;
        auto it = shard.tokens.find(hash);
        if (it == shard.tokens.end() || it->second.expires_at > now) continue;
        shard.tokens.erase(it);
        ++count;
    }
    return count;
}

GATEHOUSE_DECL void memory_session_store::unindex(const std::vector<std::pair<std::string, std::string>>& freed) {
    for (const auto& [account, id] : freed) {
        auto& shard = account_shard_for(account);
        std::lock_guard<std::mutex> lock(shard.mutex);
        auto it = shard.accounts.find(account);
        if (it == shard.accounts.end()) continue;
        auto& ids = it->second;
        const auto at = std::find(ids.begin(), ids.end(), id);
        if (at != ids.end()) {
            if (at != ids.end() - 1) *at = std::move(ids.back());
            ids.pop_back();
        }
        if (ids.empty()) shard.accounts.erase(it);
    }
}

GATEHOUSE_DECL void memory_session_store::forget_token(const std::string& hash) {
    if (hash.empty()) return;
    auto& shard = token_shard_for(hash);
    std::lock_guard<std::mutex> lock(shard.mutex);
    shard.tokens.erase(hash);
}

GATEHOUSE_DECL void memory_session_store::create(session_record record, completion<session_record> done) {
    if (auto ec = validate_record(record, options_.limits)) return done(ec, {});
    if (record.session_id.empty()) record.session_id = random_session_id();
    const auto t = now();
    record.created_at = t;
    record.last_activity = t;
    record.reconnect_expires_at = {};

    std::vector<std::pair<std::string, std::string>> freed;
    session_record result;
    bool exists = false;
    {
        auto& shard = session_shard_for(record.session_id);
        std::lock_guard<std::mutex> lock(shard.mutex);
        sweep_sessions_locked(shard, t, detail::amortized_sweep_budget, freed);
        auto it = shard.sessions.find(record.session_id);
        if (it != shard.sessions.end() && t < free_time_of(it->second)) {
            exists = true;
        } else {
            if (it != shard.sessions.end()) {  // a tombstone whose retention is over
                if (it->second.st == state::live) freed.emplace_back(it->second.record.account_id, it->first);
                shard.sessions.erase(it);
            }
            session_entry entry;
            entry.record = std::move(record);
            auto id = entry.record.session_id;
            auto inserted = shard.sessions.emplace(std::move(id), std::move(entry)).first;
            shard.due.emplace(free_time_of(inserted->second), inserted->first);
            result = visible(inserted->second);
        }
    }
    // Completions run without a lock held: they may call the store again.
    unindex(freed);
    if (exists) return done(session_errc::already_exists, {});
    {
        auto& shard = account_shard_for(result.account_id);
        std::lock_guard<std::mutex> lock(shard.mutex);
        auto& ids = shard.accounts[result.account_id];
        if (std::find(ids.begin(), ids.end(), result.session_id) == ids.end()) ids.push_back(result.session_id);
    }
    done({}, std::move(result));
}

GATEHOUSE_DECL void memory_session_store::load(std::string_view session_id, completion<session_record> done) {
    if (!is_session_id(session_id)) return done(session_errc::invalid_session_id, {});
    std::error_code ec;
    session_record result;
    {
        auto& shard = session_shard_for(session_id);
        std::lock_guard<std::mutex> lock(shard.mutex);
        auto it = shard.sessions.find(std::string(session_id));
        if (it == shard.sessions.end())
            ec = session_errc::not_found;
        else if (!(ec = check_live(it->second, now())))
            result = visible(it->second);
    }
    done(ec, std::move(result));
}

GATEHOUSE_DECL void memory_session_store::touch(std::string_view session_id, done_completion done) {
    if (!is_session_id(session_id)) return done(session_errc::invalid_session_id);
    std::error_code ec;
    {
        auto& shard = session_shard_for(session_id);
        std::lock_guard<std::mutex> lock(shard.mutex);
        auto it = shard.sessions.find(std::string(session_id));
        const auto t = now();
        if (it == shard.sessions.end())
            ec = session_errc::not_found;
        else if (!(ec = check_live(it->second, t)))
            it->second.record.last_activity = std::max(it->second.record.last_activity, t);
    }
    done(ec);
}

GATEHOUSE_DECL void memory_session_store::update(session_record record, completion<session_record> done) {
    if (!is_session_id(record.session_id)) return done(session_errc::invalid_session_id, {});
    // account_id is immutable and ignored here; validate the rest against a
    // stand-in so that an empty account in the update is not an error.
    // assign(1, c), not = "-": g++ 12 reports a bogus -Wrestrict for the
    // literal assignment in C++20 at -O2 (GCC PR 105329), in users' builds too.
    record.account_id.assign(1, '-');
    if (auto ec = validate_record(record, options_.limits)) return done(ec, {});
    std::error_code ec;
    session_record result;
    {
        auto& shard = session_shard_for(record.session_id);
        std::lock_guard<std::mutex> lock(shard.mutex);
        auto it = shard.sessions.find(record.session_id);
        if (it == shard.sessions.end()) {
            ec = session_errc::not_found;
        } else if (!(ec = check_live(it->second, now()))) {
            auto& stored = it->second.record;
            stored.roles = std::move(record.roles);
            stored.permissions = std::move(record.permissions);
            stored.token_expires_at = record.token_expires_at;
            stored.node_id = std::move(record.node_id);
            stored.attributes = std::move(record.attributes);
            result = visible(it->second);
        }
    }
    done(ec, std::move(result));
}

GATEHOUSE_DECL void memory_session_store::revoke(std::string_view session_id, done_completion done) {
    if (!is_session_id(session_id)) return done(session_errc::invalid_session_id);
    std::error_code ec;
    std::string token_hash, account;
    {
        auto& shard = session_shard_for(session_id);
        std::lock_guard<std::mutex> lock(shard.mutex);
        auto it = shard.sessions.find(std::string(session_id));
        const auto t = now();
        if (it == shard.sessions.end()) {
            ec = session_errc::not_found;
        } else if (!(ec = check_live(it->second, t))) {
            auto& e = it->second;
            e.st = state::revoked;
            e.revoked_at = t;
            token_hash = std::move(e.token_hash);
            e.token_hash.clear();
            e.record.reconnect_expires_at = {};
            account = e.record.account_id;
        }
    }
    if (!ec) {
        forget_token(token_hash);
        unindex({{account, std::string(session_id)}});
    }
    done(ec);
}

GATEHOUSE_DECL void memory_session_store::revoke_account(std::string_view account_id, completion<std::size_t> done) {
    if (account_id.empty() || account_id.size() > options_.limits.max_account_id_size)
        return done(session_errc::invalid_account_id, 0);
    std::vector<std::string> ids;
    {
        auto& shard = account_shard_for(account_id);
        std::lock_guard<std::mutex> lock(shard.mutex);
        auto it = shard.accounts.find(std::string(account_id));
        if (it != shard.accounts.end()) {
            ids = std::move(it->second);
            shard.accounts.erase(it);
        }
    }
    std::size_t revoked = 0;
    for (const auto& id : ids) {
        std::string token_hash;
        bool did = false;
        {
            auto& shard = session_shard_for(id);
            std::lock_guard<std::mutex> lock(shard.mutex);
            auto it = shard.sessions.find(id);
            const auto t = now();
            if (it != shard.sessions.end() && !check_live(it->second, t)) {
                auto& e = it->second;
                e.st = state::revoked;
                e.revoked_at = t;
                token_hash = std::move(e.token_hash);
                e.token_hash.clear();
                e.record.reconnect_expires_at = {};
                did = true;
            }
        }
        if (did) {
            forget_token(token_hash);
            ++revoked;
        }
    }
    done({}, revoked);
}

GATEHOUSE_DECL void memory_session_store::list_account(std::string_view account_id,
                                                       completion<std::vector<session_record>> done) {
    if (account_id.empty() || account_id.size() > options_.limits.max_account_id_size)
        return done(session_errc::invalid_account_id, {});
    std::vector<std::string> ids;
    {
        auto& shard = account_shard_for(account_id);
        std::lock_guard<std::mutex> lock(shard.mutex);
        auto it = shard.accounts.find(std::string(account_id));
        if (it != shard.accounts.end()) ids.assign(it->second.begin(), it->second.end());
    }
    std::vector<session_record> live;
    std::vector<std::pair<std::string, std::string>> dead;
    live.reserve(ids.size());
    for (auto& id : ids) {
        auto& shard = session_shard_for(id);
        std::lock_guard<std::mutex> lock(shard.mutex);
        auto it = shard.sessions.find(id);
        if (it != shard.sessions.end() && !check_live(it->second, now()))
            live.push_back(visible(it->second));
        else
            dead.emplace_back(std::string(account_id), std::move(id));
    }
    unindex(dead);
    done({}, std::move(live));
}

GATEHOUSE_DECL void memory_session_store::issue_reconnect_token(std::string_view session_id,
                                                                std::chrono::milliseconds window,
                                                                completion<reconnect_token> done) {
    if (!is_session_id(session_id)) return done(session_errc::invalid_session_id, {});
    if (window <= std::chrono::milliseconds::zero() || window > options_.max_reconnect_window)
        return done(session_errc::invalid_window, {});
    reconnect_token issued;
    issued.token = random_reconnect_token();
    auto hash = reconnect_token_hash(issued.token);
    std::error_code ec;
    std::string previous;
    const auto t = now();
    {
        auto& shard = session_shard_for(session_id);
        std::lock_guard<std::mutex> lock(shard.mutex);
        auto it = shard.sessions.find(std::string(session_id));
        if (it == shard.sessions.end()) {
            ec = session_errc::not_found;
        } else if (!(ec = check_live(it->second, t))) {
            auto& e = it->second;
            previous = std::exchange(e.token_hash, hash);
            issued.expires_at = t + window;
            e.record.reconnect_expires_at = issued.expires_at;
        }
    }
    if (ec) return done(ec, {});
    forget_token(previous);
    {
        auto& shard = token_shard_for(hash);
        std::lock_guard<std::mutex> lock(shard.mutex);
        sweep_tokens_locked(shard, t, detail::amortized_sweep_budget);
        shard.due.emplace(issued.expires_at, hash);
        shard.tokens[std::move(hash)] = token_entry{std::string(session_id), issued.expires_at, false};
    }
    done({}, std::move(issued));
}

GATEHOUSE_DECL void memory_session_store::consume_reconnect_token(std::string_view token,
                                                                  completion<session_record> done) {
    if (!is_reconnect_token(token)) return done(session_errc::token_invalid, {});
    const auto hash = reconnect_token_hash(token);
    std::string session_id;
    std::error_code ec;
    {
        auto& shard = token_shard_for(hash);
        std::lock_guard<std::mutex> lock(shard.mutex);
        auto it = shard.tokens.find(hash);
        if (it == shard.tokens.end() || now() >= it->second.expires_at) {
            ec = session_errc::token_invalid;
        } else if (it->second.consumed) {
            ec = session_errc::token_consumed;
        } else {
            // The single point where a token changes hands: under this lock,
            // exactly one caller sees consumed == false.
            it->second.consumed = true;
            session_id = it->second.session_id;
        }
    }
    if (ec) return done(ec, {});
    session_record result;
    {
        auto& shard = session_shard_for(session_id);
        std::lock_guard<std::mutex> lock(shard.mutex);
        auto it = shard.sessions.find(session_id);
        const auto t = now();
        if (it == shard.sessions.end()) {
            ec = session_errc::not_found;
        } else if (!(ec = check_live(it->second, t))) {
            auto& e = it->second;
            if (e.token_hash == hash) {
                e.token_hash.clear();
                e.record.reconnect_expires_at = {};
            }
            e.record.last_activity = std::max(e.record.last_activity, t);
            result = visible(e);
        }
    }
    done(ec, std::move(result));
}

GATEHOUSE_DECL std::size_t memory_session_store::sweep() {
    const auto t = now();
    std::size_t count = 0;
    for (std::size_t i = 0; i < shard_count_; ++i) {
        std::vector<std::pair<std::string, std::string>> freed;
        {
            std::lock_guard<std::mutex> lock(session_shards_[i].mutex);
            count += sweep_sessions_locked(session_shards_[i], t, std::numeric_limits<std::size_t>::max(), freed);
        }
        unindex(freed);
        std::lock_guard<std::mutex> lock(token_shards_[i].mutex);
        count += sweep_tokens_locked(token_shards_[i], t, std::numeric_limits<std::size_t>::max());
    }
    return count;
}

GATEHOUSE_DECL std::size_t memory_session_store::size() const {
    std::size_t n = 0;
    for (std::size_t i = 0; i < shard_count_; ++i) {
        std::lock_guard<std::mutex> lock(session_shards_[i].mutex);
        n += session_shards_[i].sessions.size();
    }
    return n;
}

}  // namespace gatehouse::session
