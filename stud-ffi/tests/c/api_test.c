/*
 * Unit-style test of every libstud function but the server (server_test.c), including NULL
 * and misuse cases; the connection half is in api_conn_test.c.
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

#include "api_test.h"

int failures;
int checks;
const char *pem_path, *cert_path, *key_path;
blob pem, cert, key, hello;

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
    CHECK_RESULT(stud_config_builder_set_client_address(b, 4), STUD_INVALID_PARAMETER);
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

    /* OCSP: NULL is refused at once; a response that is not a successful one fails the build. */
    /* A successful response's envelope: status 0, then responseBytes [0] (dummy contents). */
    static const uint8_t ocsp_ok[] = {0x30, 0x08, 0x0a, 0x01, 0x00, 0xa0, 0x03, 0x04, 0x01, 0x01};
    static const uint8_t ocsp_refused[] = {0x30, 0x03, 0x0a, 0x01, 0x06};
    CHECK_RESULT(stud_config_builder_set_ocsp_response(NULL, ocsp_ok, sizeof ocsp_ok),
                 STUD_NULL_PARAMETER);
    b = stud_config_builder_new();
    CHECK_RESULT(stud_config_builder_set_ocsp_response(b, NULL, 5), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_config_builder_add_pem(b, pem.data, pem.len), STUD_OK);
    CHECK_RESULT(stud_config_builder_set_ocsp_response(b, ocsp_refused, sizeof ocsp_refused),
                 STUD_OK);
    CHECK_RESULT(build_err(b, err, sizeof err), STUD_CONFIG_INVALID);
    CHECK(strstr(err, "OCSP response") != NULL);
    b = stud_config_builder_new();
    CHECK_RESULT(stud_config_builder_set_ocsp_response(b, ocsp_ok, sizeof ocsp_ok), STUD_OK);
    CHECK_RESULT(stud_config_builder_add_pem(b, pem.data, pem.len), STUD_OK);
    CHECK_RESULT(build_err(b, err, sizeof err), STUD_CONFIG_INVALID);
    CHECK(strstr(err, "before any certificate") != NULL);
    b = stud_config_builder_new();
    CHECK_RESULT(stud_config_builder_add_pem(b, pem.data, pem.len), STUD_OK);
    CHECK_RESULT(stud_config_builder_set_ocsp_response(b, ocsp_ok, sizeof ocsp_ok), STUD_OK);
    stud_config_free(build_ok(b));

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
    CHECK_RESULT(stud_config_builder_set_client_address(b, STUD_CLIENT_ADDRESS_PROXY_V2), STUD_OK);
    CHECK_RESULT(stud_config_builder_set_accept_proxy_header(NULL, true), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_config_builder_set_accept_proxy_header(b, true), STUD_OK);
    CHECK_RESULT(stud_config_builder_set_accept_proxy_header(b, false), STUD_OK);
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

