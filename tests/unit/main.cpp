// Catch2 runner for the unit tests (Catch2 itself is in tests/support/catch_session.cpp).
#include <catch2/catch.hpp>

int main(int argc, char** argv) { return Catch::Session().run(argc, argv); }
