// One entry point for the gateway: routes a credential by kind to the
// validator configured for it, then consults the revocation list.
#pragma once

#include <gatehouse/auth/detail/atomic_shared_ptr.hpp>
#include <gatehouse/auth/error.hpp>
#include <gatehouse/auth/revocation.hpp>
#include <gatehouse/auth/token_validator.hpp>

#include <atomic>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <utility>

namespace gatehouse::auth {

/// Routes bearer tokens, API keys and reconnection tokens to their own
/// validators (any of which may be a host's implementation). The gateway
/// never passes Reconnect credentials to its validator: it consumes them
/// through its session_store, so a chain used by the gateway needs no
/// reconnect validator; other callers may route them here. After a
/// successful validation the revocation list, when set, is asked about the
/// identity's token id, session key and account.
///
/// Threading: async_validate may be called concurrently from any thread;
/// the completion runs inline or on whatever thread the routed validator or
/// the revocation list completes on. set_validator and set_revocation_list
/// may be called at any time, also while validations run: each validation
/// uses the configuration it started with.
///
/// Errors of its own: empty_credential (empty value),
/// unsupported_credential_kind (no validator for the kind), internal_error
/// (a validator or revocation list threw instead of completing).
class validator_chain final : public token_validator {
public:
    validator_chain() : routes_(std::make_shared<const routes>()) {}

    /// Routes `kind` to `validator` (nullptr removes the route).
    /// std::invalid_argument for a kind outside the enumeration.
    void set_validator(credential_kind kind, std::shared_ptr<token_validator> validator) {
        const std::size_t route = index(kind);
        if (route >= 3) throw std::invalid_argument("validator_chain: unknown credential kind");
        update([&](routes& r) { r.by_kind[route] = std::move(validator); });
    }
    std::shared_ptr<token_validator> validator(credential_kind kind) const {
        const std::size_t route = index(kind);
        return route < 3 ? routes_.load()->by_kind[route] : nullptr;
    }
    void set_revocation_list(std::shared_ptr<revocation_list> list) {
        update([&](routes& r) { r.revocations = std::move(list); });
    }
    std::shared_ptr<revocation_list> revocations() const { return routes_.load()->revocations; }

    void async_validate(const credential& cred, completion done) override {
        if (cred.value.empty()) {
            done(auth_errc::empty_credential, identity{});
            return;
        }
        const auto snapshot = routes_.load();
        const std::size_t route = index(cred.kind);
        auto validator = route < 3 ? snapshot->by_kind[route] : nullptr;
        if (!validator) {
            done(auth_errc::unsupported_credential_kind, identity{});
            return;
        }
        // Exactly one completion, even if a host component throws after (or
        // instead of) completing.
        auto state = std::make_shared<once>(std::move(done));
        try {
            validator->async_validate(cred, [state, revocations = snapshot->revocations](std::error_code ec,
                                                                                        identity id) {
                if (ec || !revocations) {
                    state->complete(ec, ec ? identity{} : std::move(id));
                    return;
                }
                auto shared_id = std::make_shared<identity>(std::move(id));
                try {
                    revocations->async_check(*shared_id, [state, shared_id](std::error_code rec) {
                        state->complete(rec, rec ? identity{} : std::move(*shared_id));
                    });
                } catch (...) {
                    state->complete(auth_errc::internal_error, identity{});
                }
            });
        } catch (...) {
            state->complete(auth_errc::internal_error, identity{});
        }
    }

private:
    struct routes {
        std::shared_ptr<token_validator> by_kind[3];
        std::shared_ptr<revocation_list> revocations;
    };
    struct once {
        explicit once(completion d) : done(std::move(d)) {}
        void complete(std::error_code ec, identity id) {
            if (!fired.exchange(true)) done(ec, std::move(id));
        }
        completion done;
        std::atomic<bool> fired{false};
    };

    // 3 for a value outside the enumeration (never routed anywhere).
    static std::size_t index(credential_kind kind) noexcept {
        const auto i = static_cast<std::size_t>(kind);
        return i < 3 ? i : 3;
    }

    template <class F>
    void update(F&& change) {
        // Writers are rare (configuration); serialize them so that two
        // concurrent setters cannot lose each other's change.
        std::lock_guard lock(write_mutex_);
        auto next = std::make_shared<routes>(*routes_.load());
        change(*next);
        routes_.store(std::move(next));
    }

    detail::atomic_shared_ptr<routes> routes_;
    std::mutex write_mutex_;
};

}  // namespace gatehouse::auth
