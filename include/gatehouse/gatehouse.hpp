// Everything gatehouse offers a host application. Each layer also has its own
// headers for users who want less. Compiles in C++17 and C++20 user code: no
// header included here includes websocketpp (see gatehouse/client/client.hpp).
#pragma once

#include <gatehouse/detail/config.hpp>

// protocol: the codec
#include <gatehouse/protocol.hpp>

// routing
#include <gatehouse/routing/endpoint.hpp>
#include <gatehouse/routing/event.hpp>
#include <gatehouse/routing/handler.hpp>
#include <gatehouse/routing/meta.hpp>
#include <gatehouse/routing/salted_guid.hpp>

// auth
#include <gatehouse/auth/api_key_validator.hpp>
#include <gatehouse/auth/authorization_header.hpp>
#include <gatehouse/auth/jwt_signer.hpp>
#include <gatehouse/auth/jwt_validator.hpp>
#include <gatehouse/auth/revocation.hpp>
#include <gatehouse/auth/validator_chain.hpp>

// session
#include <gatehouse/session/event_queue_store.hpp>
#include <gatehouse/session/memory_event_queue_store.hpp>
#include <gatehouse/session/memory_session_store.hpp>
#include <gatehouse/session/session_store.hpp>

// Several nodes: the event bus interface and its in-process default (the
// Redis bus is in gatehouse/adapters/redis/redis_event_bus.hpp, gatehouse::redis)
#include <gatehouse/cluster/event_bus.hpp>
#include <gatehouse/cluster/memory_event_bus.hpp>

// server (the websocketpp transport is compiled by one C++17 translation unit
// that includes <gatehouse/server/gateway_impl.hpp>; see gateway.hpp)
#include <gatehouse/server/gateway.hpp>
#include <gatehouse/server/metrics.hpp>

// client
#include <gatehouse/client/client.hpp>
