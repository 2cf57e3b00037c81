/*
 * Unit-style test of every libstud function, including NULL and misuse cases.
 * Run by tests/c_programs.rs:
 *   api_test SITE_PEM CERT_PEM KEY_PEM CLIENT_HELLO_BIN
 * (a combined PEM, the same certificate and key split, and a TLS ClientHello for "localhost").
 * Exits 0 when every check passes; prints each failure.
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <stud.h>

static int failures;
static int checks;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        checks++;                                                                    \
        if (!(cond)) {                                                               \
            failures++;                                                              \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                            \
    } while (0)

#define CHECK_RESULT(call, expected) CHECK_EQ((unsigned)(call), (unsigned)(expected))
#define CHECK_EQ(a, b)                                                                   \
    do {                                                                                 \
        unsigned long long a_ = (unsigned long long)(a), b_ = (unsigned long long)(b);   \
        checks++;                                                                        \
        if (a_ != b_) {                                                                  \
            failures++;                                                                  \
            fprintf(stderr, "%s:%d: %s == %llu, expected %s == %llu\n", __FILE__, __LINE__, \
                    #a, a_, #b, b_);                                                     \
        }                                                                                \
    } while (0)

typedef struct {
    uint8_t *data;
    size_t len;
} blob;

static blob read_file(const char *path) {
    blob b = {NULL, 0};
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        exit(2);
    }
    size_t cap = 4096;
    b.data = malloc(cap);
    size_t n;
    while (b.data && (n = fread(b.data + b.len, 1, cap - b.len, f)) > 0) {
        b.len += n;
        if (b.len == cap) {
            cap *= 2;
            uint8_t *grown = realloc(b.data, cap);
            if (!grown) {
                free(b.data);
                b.data = NULL;
            }
            b.data = grown;
        }
    }
    fclose(f);
    if (!b.data) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return b;
}

static struct sockaddr_in v4(const char *ip, uint16_t port) {
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    inet_pton(AF_INET, ip, &a.sin_addr);
    return a;
}

static const char *pem_path, *cert_path, *key_path;
static blob pem, cert, key, hello;

/* ------------------------------------------------------------------ version and results */

static void test_version_and_results(void) {
    const char *v = stud_version();
    CHECK(v != NULL && v[0] >= '0' && v[0] <= '9' && strchr(v, '.') != NULL);

    char buf[128];
    size_t n = 12345;
    CHECK_RESULT(stud_result_message(STUD_OK, buf, sizeof buf, &n), STUD_OK);
    CHECK(strcmp(buf, "success") == 0);
    CHECK_EQ(n, strlen("success"));
    CHECK_RESULT(stud_result_message(STUD_CONFIG_READ, buf, sizeof buf, &n), STUD_OK);
    CHECK(strstr(buf, "read") != NULL);
    CHECK_RESULT(stud_result_message(424242, buf, sizeof buf, &n), STUD_OK);
    CHECK(strstr(buf, "unknown") != NULL);
    /* Too small: nothing written, n untouched. */
    n = 777;
    buf[0] = 'X';
    CHECK_RESULT(stud_result_message(STUD_NULL_PARAMETER, buf, 4, &n), STUD_INSUFFICIENT_SIZE);
    CHECK_EQ(n, 777);
    CHECK(buf[0] == 'X');
    CHECK_RESULT(stud_result_message(STUD_OK, NULL, 10, &n), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_result_message(STUD_OK, buf, sizeof buf, NULL), STUD_NULL_PARAMETER);
    /* Every code up to 7199 renders into 128 bytes. */
    for (uint32_t code = 7000; code < 7200; code++) {
        CHECK_RESULT(stud_result_message(code, buf, sizeof buf, &n), STUD_OK);
    }
}

/* ------------------------------------------------------------------ configuration */

static const stud_config *build_ok(stud_config_builder *b) {
    const stud_config *config = NULL;
    char err[512] = "";
    stud_result r = stud_config_builder_build(b, err, sizeof err, &config);
    if (r != STUD_OK) {
        fprintf(stderr, "build failed (%u): %s\n", (unsigned)r, err);
    }
    CHECK_RESULT(r, STUD_OK);
    CHECK(config != NULL);
    return config;
}

static stud_result build_err(stud_config_builder *b, char *err, size_t err_len) {
    const stud_config *config = (const stud_config *)0x1;
    stud_result r = stud_config_builder_build(b, err, err_len, &config);
    CHECK(config == (const stud_config *)0x1); /* untouched on error */
    return r;
}

