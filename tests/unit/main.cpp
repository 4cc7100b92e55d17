// GCC 12 with -fsanitize at -O1 and above reports a false -Wmaybe-uninitialized in
// <regex>, which Catch2's runner includes; warnings are errors in this build.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
