#pragma once
// Runs the Catch2 session: the implementation is compiled once, in catch_session.cpp,
// for both test programs, whose main() calls this.

namespace fulcrum::test {

int run_catch_session(int argc, char** argv);

}  // namespace fulcrum::test