static void test_builder_null_and_invalid(void) {
    uint16_t versions[] = {STUD_TLS_1_2, STUD_TLS_1_3};
    stud_slice_bytes alpn[] = {{(const uint8_t *)"h2", 2}, {(const uint8_t *)"http/1.1", 8}};

    stud_config_builder_free(NULL);
    CHECK_RESULT(stud_config_builder_add_pem(NULL, pem.data, pem.len), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_config_builder_add_pem_file(NULL, pem_path), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_config_builder_add_cert_and_key_files(NULL, cert_path, key_path),
                 STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_config_builder_add_cert_and_key_pem(NULL, cert.data, cert.len, key.data,
                                                          key.len),
                 STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_config_builder_set_versions(NULL, versions, 2), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_config_builder_set_ciphers(NULL, "ECDHE-RSA-AES128-GCM-SHA256"),
                 STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_config_builder_set_prefer_server_ciphers(NULL, true), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_config_builder_set_alpn_protocols(NULL, alpn, 2), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_config_builder_set_session_tickets(NULL, true), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_config_builder_set_handshake_timeout_ms(NULL, 1), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_config_builder_set_backend_connect_timeout_ms(NULL, 1), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_config_builder_set_idle_timeout_ms(NULL, 1), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_config_builder_set_linger_timeout_ms(NULL, 1), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_config_builder_set_to_backend_budget(NULL, 4096), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_config_builder_set_to_client_budget(NULL, 4096), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_config_builder_set_client_address(NULL, STUD_CLIENT_ADDRESS_NONE),
                 STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_config_builder_set_ticket_secret(NULL, (const uint8_t *)"x", 1),
                 STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_config_builder_set_ticket_secret_file(NULL, key_path), STUD_NULL_PARAMETER);

    stud_config_builder *b = stud_config_builder_new();
    CHECK(b != NULL);
    CHECK_RESULT(stud_config_builder_add_pem(b, NULL, 10), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_config_builder_add_pem_file(b, NULL), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_config_builder_add_cert_and_key_files(b, cert_path, NULL),
                 STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_config_builder_add_cert_and_key_files(b, NULL, key_path),
                 STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_config_builder_add_cert_and_key_pem(b, cert.data, cert.len, NULL, 3),
                 STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_config_builder_set_versions(b, NULL, 1), STUD_NULL_PARAMETER);
    uint16_t tls11[] = {0x0302};
    CHECK_RESULT(stud_config_builder_set_versions(b, tls11, 1), STUD_INVALID_PARAMETER);
    CHECK_RESULT(stud_config_builder_set_ciphers(b, NULL), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_config_builder_set_ciphers(b, "\xff\xfe"), STUD_INVALID_PARAMETER);
    CHECK_RESULT(stud_config_builder_set_alpn_protocols(b, NULL, 1), STUD_NULL_PARAMETER);
    stud_slice_bytes empty_name[] = {{(const uint8_t *)"", 0}};
    CHECK_RESULT(stud_config_builder_set_alpn_protocols(b, empty_name, 1), STUD_INVALID_PARAMETER);
    stud_slice_bytes null_name[] = {{NULL, 2}};
    CHECK_RESULT(stud_config_builder_set_alpn_protocols(b, null_name, 1), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_config_builder_set_client_address(b, 3), STUD_INVALID_PARAMETER);
    CHECK_RESULT(stud_config_builder_set_ticket_secret(b, NULL, 32), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_config_builder_set_ticket_secret_file(b, NULL), STUD_NULL_PARAMETER);
    /* Valid calls. */
    CHECK_RESULT(stud_config_builder_set_versions(b, versions, 2), STUD_OK);
    CHECK_RESULT(stud_config_builder_set_alpn_protocols(b, alpn, 2), STUD_OK);
    CHECK_RESULT(stud_config_builder_set_alpn_protocols(b, NULL, 0), STUD_OK);
    CHECK_RESULT(stud_config_builder_add_pem(b, NULL, 0), STUD_OK); /* empty PEM: fails later */
    stud_config_builder_free(b);

    /* build() with NULL builder: nothing to free. With NULL out: the builder is freed anyway
     * (the sanitizers and valgrind would report a leak otherwise). */
    const stud_config *config = NULL;
    CHECK_RESULT(stud_config_builder_build(NULL, NULL, 0, &config), STUD_NULL_PARAMETER);
    b = stud_config_builder_new();
    CHECK_RESULT(stud_config_builder_add_pem(b, pem.data, pem.len), STUD_OK);
    char err[256] = "";
    CHECK_RESULT(stud_config_builder_build(b, err, sizeof err, NULL), STUD_NULL_PARAMETER);
    CHECK(strstr(err, "NULL") != NULL);
}

