// Preloaded (LD_PRELOAD) into the fulcrum children of the integration tests in
// ThreadSanitizer builds only (see tests/meson.build and harness.cpp); never linked in.
//
// The system libuv (built without ThreadSanitizer) closes descriptors with
// syscall(SYS_close, fd), which ThreadSanitizer does not intercept: it never learns that a
// session's socket was closed, and when another thread gets the same descriptor number
// from accept, socket or opendir it reports a false data race on "file descriptor N".
// This definition takes the place of libc's syscall() for libuv and sends SYS_close
// through the intercepted close(); every other system call goes on to libc unchanged.

#include <dlfcn.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdarg>

extern "C" long syscall(long number, ...) noexcept {
    // Like libc's syscall(), read six arguments whatever the call takes.
    va_list args;
    va_start(args, number);
    long a[6];
    for (long& arg : a) arg = va_arg(args, long);
    va_end(args);
    if (number == SYS_close) return ::close(static_cast<int>(a[0]));
    using Syscall = long (*)(long, ...);
    static const auto next = reinterpret_cast<Syscall>(::dlsym(RTLD_NEXT, "syscall"));
    return next(number, a[0], a[1], a[2], a[3], a[4], a[5]);
}
