/*
 * Shared by the C API test's files: check macros, fixtures and the test groups' entry points.
 */
#ifndef STUD_API_TEST_H
#define STUD_API_TEST_H

#include <stdint.h>
#include <stdio.h>
#include <stud.h>

extern int failures;
extern int checks;

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

/* Fixtures, loaded by main from the files the driving test wrote. */
extern const char *pem_path, *cert_path, *key_path;
extern blob pem, cert, key, hello;

/* Connection tests (api_conn_test.c). */
void test_conn_new_and_addresses(void);
void test_conn_null_handles(void);
void test_conn_handshake_start(void);
void test_conn_close_reasons(void);

#endif