static void test_build_errors(void) {
    char err[512];

    stud_config_builder *b = stud_config_builder_new();
    CHECK_RESULT(build_err(b, err, sizeof err), STUD_CONFIG_NO_IDENTITY);
    CHECK(strstr(err, "no certificate") != NULL);

    b = stud_config_builder_new();
    CHECK_RESULT(stud_config_builder_add_pem_file(b, "/nonexistent/stud-test.pem"), STUD_OK);
    CHECK_RESULT(build_err(b, err, sizeof err), STUD_CONFIG_READ);
    CHECK(strstr(err, "/nonexistent/stud-test.pem") != NULL);

    /* Truncated error text: always NUL-terminated within err_len. */
    b = stud_config_builder_new();
    CHECK_RESULT(stud_config_builder_add_pem_file(b, "/nonexistent/stud-test.pem"), STUD_OK);
    memset(err, 'X', sizeof err);
    CHECK_RESULT(build_err(b, err, 8), STUD_CONFIG_READ);
    CHECK_EQ(strlen(err), 7);

    /* No error buffer at all is fine. */
    b = stud_config_builder_new();
    CHECK_RESULT(build_err(b, NULL, 0), STUD_CONFIG_NO_IDENTITY);

    b = stud_config_builder_new();
    CHECK_RESULT(stud_config_builder_add_pem(b, (const uint8_t *)"not a pem", 9), STUD_OK);
    stud_result r = build_err(b, err, sizeof err);
    CHECK(r == STUD_CONFIG_NO_CERTIFICATE || r == STUD_CONFIG_PEM);

    b = stud_config_builder_new();
    CHECK_RESULT(stud_config_builder_add_pem(b, pem.data, pem.len), STUD_OK);
    CHECK_RESULT(stud_config_builder_set_handshake_timeout_ms(b, 0), STUD_OK);
    CHECK_RESULT(build_err(b, err, sizeof err), STUD_CONFIG_INVALID);
    CHECK(strstr(err, "handshake timeout") != NULL);

    b = stud_config_builder_new();
    CHECK_RESULT(stud_config_builder_add_pem(b, pem.data, pem.len), STUD_OK);
    CHECK_RESULT(stud_config_builder_set_to_backend_budget(b, 100), STUD_OK);
    CHECK_RESULT(build_err(b, err, sizeof err), STUD_CONFIG_INVALID);

    b = stud_config_builder_new();
    CHECK_RESULT(stud_config_builder_add_pem(b, pem.data, pem.len), STUD_OK);
    CHECK_RESULT(stud_config_builder_set_ciphers(b, "NO-SUCH-CIPHER"), STUD_OK);
    CHECK_RESULT(build_err(b, err, sizeof err), STUD_CONFIG_UNKNOWN_CIPHER);
    CHECK(strstr(err, "NO-SUCH-CIPHER") != NULL);

    b = stud_config_builder_new();
    CHECK_RESULT(stud_config_builder_add_pem(b, pem.data, pem.len), STUD_OK);
    CHECK_RESULT(stud_config_builder_set_versions(b, NULL, 0), STUD_OK);
    CHECK_RESULT(build_err(b, err, sizeof err), STUD_CONFIG_NO_PROTOCOL_VERSION);

    /* A ticket secret too short to derive keys from, then one in a missing file. */
    b = stud_config_builder_new();
    CHECK_RESULT(stud_config_builder_add_pem(b, pem.data, pem.len), STUD_OK);
    CHECK_RESULT(stud_config_builder_set_ticket_secret(b, (const uint8_t *)"short", 5), STUD_OK);
    r = build_err(b, err, sizeof err);
    CHECK(r != STUD_OK);
    b = stud_config_builder_new();
    CHECK_RESULT(stud_config_builder_add_pem(b, pem.data, pem.len), STUD_OK);
    CHECK_RESULT(stud_config_builder_set_ticket_secret_file(b, "/nonexistent/stud-ticket"),
                 STUD_OK);
    CHECK_RESULT(build_err(b, err, sizeof err), STUD_CONFIG_READ);
    CHECK(strstr(err, "/nonexistent/stud-ticket") != NULL);

    /* A "key" that is only a certificate. */
    b = stud_config_builder_new();
    CHECK_RESULT(stud_config_builder_add_cert_and_key_pem(b, cert.data, cert.len, cert.data,
                                                          cert.len),
                 STUD_OK);
    CHECK_RESULT(build_err(b, err, sizeof err), STUD_CONFIG_NO_PRIVATE_KEY);
}

