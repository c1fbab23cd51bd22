// Include this in exactly one translation unit of a program built with
// GATEHOUSE_SEPARATE_COMPILATION defined everywhere that uses the Redis
// adapters (besides <gatehouse/impl/src.hpp>, which compiles the rest of
// gatehouse): it compiles their implementation once. Kept apart from the
// library's src.hpp because only programs that link hiredis may include it
// (as Asio keeps asio/ssl/impl/src.hpp apart).
#pragma once

#if !defined(GATEHOUSE_SEPARATE_COMPILATION)
#error "gatehouse/adapters/redis/impl/src.hpp is only for GATEHOUSE_SEPARATE_COMPILATION builds"
#endif

#include <gatehouse/detail/config.hpp>

#include <gatehouse/adapters/redis/impl/redis_session_store.ipp>
#include <gatehouse/adapters/redis/impl/redis_event_bus.ipp>
