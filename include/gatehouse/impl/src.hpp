// Include this in exactly one translation unit of a program built with
// GATEHOUSE_SEPARATE_COMPILATION defined everywhere: it compiles the
// non-template parts of gatehouse once instead of inline in every user.
#pragma once

#if !defined(GATEHOUSE_SEPARATE_COMPILATION)
#error "gatehouse/impl/src.hpp is only for GATEHOUSE_SEPARATE_COMPILATION builds"
#endif

#include <gatehouse/detail/config.hpp>

// One line per .ipp; each layer appends its own.
#include <gatehouse/routing/impl/salted_guid.ipp>
#include <gatehouse/session/impl/session.ipp>
#include <gatehouse/session/impl/memory_session_store.ipp>
#include <gatehouse/auth/impl/keys.ipp>
#include <gatehouse/auth/impl/jwt_validator.ipp>
#include <gatehouse/auth/impl/jwt_signer.ipp>
#include <gatehouse/auth/impl/api_key_validator.ipp>
#include <gatehouse/auth/impl/revocation.ipp>
#include <gatehouse/routing/impl/endpoint.ipp>
#include <gatehouse/routing/impl/event.ipp>
#include <gatehouse/routing/impl/meta.ipp>
#include <gatehouse/server/impl/gateway.ipp>
#include <gatehouse/server/impl/websocket_transport.ipp>
#include <gatehouse/client/impl/client.ipp>
#include <gatehouse/client/impl/client_websocket.ipp>