static void test_build_ok_and_warnings(void) {
    stud_slice_bytes alpn[] = {{(const uint8_t *)"http/1.1", 8}};
    uint16_t versions[] = {STUD_TLS_1_3, STUD_TLS_1_2};

    stud_config_builder *b = stud_config_builder_new();
    CHECK_RESULT(stud_config_builder_add_pem_file(b, pem_path), STUD_OK);
    CHECK_RESULT(stud_config_builder_set_versions(b, versions, 2), STUD_OK);
    CHECK_RESULT(stud_config_builder_set_ciphers(
                     b, "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-SHA"),
                 STUD_OK);
    CHECK_RESULT(stud_config_builder_set_prefer_server_ciphers(b, false), STUD_OK);
    CHECK_RESULT(stud_config_builder_set_alpn_protocols(b, alpn, 1), STUD_OK);
    CHECK_RESULT(stud_config_builder_set_session_tickets(b, false), STUD_OK);
    CHECK_RESULT(stud_config_builder_set_handshake_timeout_ms(b, 5000), STUD_OK);
    CHECK_RESULT(stud_config_builder_set_backend_connect_timeout_ms(b, 2000), STUD_OK);
    CHECK_RESULT(stud_config_builder_set_idle_timeout_ms(b, 0), STUD_OK);
    CHECK_RESULT(stud_config_builder_set_idle_timeout_ms(b, 60000), STUD_OK);
    CHECK_RESULT(stud_config_builder_set_linger_timeout_ms(b, 1000), STUD_OK);
    CHECK_RESULT(stud_config_builder_set_to_backend_budget(b, 8192), STUD_OK);
    CHECK_RESULT(stud_config_builder_set_to_client_budget(b, 32768), STUD_OK);
    CHECK_RESULT(stud_config_builder_set_client_address(b, STUD_CLIENT_ADDRESS_PROXY_V1), STUD_OK);
    CHECK_RESULT(stud_config_builder_set_ticket_secret(
                     b, (const uint8_t *)"0123456789abcdef0123456789abcdef", 32),
                 STUD_OK);
    const stud_config *config = build_ok(b);

    size_t count = 0;
    CHECK_RESULT(stud_config_warning_count(config, &count), STUD_OK);
    CHECK_EQ(count, 1);
    char text[256];
    size_t n = 0;
    CHECK_RESULT(stud_config_warning(config, 0, text, sizeof text, &n), STUD_OK);
    CHECK(strstr(text, "ECDHE-RSA-AES256-SHA") != NULL);
    CHECK_EQ(n, strlen(text));
    CHECK_RESULT(stud_config_warning(config, 1, text, sizeof text, &n), STUD_NOT_FOUND);
    CHECK_RESULT(stud_config_warning(config, 0, text, 5, &n), STUD_INSUFFICIENT_SIZE);
    CHECK_RESULT(stud_config_warning(config, 0, NULL, 5, &n), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_config_warning(config, 0, text, sizeof text, NULL), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_config_warning(NULL, 0, text, sizeof text, &n), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_config_warning_count(NULL, &count), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_config_warning_count(config, NULL), STUD_NULL_PARAMETER);
    stud_config_free(config);
    stud_config_free(NULL);

    /* The other ways of giving the certificate. */
    b = stud_config_builder_new();
    CHECK_RESULT(stud_config_builder_add_pem(b, pem.data, pem.len), STUD_OK);
    stud_config_free(build_ok(b));
    b = stud_config_builder_new();
    CHECK_RESULT(stud_config_builder_add_cert_and_key_files(b, cert_path, key_path), STUD_OK);
    CHECK_RESULT(stud_config_builder_add_pem_file(b, pem_path), STUD_OK); /* a second one */
    stud_config_free(build_ok(b));
    b = stud_config_builder_new();
    CHECK_RESULT(stud_config_builder_add_cert_and_key_pem(b, cert.data, cert.len, key.data,
                                                          key.len),
                 STUD_OK);
    config = build_ok(b);
    CHECK_RESULT(stud_config_warning_count(config, &count), STUD_OK);
    CHECK_EQ(count, 0);
    stud_config_free(config);
}

/* ------------------------------------------------------------------ connections */

static const stud_config *default_config(void) {
    stud_config_builder *b = stud_config_builder_new();
    CHECK_RESULT(stud_config_builder_add_pem(b, pem.data, pem.len), STUD_OK);
    CHECK_RESULT(stud_config_builder_set_handshake_timeout_ms(b, 10000), STUD_OK);
    return build_ok(b);
}

static stud_conn *new_conn(const stud_config *config, uint64_t now) {
    struct sockaddr_in peer = v4("192.0.2.7", 5555), local = v4("192.0.2.1", 443);
    stud_conn *conn = NULL;
    CHECK_RESULT(stud_conn_new(config, now, (struct sockaddr *)&peer, sizeof peer,
                               (struct sockaddr *)&local, sizeof local, &conn),
                 STUD_OK);
    CHECK(conn != NULL);
    return conn;
}

