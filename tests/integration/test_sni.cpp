// Routing TLS by server name without terminating it: real TLS backends (Python's ssl with
// a self-signed certificate each, made by openssl for the test) behind one fulcrum port,
// reached by openssl s_client and curl; raw clients that send captured ClientHellos a byte
// at a time, larger than a segment, malformed, late, behind a PROXY header, or no TLS at
// all; a reload that changes the services of the shared address; nginx's ssl_preread
// behind fulcrum agreeing on the routing.

#include <catch2/catch.hpp>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cstdint>
#include <future>
#include <string>
#include <vector>

#include "../support/client_hello.hpp"
#include "admin_client.hpp"
#include "proxy_fixture.hpp"

using namespace fulcrum::test;
using Catch::Matchers::Contains;

namespace {

// The output of a program run to completion (openssl, curl), within 30 s.
std::string run(std::vector<std::string> argv) {
    ChildProcess process(std::move(argv));
    if (!process.wait_exit(30s)) FAIL("still running after 30 s:\n" << process.output());
    return process.output();
}

// A self-signed certificate and its key for CN=`name`, in `dir`.
struct Certificate {
    std::string cert;
    std::string key;
};

Certificate make_certificate(const TempDir& dir, const std::string& name) {
    Certificate made{dir.path() + "/" + name + ".crt", dir.path() + "/" + name + ".key"};
    run({"/usr/bin/openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", "/CN=" + name, "-keyout",
         made.key, "-out", made.cert});
    return made;
}

// A TLS server (Python's ssl, TLS 1.2 and 1.3) with its own certificate for CN=`name`. It
// reads one line, then answers with an HTTP response whose body says who it is, the
// server name it saw and the TLS version: "api sni=api.example.test version=TLSv1.3".
constexpr std::string_view tls_backend_script = R"(
import socket, ssl, sys, threading
name, cert, key = sys.argv[1:4]
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.minimum_version = ssl.TLSVersion.TLSv1_2
context.load_cert_chain(cert, key)
def on_sni(tls, server_name, _):
    tls.sni_seen = server_name
context.sni_callback = on_sni
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen(64)
print("listening on 127.0.0.1:%d" % server.getsockname()[1], flush=True)
def serve(conn):
    try:
        conn.settimeout(20)
        tls = context.wrap_socket(conn, server_side=True)
        data = b""
        while b"\n" not in data:
            chunk = tls.recv(4096)
            if not chunk:
                break
            data += chunk
        body = "%s sni=%s version=%s\n" % (name, getattr(tls, "sni_seen", None), tls.version())
        tls.sendall(("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                     "Connection: close\r\n\r\n%s" % (len(body), body)).encode())
        tls.close()
    except Exception as error:
        print("connection failed: %s" % error, flush=True)
        conn.close()
while True:
    conn, _ = server.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
)";

class TlsBackend {
public:
    TlsBackend(const TempDir& dir, const std::string& name)
        : certificate_(make_certificate(dir, name)),
          process_({"/usr/bin/python3", dir.write("tls_backend.py", tls_backend_script), name,
                    certificate_.cert, certificate_.key}) {
        constexpr std::string_view ready = "listening on 127.0.0.1:";
        if (!process_.wait_for_output(ready, 10s)) {
            FAIL("TLS backend " << name << " did not start:\n" << process_.output());
        }
        const std::string output = process_.output();
        const std::size_t at = output.find(ready) + ready.size();
        port_ = static_cast<std::uint16_t>(std::stoul(output.substr(at)));
    }
    std::uint16_t port() const { return port_; }

private:
    Certificate certificate_;
    ChildProcess process_;
    std::uint16_t port_ = 0;
};

// openssl s_client through fulcrum: sends a request line, returns everything it printed
// (the server's certificate subject, then the response).
std::string s_client(std::uint16_t port, const std::string& server_name,
                     const std::string& version) {
    const std::string name_option =
        server_name.empty() ? "-noservername" : "-servername " + server_name;
    return run({"/bin/sh", "-c",
                "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | /usr/bin/openssl s_client -connect "
                "127.0.0.1:" +
                    std::to_string(port) + " " + name_option + " " + version + " -ign_eof 2>&1"});
}

// curl through fulcrum with `name` resolved to 127.0.0.1: the response body.
std::string curl(std::uint16_t port, const std::string& name) {
    const std::string where = name + ":" + std::to_string(port);
    return run({"/usr/bin/curl", "-sSk", "--max-time", "20", "--resolve", where + ":127.0.0.1",
                "https://" + where + "/"});
}

// Services named `names[i]` on one shared port, each with the server names `patterns[i]`
// (a TOML array's contents) and backend `backends[i]`.
std::vector<ServiceSpec> shared_services(std::uint16_t port, const std::vector<std::string>& names,
                                         const std::vector<std::string>& patterns,
                                         const std::vector<std::uint16_t>& backends,
                                         const std::string& extra = "") {
    std::vector<ServiceSpec> services;
    for (std::size_t i = 0; i < names.size(); ++i) {
        ServiceSpec spec =
            service_to({backends[i]}, "server_names = [" + patterns[i] + "]\n" + extra, names[i]);
        spec.listen = port;
        services.push_back(spec);
    }
    return services;
}

// A backend that records the first `length` bytes it gets, then echoes.
class Recorder {
public:
    explicit Recorder(std::size_t length)
        : server_([this, length](Socket s) {
              received_.set_value(s.read_exact(length));
              for (std::string chunk; !(chunk = s.read_some()).empty();) s.send_all(chunk);
          }) {}
    std::uint16_t port() const { return server_.port(); }
    int accepted() const { return server_.accepted(); }
    std::string received() {
        auto future = received_.get_future();
        REQUIRE(future.wait_for(10s) == std::future_status::ready);
        return future.get();
    }

private:
    std::promise<std::string> received_;
    ScriptedServer server_;
};

// Sends `bytes` one per segment (TCP_NODELAY, a short pause between) to make fulcrum read
// them one at a time.
void send_bytewise(const Socket& socket, const std::string& bytes) {
    const int one = 1;
    REQUIRE(setsockopt(socket.fd(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0);
    for (const char c : bytes) {
        socket.send_all(std::string(1, c));
        std::this_thread::sleep_for(1ms);
    }
}

// The line a NamedEcho backend greets with, after the client's first bytes went through.
std::string backend_after(std::uint16_t port, const std::string& first_bytes) {
    Socket socket = connect_to(port, 10);
    socket.send_all(first_bytes);
    std::string name;
    for (char c = 0; (c = socket.read_exact(1)[0]) != '\n';) name += c;
    return name;
}

// Whether fulcrum closed the connection without anything coming back.
bool closed_silently(const Socket& socket) {
    std::string got;
    try {
        got = socket.read_to_eof();
    } catch (const std::exception&) {
        return true;  // reset
    }
    return got.empty();
}

double preread_failures(std::uint16_t admin, std::uint16_t listen, const std::string& reason) {
    return scrape(admin).value(
        "fulcrum_preread_failures_total",
        {{"listen", "127.0.0.1:" + std::to_string(listen)}, {"reason", reason}});
}

}  // namespace

TEST_CASE("TLS 1.2 and 1.3 clients reach the service their server name picks", "[sni]") {
    TempDir dir;
    TlsBackend api(dir, "api");
    TlsBackend apps(dir, "apps");
    TlsBackend fallback(dir, "fallback");
    const std::uint16_t port = free_port();
    const std::uint16_t admin = free_port();
    Fulcrum fulcrum = start_with_admin(
        shared_services(port, {"api", "apps", "fallback"},
                        {R"("api.example.test")", R"("*.apps.example.test")", R"("*")"},
                        {api.port(), apps.port(), fallback.port()}),
        admin);

    std::string out = s_client(port, "api.example.test", "-tls1_3");
    CHECK_THAT(out, Contains("subject=CN = api"));
    CHECK_THAT(out, Contains("api sni=api.example.test version=TLSv1.3"));
    out = s_client(port, "x.apps.example.test", "-tls1_2");
    CHECK_THAT(out, Contains("subject=CN = apps"));
    CHECK_THAT(out, Contains("apps sni=x.apps.example.test version=TLSv1.2"));
    // The wildcard's suffix alone is not a match: "*" takes it, and no name at all.
    CHECK_THAT(s_client(port, "apps.example.test", "-tls1_3"),
               Contains("fallback sni=apps.example.test version=TLSv1.3"));
    CHECK_THAT(s_client(port, "", "-tls1_2"), Contains("fallback sni=None version=TLSv1.2"));

    CHECK(curl(port, "api.example.test") == "api sni=api.example.test version=TLSv1.3\n");
    CHECK(curl(port, "a.b.apps.example.test") ==
          "apps sni=a.b.apps.example.test version=TLSv1.3\n");

    const Exposition metrics = scrape(admin);
    CHECK(metrics.value("fulcrum_sni_routed_total", {{"service", "api"}}) == 2);
    CHECK(metrics.value("fulcrum_sni_routed_total", {{"service", "apps"}}) == 2);
    CHECK(metrics.value("fulcrum_sni_routed_total", {{"service", "fallback"}}) == 2);
    const nlohmann::json status = status_of(admin);
    CHECK(status["services"][1]["server_names"] == nlohmann::json::array({"*.apps.example.test"}));
    CHECK(poll_until(
        [&] {
            return count_of(fulcrum.process().output(), " sni=a.b.apps.example.test backend=") == 1;
        },
        5s));
}

TEST_CASE("a ClientHello a byte at a time, or above 1500 bytes, is forwarded untouched", "[sni]") {
    const std::string hello = captured_client_hello("openssl-tls13-sni.bin");
    const std::string large = with_padding(hello, 1800);
    const std::string two_records = fragmented(with_padding(hello, 3000), 2000);
    Recorder exact(hello.size());
    Recorder padded(large.size());
    Recorder split(two_records.size());
    NamedEcho other("other");
    const std::uint16_t port = free_port();

    SECTION("byte by byte") {
        Fulcrum fulcrum = start_fulcrum(shared_services(port, {"api", "rest"},
                                                        {R"("api.example.test")", R"("*")"},
                                                        {exact.port(), other.port()}));
        Socket client = connect_to(port, 10);
        send_bytewise(client, hello);
        CHECK(exact.received() == hello);
        client.send_all("after");
        CHECK(client.read_exact(5) == "after");
    }
    SECTION("one record of 2 KB") {
        Fulcrum fulcrum = start_fulcrum(shared_services(port, {"api", "rest"},
                                                        {R"("api.example.test")", R"("*")"},
                                                        {padded.port(), other.port()}));
        Socket client = connect_to(port, 10);
        client.send_all(large);
        CHECK(padded.received() == large);
    }
    SECTION("two records of 5 KB") {
        Fulcrum fulcrum = start_fulcrum(shared_services(port, {"api", "rest"},
                                                        {R"("api.example.test")", R"("*")"},
                                                        {split.port(), other.port()}));
        Socket client = connect_to(port, 10);
        client.send_all(two_records);
        CHECK(split.received() == two_records);
    }
    SECTION("a real TLS server answers the large hello with a ServerHello") {
        TempDir dir;
        TlsBackend api(dir, "api");
        Fulcrum fulcrum = start_fulcrum(shared_services(port, {"api", "rest"},
                                                        {R"("api.example.test")", R"("*")"},
                                                        {api.port(), other.port()}));
        Socket client = connect_to(port, 10);
        client.send_all(two_records);
        const std::string reply = client.read_exact(6);
        CHECK(reply[0] == '\x16');  // a handshake record
        CHECK(reply[5] == '\x02');  // ServerHello
    }
}

TEST_CASE("plain-text clients: closed with sni_require_tls, sent to \"*\" without", "[sni]") {
    NamedEcho api("api");
    NamedEcho rest("rest");
    const std::uint16_t port = free_port();
    const std::uint16_t admin = free_port();

    SECTION("sni_require_tls = true (the default)") {
        Fulcrum fulcrum = start_with_admin(
            shared_services(port, {"api", "rest"}, {R"("api.example.test")", R"("*")"},
                            {api.port(), rest.port()}),
            admin);
        Socket client = connect_to(port, 10);
        client.send_all("GET / HTTP/1.0\r\n\r\n");
        CHECK(closed_silently(client));
        CHECK(preread_failures(admin, port, "not_tls") == 1);
        // A ClientHello with no name is TLS: "*" takes it.
        CHECK(backend_after(port, captured_client_hello("openssl-no-sni.bin")) == "rest");
    }
    SECTION("sni_require_tls = false") {
        Fulcrum fulcrum = start_with_admin(
            shared_services(port, {"api", "rest"}, {R"("api.example.test")", R"("*")"},
                            {api.port(), rest.port()}, "sni_require_tls = false"),
            admin);
        CHECK(backend_after(port, "GET / HTTP/1.0\r\n\r\n") == "rest");
        CHECK(backend_after(port, captured_client_hello("curl-sni.bin")) == "api");
        CHECK(preread_failures(admin, port, "not_tls") == 0);
    }
}

TEST_CASE("no matching name and no \"*\", malformed and late hellos: closed and counted", "[sni]") {
    NamedEcho apps("apps");
    const std::uint16_t port = free_port();
    const std::uint16_t admin = free_port();
    Fulcrum fulcrum =
        start_with_admin(shared_services(port, {"apps"}, {R"("*.apps.example.test")"},
                                         {apps.port()}, R"(preread_timeout = "300ms")"),
                         admin);
    const std::string hello = captured_client_hello("openssl-tls13-sni.bin");  // api.example.test
    {
        Socket client = connect_to(port, 10);
        client.send_all(hello);
        CHECK(closed_silently(client));
    }
    {
        Socket client = connect_to(port, 10);
        client.send_all(captured_client_hello("openssl-no-sni.bin"));
        CHECK(closed_silently(client));
    }
    CHECK(preread_failures(admin, port, "no_match") == 2);
    {
        Socket client = connect_to(port, 10);
        client.send_all(std::string("\x16\x03\x01\x00\x00", 5));
        CHECK(closed_silently(client));
        CHECK(preread_failures(admin, port, "malformed") == 1);
    }
    {
        // Part of a hello, then nothing: closed once preread_timeout has passed.
        Socket client = connect_to(port, 10);
        client.send_all(hello.substr(0, 100));
        CHECK(closed_silently(client));
        CHECK(preread_failures(admin, port, "timeout") == 1);
    }
    // The one hello it takes still goes through.
    CHECK(backend_after(port, captured_client_hello("openssl-tls12-sni.bin")) == "apps");
    CHECK_THAT(fulcrum.process().output(), Contains("no service for server name api.example.test"));
}

TEST_CASE("behind a PROXY v2 header the ClientHello routes; send_proxy tells the backend",
          "[sni]") {
    const std::string hello = captured_client_hello("openssl-tls12-sni.bin");  // www.apps...
    // TCP over IPv4, 192.0.2.1:4444 -> 198.51.100.1:443.
    const std::string header(
        "\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c\xc0\x00\x02\x01\xc6\x33\x64\x01\x11\x5c\x01\xbb", 28);
    Recorder apps(header.size() + hello.size());
    NamedEcho other("other");
    const std::uint16_t port = free_port();
    Fulcrum fulcrum = start_fulcrum(
        shared_services(port, {"apps", "rest"}, {R"("*.apps.example.test")", R"("*")"},
                        {apps.port(), other.port()}, "accept_proxy = true\nsend_proxy = \"v2\""));
    {
        Socket client = connect_to(port, 10);
        send_bytewise(client, header + hello);
        // fulcrum's own header to the backend carries the same addresses, then the hello.
        CHECK(apps.received() == header + hello);
    }
    CHECK(poll_until(
        [&] {
            const std::string log = fulcrum.process().output();
            return log.find("client=192.0.2.1:4444 via=127.0.0.1:") != std::string::npos &&
                   log.find("service=apps sni=www.apps.example.test") != std::string::npos;
        },
        5s));
}

TEST_CASE("SIGHUP changes the services of a shared address without closing its listener",
          "[sni][reload]") {
    NamedEcho api("api");
    NamedEcho apps("apps");
    NamedEcho rest("rest");
    const std::uint16_t port = free_port();
    const std::string api_hello = captured_client_hello("curl-sni.bin");
    const std::string apps_hello = captured_client_hello("openssl-tls12-sni.bin");
    const std::string no_name = captured_client_hello("openssl-no-sni.bin");

    Fulcrum fulcrum = start_fulcrum(shared_services(
        port, {"api", "rest"}, {R"("api.example.test")", R"("*")"}, {api.port(), rest.port()}));
    CHECK(backend_after(port, apps_hello) == "rest");
    const std::set<std::string> listening = listening_socket_inodes(port);
    REQUIRE_FALSE(listening.empty());
    // A session routed before the reload runs on under the old routes.
    Socket before = connect_to(port, 10);
    before.send_all(no_name);
    for (char c = 0; (c = before.read_exact(1)[0]) != '\n';) {
    }
    CHECK(before.read_exact(no_name.size()) == no_name);  // the hello, echoed

    // apps added, rest removed, api's names changed.
    reload(fulcrum,
           config_for(shared_services(
               port, {"api", "apps"},
               {R"("api.example.test", "api2.example.test")", R"("*.apps.example.test")"},
               {api.port(), apps.port()})),
           1);
    CHECK_THAT(fulcrum.process().output(), Contains("service apps added; service rest removed"));
    CHECK(backend_after(port, apps_hello) == "apps");
    CHECK(backend_after(port, api_hello) == "api");
    {
        Socket client = connect_to(port, 10);
        client.send_all(no_name);
        CHECK(closed_silently(client));  // no "*" any more
    }
    CHECK(listening_socket_inodes(port) == listening);
    before.send_all("still here");
    CHECK(before.read_exact(10) == "still here");
}

TEST_CASE("nginx's ssl_preread behind fulcrum routes the forwarded hellos the same way",
          "[sni][interop]") {
    TempDir dir;
    TlsBackend api(dir, "api");
    TlsBackend apps(dir, "apps");
    TlsBackend fallback(dir, "fallback");
    const std::uint16_t nginx_port = free_port();
    const std::string d = dir.path();
    const std::string conf = dir.write("nginx.conf", R"(
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
daemon off;
master_process off;
worker_processes 1;
pid )" + d + R"(/nginx.pid;
error_log stderr info;
events { worker_connections 64; }
stream {
    map $ssl_preread_server_name $upstream {
        hostnames;
        api.example.test 127.0.0.1:)" + std::to_string(api.port()) +
                                                         R"(;
        *.apps.example.test 127.0.0.1:)" + std::to_string(apps.port()) +
                                                         R"(;
        default 127.0.0.1:)" + std::to_string(fallback.port()) +
                                                         R"(;
    }
    server {
        listen 127.0.0.1:)" + std::to_string(nginx_port) +
                                                         R"(;
        ssl_preread on;
        proxy_pass $upstream;
    }
}
)");
    ChildProcess nginx({"/usr/sbin/nginx", "-p", d, "-c", conf, "-e", "stderr"});
    REQUIRE(poll_until([&] { return nginx.listening_on(nginx_port); }, 10s));

    // fulcrum with nginx's rules on one port, and on another in front of nginx: the three
    // give each name the same backend, and nginx routes what fulcrum forwarded.
    const std::uint16_t port = free_port();
    std::vector<ServiceSpec> services =
        shared_services(port, {"api", "apps", "fallback"},
                        {R"("api.example.test")", R"("*.apps.example.test")", R"("*")"},
                        {api.port(), apps.port(), fallback.port()});
    ServiceSpec front = service_to({nginx_port}, R"(server_names = ["*"])", "to-nginx");
    services.push_back(front);
    Fulcrum fulcrum = start_fulcrum(services);
    for (const std::string name : {"api.example.test", "x.apps.example.test", "apps.example.test",
                                   "Y.Apps.Example.Test", "other.test"}) {
        INFO(name);
        const std::string by_nginx = curl(nginx_port, name);
        CHECK_THAT(by_nginx, Contains(" sni="));
        CHECK(curl(port, name) == by_nginx);
        CHECK(curl(front.listen, name) == by_nginx);
    }
}