/* Client certificates: NULL and bad arguments, build errors that name the file, a good build. */
static void test_client_verify_settings(void) {
    char err[512];
    static const uint8_t not_a_crl[] = {0x30, 0x03, 0x02, 0x01, 0x05};

    CHECK_RESULT(stud_config_builder_set_client_verify(NULL, STUD_CLIENT_VERIFY_REQUIRED),
                 STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_config_builder_add_client_ca_pem(NULL, cert.data, cert.len),
                 STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_config_builder_add_client_ca_file(NULL, cert_path), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_config_builder_add_crl_file(NULL, cert_path), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_config_builder_add_crl(NULL, not_a_crl, sizeof not_a_crl),
                 STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_config_builder_set_client_verify_depth(NULL, 1), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_config_builder_set_proxy_client_cert(NULL, true), STUD_NULL_PARAMETER);
    stud_config_builder *b = stud_config_builder_new();
    CHECK_RESULT(stud_config_builder_set_client_verify(b, 3), STUD_INVALID_PARAMETER);
    CHECK_RESULT(stud_config_builder_add_client_ca_pem(b, NULL, 4), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_config_builder_add_client_ca_file(b, NULL), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_config_builder_add_crl_file(b, NULL), STUD_NULL_PARAMETER);
    CHECK_RESULT(stud_config_builder_add_crl(b, NULL, 1), STUD_NULL_PARAMETER);
    stud_config_builder_free(b);

    /* Verification without a CA to verify against. */
    b = stud_config_builder_new();
    CHECK_RESULT(stud_config_builder_add_pem(b, pem.data, pem.len), STUD_OK);
    CHECK_RESULT(stud_config_builder_set_client_verify(b, STUD_CLIENT_VERIFY_REQUIRED), STUD_OK);
    CHECK_RESULT(build_err(b, err, sizeof err), STUD_CONFIG_INVALID);
    CHECK(strstr(err, "client-verify-ca") != NULL);

    /* A CA file that is not there, named in the message. */
    b = stud_config_builder_new();
    CHECK_RESULT(stud_config_builder_add_pem(b, pem.data, pem.len), STUD_OK);
    CHECK_RESULT(stud_config_builder_set_client_verify(b, STUD_CLIENT_VERIFY_OPTIONAL), STUD_OK);
    CHECK_RESULT(stud_config_builder_add_client_ca_file(b, "/nonexistent/clients-ca.pem"),
                 STUD_OK);
    CHECK_RESULT(build_err(b, err, sizeof err), STUD_CONFIG_READ);
    CHECK(strstr(err, "/nonexistent/clients-ca.pem") != NULL);

    /* A CA buffer with no certificate in it (a key). */
    b = stud_config_builder_new();
    CHECK_RESULT(stud_config_builder_add_pem(b, pem.data, pem.len), STUD_OK);
    CHECK_RESULT(stud_config_builder_set_client_verify(b, STUD_CLIENT_VERIFY_OPTIONAL), STUD_OK);
    CHECK_RESULT(stud_config_builder_add_client_ca_pem(b, key.data, key.len), STUD_OK);
    CHECK_RESULT(build_err(b, err, sizeof err), STUD_CONFIG_NO_CERTIFICATE);

    /* A CRL that does not parse. */
    b = stud_config_builder_new();
    CHECK_RESULT(stud_config_builder_add_pem(b, pem.data, pem.len), STUD_OK);
    CHECK_RESULT(stud_config_builder_set_client_verify(b, STUD_CLIENT_VERIFY_REQUIRED), STUD_OK);
    CHECK_RESULT(stud_config_builder_add_client_ca_file(b, cert_path), STUD_OK);
    CHECK_RESULT(stud_config_builder_add_crl(b, not_a_crl, sizeof not_a_crl), STUD_OK);
    CHECK_RESULT(build_err(b, err, sizeof err), STUD_CONFIG_INVALID);
    CHECK(strstr(err, "CRL") != NULL);

    /* Every setting at once builds, without warnings. */
    b = stud_config_builder_new();
    CHECK_RESULT(stud_config_builder_add_pem(b, pem.data, pem.len), STUD_OK);
    CHECK_RESULT(stud_config_builder_set_client_verify(b, STUD_CLIENT_VERIFY_REQUIRED), STUD_OK);
    CHECK_RESULT(stud_config_builder_add_client_ca_file(b, cert_path), STUD_OK);
    CHECK_RESULT(stud_config_builder_add_client_ca_pem(b, cert.data, cert.len), STUD_OK);
    CHECK_RESULT(stud_config_builder_set_client_verify_depth(b, 2), STUD_OK);
    CHECK_RESULT(stud_config_builder_set_client_address(b, STUD_CLIENT_ADDRESS_PROXY_V2), STUD_OK);
    CHECK_RESULT(stud_config_builder_set_proxy_client_cert(b, true), STUD_OK);
    const stud_config *config = build_ok(b);
    size_t count = 99;
    CHECK_RESULT(stud_config_warning_count(config, &count), STUD_OK);
    CHECK_EQ(count, 0);
    stud_config_free(config);
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
    test_client_verify_settings();
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