/* Polls actions until NONE; returns the close reason if a close came, else STUD_CLOSE_NONE. */
static stud_close_reason drain_actions(stud_conn *conn, int *connects) {
    stud_close_reason closed = STUD_CLOSE_NONE;
    for (int i = 0; i < 16; i++) {
        stud_action action;
        stud_close_reason reason;
        CHECK_RESULT(stud_conn_poll_action(conn, &action, &reason), STUD_OK);
        if (action == STUD_ACTION_NONE) {
            return closed;
        }
        if (action == STUD_ACTION_CLOSE) {
            closed = reason;
        } else {
            CHECK_EQ(reason, STUD_CLOSE_NONE);
        }
        if (action == STUD_ACTION_CONNECT_BACKEND && connects) {
            (*connects)++;
        }
    }
    CHECK(!"poll_action never returned STUD_ACTION_NONE");
    return closed;
}

static void test_conn_new_and_addresses(void) {
    const stud_config *config = default_config();
    struct sockaddr_in peer = v4("192.0.2.7", 5555), local = v4("192.0.2.1", 443);
    struct sockaddr *p = (struct sockaddr *)&peer, *l = (struct sockaddr *)&local;
    stud_conn *conn = (stud_conn *)0x1;

    CHECK_RESULT(stud_conn_new(NULL, 0, p, sizeof peer, l, sizeof local, &conn),
                 STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_new(config, 0, NULL, sizeof peer, l, sizeof local, &conn),
                 STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_new(config, 0, p, sizeof peer, NULL, sizeof local, &conn),
                 STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_new(config, 0, p, sizeof peer, l, sizeof local, NULL),
                 STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_new(config, 0, p, sizeof peer - 1, l, sizeof local, &conn),
                 STUD_INVALID_PARAMETER);
    CHECK_RESULT(stud_conn_new(config, 0, p, 1, l, sizeof local, &conn), STUD_INVALID_PARAMETER);
    struct sockaddr_un unix_addr;
    memset(&unix_addr, 0, sizeof unix_addr);
    unix_addr.sun_family = AF_UNIX;
    CHECK_RESULT(stud_conn_new(config, 0, (struct sockaddr *)&unix_addr, sizeof unix_addr, l,
                               sizeof local, &conn),
                 STUD_INVALID_PARAMETER);
    CHECK(conn == (stud_conn *)0x1); /* untouched on every error */

    /* IPv6 peer, IPv4 local; addresses come back as given. */
    struct sockaddr_in6 peer6;
    memset(&peer6, 0, sizeof peer6);
    peer6.sin6_family = AF_INET6;
    peer6.sin6_port = htons(40000);
    inet_pton(AF_INET6, "2001:db8::7", &peer6.sin6_addr);
    CHECK_RESULT(stud_conn_new(config, 0, (struct sockaddr *)&peer6, sizeof peer6, l,
                               sizeof local, &conn),
                 STUD_OK);
    /* The connection holds its own reference: freeing the config first is fine. */
    stud_config_free(config);

    struct sockaddr_storage ss;
    socklen_t len = 0;
    CHECK_RESULT(stud_conn_peer_addr(conn, &ss, &len), STUD_OK);
    CHECK_EQ(len, sizeof peer6);
    CHECK(memcmp(&ss, &peer6, sizeof peer6) == 0);
    CHECK_RESULT(stud_conn_local_addr(conn, &ss, &len), STUD_OK);
    CHECK_EQ(len, sizeof local);
    CHECK(memcmp(&ss, &local, sizeof local) == 0);
    CHECK_RESULT(stud_conn_peer_addr(NULL, &ss, &len), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_peer_addr(conn, NULL, &len), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_local_addr(conn, &ss, NULL), STUD_NULL_PARAMETER);
    stud_conn_free(conn);
    stud_conn_free(NULL);
}

static void test_conn_null_handles(void) {
    uint8_t buf[16] = {0};
    size_t n;
    uint32_t u;
    uint64_t t;
    bool yes;
    stud_event ev;
    stud_action action;
    stud_close_reason reason;
    stud_handshake_info info;
    char text[64];

    CHECK_RESULT(stud_conn_handle_client_data(NULL, 0, buf, 1, &n), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_handle_backend_data(NULL, 0, buf, 1, &n), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_handle_client_eof(NULL, 0), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_handle_client_reset(NULL, 0), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_handle_backend_connected(NULL, 0), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_handle_backend_connect_failed(NULL, 0), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_handle_backend_eof(NULL, 0), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_handle_backend_reset(NULL, 0), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_handle_timeout(NULL, 0), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_abort(NULL, 0), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_poll_event(NULL, &ev), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_poll_action(NULL, &action, &reason), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_close_message(NULL, text, sizeof text, &n), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_handshake_info(NULL, &info), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_poll_client_transmit(NULL, 0, buf, sizeof buf, &n),
                 STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_poll_backend_transmit(NULL, 0, buf, sizeof buf, &n),
                 STUD_NULL_PARAMETER);
    CHECK_EQ(stud_conn_write_client(NULL, 0, NULL, NULL, &n), EINVAL);
    CHECK_EQ(stud_conn_write_backend(NULL, 0, NULL, NULL, &n), EINVAL);
    CHECK_RESULT(stud_conn_poll_timeout(NULL, &t), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_interest(NULL, &u), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_client_read_capacity(NULL, &n), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_backend_read_capacity(NULL, &n), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_buffered(NULL, &n, &n), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_is_handshaking(NULL, &yes), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_is_closed(NULL, &yes), STUD_NULL_PARAMETER);
}

