// The library compiled once for the *_separate tests (GATEHOUSE_SEPARATE_COMPILATION).
#include <gatehouse/impl/src.hpp>
