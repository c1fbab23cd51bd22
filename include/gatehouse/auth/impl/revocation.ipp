// Implementation of gatehouse/auth/revocation.hpp.
#pragma once

#include <gatehouse/auth/revocation.hpp>

#include <algorithm>
#include <new>
#include <stdexcept>

namespace gatehouse::auth {

GATEHOUSE_DECL memory_revocation_list::memory_revocation_list(memory_revocation_options options)
    : options_(std::move(options)), listeners_(std::make_shared<listeners>()) {
    if (options_.max_entries == 0) throw std::invalid_argument("memory_revocation_options: max_entries must be positive");
    if (!options_.clock) throw std::invalid_argument("memory_revocation_options: clock must be set");
}

GATEHOUSE_DECL memory_revocation_list::~memory_revocation_list() = default;

GATEHOUSE_DECL memory_revocation_list::table& memory_revocation_list::table_for(revocation_scope scope) noexcept {
    return scope == revocation_scope::token ? tokens_ : scope == revocation_scope::session ? sessions_ : accounts_;
}

GATEHOUSE_DECL const memory_revocation_list::table& memory_revocation_list::table_for(
    revocation_scope scope) const noexcept {
    return scope == revocation_scope::token ? tokens_ : scope == revocation_scope::session ? sessions_ : accounts_;
}

GATEHOUSE_DECL bool memory_revocation_list::revoked_in(const table& t, const std::string& value,
                                                       std::chrono::system_clock::time_point now) const {
    if (value.empty()) return false;
    const auto it = t.find(value);
    return it != t.end() && now < it->second;
}

GATEHOUSE_DECL std::error_code memory_revocation_list::check(const identity& id) const {
    const auto now = options_.clock();
    std::shared_lock lock(mutex_);
    if (revoked_in(tokens_, id.token_id, now)) return auth_errc::token_revoked;
    if (revoked_in(sessions_, id.session_key, now)) return auth_errc::session_revoked;
    if (revoked_in(accounts_, id.subject, now)) return auth_errc::account_revoked;
    return {};
}

GATEHOUSE_DECL bool memory_revocation_list::is_revoked(revocation_scope scope, std::string_view value) const {
    const auto now = options_.clock();
    std::shared_lock lock(mutex_);
    return revoked_in(table_for(scope), std::string(value), now);
}

GATEHOUSE_DECL std::size_t memory_revocation_list::purge_locked(std::chrono::system_clock::time_point now) {
    std::size_t removed = 0;
    for (auto* t : {&tokens_, &sessions_, &accounts_}) {
        for (auto it = t->begin(); it != t->end();) {
            if (it->second <= now) {
                it = t->erase(it);
                ++removed;
            } else {
                ++it;
            }
        }
    }
    return removed;
}

GATEHOUSE_DECL std::size_t memory_revocation_list::purge_expired() {
    const auto now = options_.clock();
    std::unique_lock lock(mutex_);
    return purge_locked(now);
}

GATEHOUSE_DECL std::size_t memory_revocation_list::size() const {
    std::shared_lock lock(mutex_);
    return tokens_.size() + sessions_.size() + accounts_.size();
}

GATEHOUSE_DECL std::error_code memory_revocation_list::revoke(revocation entry) {
    if (entry.value.empty()) return auth_errc::empty_credential;
    const auto now = options_.clock();
    {
        std::unique_lock lock(mutex_);
        // An entry already past its lifetime blocks nothing and is not kept,
        // but listeners still hear of it: connections it names close now.
        if (entry.until > now) {
            auto& t = table_for(entry.scope);
            const auto it = t.find(entry.value);
            if (it != t.end()) {
                it->second = std::max(it->second, entry.until);
            } else {
                if (tokens_.size() + sessions_.size() + accounts_.size() >= options_.max_entries) purge_locked(now);
                if (tokens_.size() + sessions_.size() + accounts_.size() >= options_.max_entries)
                    return auth_errc::revocation_list_full;
                t.emplace(entry.value, entry.until);
            }
        }
    }
    std::vector<std::shared_ptr<listener_entry>> targets;
    {
        std::lock_guard lock(listeners_->mutex);
        targets = listeners_->entries;
    }
    for (const auto& l : targets) {
        std::lock_guard running(l->running);
        if (!l->active) continue;
        try {
            l->fn(entry);
        } catch (...) {
            // A throwing listener must not stop the others from hearing of it.
        }
    }
    return {};
}

GATEHOUSE_DECL void memory_revocation_list::async_check(const identity& id, completion done) {
    std::error_code ec;
    try {
        ec = check(id);
    } catch (...) {
        ec = auth_errc::internal_error;
    }
    done(ec);
}

GATEHOUSE_DECL void memory_revocation_list::async_revoke(revocation entry, completion done) {
    std::error_code ec;
    try {
        ec = revoke(std::move(entry));
    } catch (...) {
        ec = auth_errc::internal_error;
    }
    done(ec);
}

GATEHOUSE_DECL revocation_subscription memory_revocation_list::subscribe(listener on_revoked) {
    auto entry = std::make_shared<listener_entry>();
    entry->fn = std::move(on_revoked);
    {
        std::lock_guard lock(listeners_->mutex);
        listeners_->entries.push_back(entry);
    }
    std::weak_ptr<listeners> weak_registry = listeners_;
    std::weak_ptr<listener_entry> weak_entry = entry;
    return revocation_subscription([weak_registry, weak_entry] {
        const auto e = weak_entry.lock();
        if (!e) return;
        {
            // Waits for a call in progress on another thread to finish.
            std::lock_guard running(e->running);
            e->active = false;
        }
        if (const auto registry = weak_registry.lock()) {
            std::lock_guard lock(registry->mutex);
            auto& v = registry->entries;
            v.erase(std::remove(v.begin(), v.end(), e), v.end());
        }
    });
}

}  // namespace gatehouse::auth