static void test_conn_null_out_params(stud_conn *conn) {
    uint8_t buf[16] = {0};
    size_t n;
    CHECK_RESULT(stud_conn_handle_client_data(conn, 0, NULL, 1, &n), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_handle_client_data(conn, 0, buf, 1, NULL), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_handle_backend_data(conn, 0, NULL, 1, &n), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_handle_backend_data(conn, 0, buf, 1, NULL), STUD_NULL_PARAMETER);
    stud_action action;
    stud_close_reason reason;
    CHECK_RESULT(stud_conn_poll_action(conn, NULL, &reason), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_poll_action(conn, &action, NULL), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_poll_event(conn, NULL), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_close_message(conn, NULL, 10, &n), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_handshake_info(conn, NULL), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_poll_client_transmit(conn, 0, NULL, 10, &n), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_poll_client_transmit(conn, 0, buf, sizeof buf, NULL),
                 STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_poll_backend_transmit(conn, 0, NULL, 10, &n), STUD_NULL_PARAMETER);
    CHECK_EQ(stud_conn_write_client(conn, 0, NULL, NULL, &n), EINVAL);
    CHECK_RESULT(stud_conn_poll_timeout(conn, NULL), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_interest(conn, NULL), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_client_read_capacity(conn, NULL), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_backend_read_capacity(conn, NULL), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_buffered(conn, NULL, &n), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_buffered(conn, &n, NULL), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_is_handshaking(conn, NULL), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_conn_is_closed(conn, NULL), STUD_NULL_PARAMETER);
}

/* A write callback that takes at most `budget` bytes, then says EAGAIN, or fails with `fail`. */
typedef struct {
    uint8_t data[65536];
    size_t len;
    size_t budget;
    int fail;
    int calls;
} sink;

static stud_io_result sink_write(void *userdata, const uint8_t *buf, size_t len, size_t *out_n) {
    sink *s = userdata;
    s->calls++;
    if (s->fail) {
        return s->fail;
    }
    size_t room = sizeof s->data - s->len;
    size_t n = len < s->budget ? len : s->budget;
    n = n < room ? n : room;
    if (n == 0) {
        return EAGAIN;
    }
    memcpy(s->data + s->len, buf, n);
    s->len += n;
    s->budget -= n;
    *out_n = n;
    return 0;
}

