// Include this in exactly one translation unit of a program built with
// GATEHOUSE_SEPARATE_COMPILATION defined everywhere: it compiles the
// non-template parts of gatehouse once instead of inline in every user.
#pragma once

#if !defined(GATEHOUSE_SEPARATE_COMPILATION)
#error "gatehouse/impl/src.hpp is only for GATEHOUSE_SEPARATE_COMPILATION builds"
#endif

#include <gatehouse/detail/config.hpp>

// One line per .ipp; each layer appends its own.
#include <gatehouse/impl/salted_guid.ipp>
#include <gatehouse/impl/session_record.ipp>
#include <gatehouse/impl/session_memory_store.ipp>
#include <gatehouse/impl/auth_keys.ipp>
#include <gatehouse/impl/auth_jwt.ipp>
#include <gatehouse/impl/auth_jwt_signer.ipp>
#include <gatehouse/impl/auth_api_key.ipp>
#include <gatehouse/impl/auth_revocation.ipp>
#include <gatehouse/impl/routing_endpoint.ipp>
#include <gatehouse/impl/routing_event.ipp>
#include <gatehouse/impl/routing_meta.ipp>
#include <gatehouse/impl/server_gateway.ipp>
#include <gatehouse/impl/server_websocket.ipp>
#include <gatehouse/impl/client.ipp>
#include <gatehouse/impl/client_websocket.ipp>
