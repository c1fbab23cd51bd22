// The protocol layer: a dependency-free codec for the gatehouse / Bannou
// Connect wire protocol. A game client can embed this header alone.
#pragma once

#include <gatehouse/protocol/bytes.hpp>
#include <gatehouse/protocol/close_code.hpp>
#include <gatehouse/protocol/endian.hpp>
#include <gatehouse/protocol/error.hpp>
#include <gatehouse/protocol/flags.hpp>
#include <gatehouse/protocol/guid.hpp>
#include <gatehouse/protocol/header.hpp>
#include <gatehouse/protocol/limits.hpp>
#include <gatehouse/protocol/message_id.hpp>
#include <gatehouse/protocol/meta.hpp>
#include <gatehouse/protocol/response_code.hpp>
#include <gatehouse/version.hpp>
