// Everything gatehouse offers a host application. Each layer also has its own
// headers for users who want less.
#pragma once

#include <gatehouse/detail/config.hpp>
#include <gatehouse/protocol.hpp>
#include <gatehouse/routing/salted_guid.hpp>