static void test_conn_handshake_start(void) {
    const stud_config *config = default_config();
    uint64_t now = 1000000;
    stud_conn *conn = new_conn(config, now);
    test_conn_null_out_params(conn);

    bool yes = false;
    CHECK_RESULT(stud_conn_is_handshaking(conn, &yes), STUD_OK);
    CHECK(yes);
    CHECK_RESULT(stud_conn_is_closed(conn, &yes), STUD_OK);
    CHECK(!yes);
    uint32_t interest = 0;
    CHECK_RESULT(stud_conn_interest(conn, &interest), STUD_OK);
    CHECK_EQ(interest, STUD_INTEREST_CLIENT_READ);
    uint64_t deadline = 0;
    CHECK_RESULT(stud_conn_poll_timeout(conn, &deadline), STUD_OK);
    CHECK_EQ(deadline, now + 10000 * 1000ULL);
    size_t cap = 0;
    CHECK_RESULT(stud_conn_client_read_capacity(conn, &cap), STUD_OK);
    CHECK(cap >= hello.len);
    CHECK_RESULT(stud_conn_backend_read_capacity(conn, &cap), STUD_OK);
    CHECK_EQ(cap, 0);
    stud_handshake_info info;
    CHECK_RESULT(stud_conn_handshake_info(conn, &info), STUD_NOT_FOUND);
    char text[256];
    size_t n = 0;
    CHECK_RESULT(stud_conn_close_message(conn, text, sizeof text, &n), STUD_NOT_FOUND);
    stud_event ev = STUD_EVENT_HANDSHAKE_COMPLETE;
    CHECK_RESULT(stud_conn_poll_event(conn, &ev), STUD_OK);
    CHECK_EQ(ev, STUD_EVENT_NONE);
    CHECK_EQ(drain_actions(conn, NULL), STUD_CLOSE_NONE);

    /* Empty input is fine, even with a NULL pointer. */
    CHECK_RESULT(stud_conn_handle_client_data(conn, now, NULL, 0, &n), STUD_OK);
    CHECK_EQ(n, 0);
    /* The ClientHello is taken whole; the server's first flight waits for the client. */
    CHECK_RESULT(stud_conn_handle_client_data(conn, now, hello.data, hello.len, &n), STUD_OK);
    CHECK_EQ(n, hello.len);
    CHECK_RESULT(stud_conn_interest(conn, &interest), STUD_OK);
    CHECK(interest & STUD_INTEREST_CLIENT_WRITE);
    CHECK(!(interest & (STUD_INTEREST_BACKEND_READ | STUD_INTEREST_BACKEND_WRITE)));
    size_t to_backend = 1, to_client = 0;
    CHECK_RESULT(stud_conn_buffered(conn, &to_backend, &to_client), STUD_OK);
    CHECK_EQ(to_backend, 0);
    CHECK(to_client > 0);
    /* No backend yet: no connect action before the handshake completes, nothing for it. */
    int connects = 0;
    CHECK_EQ(drain_actions(conn, &connects), STUD_CLOSE_NONE);
    CHECK_EQ(connects, 0);
    uint8_t buf[32768];
    CHECK_RESULT(stud_conn_poll_backend_transmit(conn, now, buf, sizeof buf, &n), STUD_OK);
    CHECK_EQ(n, 0);
    CHECK_RESULT(stud_conn_handle_backend_data(conn, now, (const uint8_t *)"x", 1, &n), STUD_OK);
    CHECK_EQ(n, 0);

    /* Zero-copy write through the callback: partial writes, EAGAIN, then errors. */
    sink *s = calloc(1, sizeof *s);
    CHECK(s != NULL);
    s->budget = 10;
    n = 999;
    CHECK_EQ(stud_conn_write_client(conn, now, sink_write, s, &n), 0);
    CHECK_EQ(n, 10);
    CHECK(s->data[0] == 0x16); /* a TLS handshake record */
    s->budget = 0;
    CHECK_EQ(stud_conn_write_client(conn, now, sink_write, s, &n), 0);
    CHECK_EQ(n, 0);
    s->fail = EPIPE;
    CHECK_EQ(stud_conn_write_client(conn, now, sink_write, s, &n), EPIPE);
    s->fail = 0;
    /* The rest through a caller buffer; the stream continues where the callback stopped. */
    CHECK_RESULT(stud_conn_poll_client_transmit(conn, now, buf, sizeof buf, &n), STUD_OK);
    CHECK(n > 0);
    CHECK_EQ(n + 10, to_client);
    CHECK_RESULT(stud_conn_poll_client_transmit(conn, now, buf, sizeof buf, &n), STUD_OK);
    CHECK_EQ(n, 0);
    CHECK_RESULT(stud_conn_interest(conn, &interest), STUD_OK);
    CHECK(!(interest & STUD_INTEREST_CLIENT_WRITE));
    /* Nothing to write for the backend before it is connected. */
    CHECK_EQ(stud_conn_write_backend(conn, now, sink_write, s, &n), 0);
    CHECK_EQ(n, 0);
    CHECK_EQ(stud_conn_write_backend(conn, now, NULL, s, &n), EINVAL);
    free(s);

    /* The handshake deadline passes: closed with a reason, and nothing after. */
    CHECK_RESULT(stud_conn_handle_timeout(conn, now + 5000), STUD_OK); /* early: harmless */
    CHECK_EQ(drain_actions(conn, NULL), STUD_CLOSE_NONE);
    CHECK_RESULT(stud_conn_handle_timeout(conn, deadline), STUD_OK);
    CHECK_EQ(drain_actions(conn, NULL), STUD_CLOSE_HANDSHAKE_TIMEOUT);
    CHECK_EQ(drain_actions(conn, NULL), STUD_CLOSE_NONE);
    CHECK_RESULT(stud_conn_is_closed(conn, &yes), STUD_OK);
    CHECK(yes);
    CHECK_RESULT(stud_conn_poll_timeout(conn, &deadline), STUD_OK);
    CHECK_EQ(deadline, STUD_NO_DEADLINE);
    CHECK_RESULT(stud_conn_close_message(conn, text, sizeof text, &n), STUD_OK);
    CHECK(strcmp(text, "handshake_timeout") == 0);
    CHECK_EQ(n, strlen("handshake_timeout"));
    CHECK_RESULT(stud_conn_close_message(conn, text, 3, &n), STUD_INSUFFICIENT_SIZE);
    /* Inputs after the close are harmless. */
    CHECK_RESULT(stud_conn_handle_client_data(conn, deadline, hello.data, hello.len, &n), STUD_OK);
    CHECK_RESULT(stud_conn_handle_backend_eof(conn, deadline), STUD_OK);
    CHECK_EQ(drain_actions(conn, NULL), STUD_CLOSE_NONE);
    stud_conn_free(conn);
    stud_config_free(config);
}

