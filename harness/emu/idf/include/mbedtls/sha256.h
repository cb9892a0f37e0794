/* mbedtls/sha256.h: SHA-224/256 with mbed TLS 3.x names (the implementation is the virtual board's own). */
#ifndef MBEDTLS_SHA256_H
#define MBEDTLS_SHA256_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** SHA-256 input data was malformed. */
#define MBEDTLS_ERR_SHA256_BAD_INPUT_DATA                 -0x0074

#define MBEDTLS_PRIVATE(member) private_##member

/**
 * \brief          The SHA-256 context structure.
 */
typedef struct mbedtls_sha256_context {
    unsigned char MBEDTLS_PRIVATE(buffer)[64];   /*!< The data block being processed. */
    uint32_t MBEDTLS_PRIVATE(total)[2];          /*!< The number of Bytes processed.  */
    uint32_t MBEDTLS_PRIVATE(state)[8];          /*!< The intermediate digest state.  */
    int MBEDTLS_PRIVATE(is224);                  /*!< Determines which function to use: 0: Use SHA-256, or 1: Use SHA-224. */
}
mbedtls_sha256_context;

void mbedtls_sha256_init(mbedtls_sha256_context *ctx);
void mbedtls_sha256_free(mbedtls_sha256_context *ctx);
void mbedtls_sha256_clone(mbedtls_sha256_context *dst, const mbedtls_sha256_context *src);
int mbedtls_sha256_starts(mbedtls_sha256_context *ctx, int is224);
int mbedtls_sha256_update(mbedtls_sha256_context *ctx, const unsigned char *input, size_t ilen);
int mbedtls_sha256_finish(mbedtls_sha256_context *ctx, unsigned char *output);
int mbedtls_internal_sha256_process(mbedtls_sha256_context *ctx, const unsigned char data[64]);
int mbedtls_sha256(const unsigned char *input, size_t ilen, unsigned char *output, int is224);

#ifdef __cplusplus
}
#endif

#endif /* mbedtls_sha256.h */
