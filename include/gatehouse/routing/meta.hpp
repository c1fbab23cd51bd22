// Meta responses (PROTOCOL.md §10), answered from an endpoint's registered
// description and schemas; no host code runs.
#pragma once

#include <gatehouse/detail/config.hpp>
#include <gatehouse/protocol/meta.hpp>
#include <gatehouse/routing/endpoint.hpp>

#include <string>

namespace gatehouse::routing {

/// `{metaType, serviceName, method, path, data, generatedAt, schemaVersion}`.
/// `data` is, by meta type: endpoint-info `{service, path, method,
/// description}`; request-schema / response-schema the registered schema
/// (null when none); full-schema `{info, request, response}`.
GATEHOUSE_DECL std::string meta_json(const endpoint& target, protocol::meta_type type);

}  // namespace gatehouse::routing

#if defined(GATEHOUSE_HEADER_ONLY)
#include <gatehouse/routing/impl/meta.ipp>
#endif