static void test_conn_close_reasons(void) {
    const stud_config *config = default_config();
    char text[256];
    size_t n;

    /* Garbage instead of a ClientHello: an alert goes out, then the close. */
    stud_conn *conn = new_conn(config, 0);
    const uint8_t junk[] = "GET / HTTP/1.1\r\nHost: example\r\n\r\n";
    CHECK_RESULT(stud_conn_handle_client_data(conn, 1, junk, sizeof junk - 1, &n), STUD_OK);
    stud_close_reason reason = drain_actions(conn, NULL);
    uint8_t buf[4096];
    for (int i = 0; i < 4 && reason == STUD_CLOSE_NONE; i++) {
        CHECK_RESULT(stud_conn_poll_client_transmit(conn, 1, buf, sizeof buf, &n), STUD_OK);
        reason = drain_actions(conn, NULL);
    }
    CHECK_EQ(reason, STUD_CLOSE_HANDSHAKE_FAILED);
    CHECK_RESULT(stud_conn_close_message(conn, text, sizeof text, &n), STUD_OK);
    CHECK(strncmp(text, "handshake_failed: ", 18) == 0);
    stud_conn_free(conn);

    conn = new_conn(config, 0);
    CHECK_RESULT(stud_conn_handle_client_eof(conn, 1), STUD_OK);
    CHECK_EQ(drain_actions(conn, NULL), STUD_CLOSE_CLIENT_CLOSED_IN_HANDSHAKE);
    stud_conn_free(conn);

    conn = new_conn(config, 0);
    CHECK_RESULT(stud_conn_handle_client_reset(conn, 1), STUD_OK);
    CHECK_EQ(drain_actions(conn, NULL), STUD_CLOSE_CLIENT_CLOSED_IN_HANDSHAKE);
    stud_conn_free(conn);

    conn = new_conn(config, 0);
    CHECK_RESULT(stud_conn_abort(conn, 1), STUD_OK);
    CHECK_EQ(drain_actions(conn, NULL), STUD_CLOSE_ABORTED);
    stud_conn_free(conn);

    /* Backend inputs before any backend was asked for are ignored. */
    conn = new_conn(config, 0);
    CHECK_RESULT(stud_conn_handle_backend_connected(conn, 1), STUD_OK);
    CHECK_RESULT(stud_conn_handle_backend_connect_failed(conn, 1), STUD_OK);
    CHECK_RESULT(stud_conn_handle_backend_reset(conn, 1), STUD_OK);
    CHECK_RESULT(stud_conn_handle_backend_eof(conn, 1), STUD_OK);
    CHECK_EQ(drain_actions(conn, NULL), STUD_CLOSE_NONE);
    bool yes = false;
    CHECK_RESULT(stud_conn_is_handshaking(conn, &yes), STUD_OK);
    CHECK(yes);
    /* Freed without being closed: fine. */
    stud_conn_free(conn);
    stud_config_free(config);

    /* Reason names are stable. */
    CHECK(strcmp(stud_close_reason_name(STUD_CLOSE_NONE), "none") == 0);
    CHECK(strcmp(stud_close_reason_name(STUD_CLOSE_COMPLETED), "completed") == 0);
    CHECK(strcmp(stud_close_reason_name(STUD_CLOSE_HANDSHAKE_FAILED), "handshake_failed") == 0);
    CHECK(strcmp(stud_close_reason_name(STUD_CLOSE_BACKEND_CONNECT_TIMEOUT),
                 "backend_connect_timeout") == 0);
    CHECK(strcmp(stud_close_reason_name(STUD_CLOSE_ABORTED), "aborted") == 0);
    CHECK(strcmp(stud_close_reason_name(STUD_CLOSE_OTHER), "unknown") == 0);
    CHECK(strcmp(stud_close_reason_name(1000), "unknown") == 0);
    for (uint32_t r = 0; r <= 12; r++) {
        CHECK(strcmp(stud_close_reason_name(r), "unknown") != 0);
    }
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s SITE_PEM CERT_PEM KEY_PEM CLIENT_HELLO\n", argv[0]);
        return 2;
    }
    pem_path = argv[1];
    cert_path = argv[2];
    key_path = argv[3];
    pem = read_file(pem_path);
    cert = read_file(cert_path);
    key = read_file(key_path);
    hello = read_file(argv[4]);

    test_version_and_results();
    test_builder_null_and_invalid();
    test_build_errors();
    test_build_ok_and_warnings();
    test_conn_new_and_addresses();
    test_conn_null_handles();
    test_conn_handshake_start();
    test_conn_close_reasons();

    free(pem.data);
    free(cert.data);
    free(key.data);
    free(hello.data);
    printf("%d checks, %d failures\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
