// The interface that decides who a connection is. The gateway calls one
// token_validator (usually a validator_chain) for every upgrade; hosts may
// implement their own, e.g. to ask a remote auth service.
#pragma once

#include <gatehouse/auth/error.hpp>
#include <gatehouse/auth/identity.hpp>

#include <functional>
#include <string>
#include <system_error>

namespace gatehouse::auth {

/// Where a credential came from, which decides how it is checked.
enum class credential_kind {
    bearer,     ///< "Authorization: Bearer <token>": a JWT (or a host-defined opaque token)
    api_key,    ///< "Authorization: ApiKey <key>"
    reconnect,  ///< "Authorization: Reconnect <token>": a reconnection token (PROTOCOL.md §13.4)
};

/// A credential as presented by a client. `value` is a secret: never log it.
struct credential {
    credential_kind kind = credential_kind::bearer;
    std::string value;
};

/// Validates credentials.
///
/// Threading: async_validate may be called concurrently from any number of
/// threads. The completion is invoked exactly once, either inline (before
/// async_validate returns; every built-in validator that needs no I/O does
/// so) or later from any thread the implementation chooses (e.g. an I/O
/// thread of a remote auth client). Callers that need a particular executor
/// must post from the completion themselves.
///
/// Errors: on failure the completion receives an error (normally an
/// auth_errc) and a default-constructed identity; on success a default
/// error_code and the identity. Implementations never throw from
/// async_validate; a completion that throws is the caller's bug.
///
/// Lifetime: the validator must outlive every pending validation; the
/// credential is only read during the call (implementations copy what they
/// need to keep).
class token_validator {
public:
    using completion = std::function<void(std::error_code, identity)>;

    virtual ~token_validator() = default;

    virtual void async_validate(const credential& cred, completion done) = 0;
};

}  // namespace gatehouse::auth
