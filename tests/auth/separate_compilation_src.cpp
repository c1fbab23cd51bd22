#include <gatehouse/impl/src.hpp>
