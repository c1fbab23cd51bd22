// The session layer's share of <gatehouse/impl/src.hpp>: its non-template
// code compiled once, in this translation unit, as a host does with
// GATEHOUSE_SEPARATE_COMPILATION. (The full src.hpp pulls in every layer.)
#include <gatehouse/detail/config.hpp>

#include <gatehouse/impl/session_record.ipp>
#include <gatehouse/impl/session_memory_store.ipp>
