/* SHA-256 (FIPS 180-4) behind mbed TLS 3.x's mbedtls_sha256_* names; written for this runtime. */
#include <string.h>

#include "mbedtls/sha256.h"

#define ROTR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

void mbedtls_sha256_init(mbedtls_sha256_context *ctx) { memset(ctx, 0, sizeof(*ctx)); }

void mbedtls_sha256_free(mbedtls_sha256_context *ctx)
{
    if (ctx) memset(ctx, 0, sizeof(*ctx));
}

void mbedtls_sha256_clone(mbedtls_sha256_context *dst, const mbedtls_sha256_context *src) { *dst = *src; }

int mbedtls_sha256_starts(mbedtls_sha256_context *ctx, int is224)
{
    static const uint32_t h256[8] = { 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                      0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19 };
    static const uint32_t h224[8] = { 0xc1059ed8, 0x367cd507, 0x3070dd17, 0xf70e5939,
                                      0xffc00b31, 0x68581511, 0x64f98fa7, 0xbefa4fa4 };
    if (is224 != 0 && is224 != 1) return MBEDTLS_ERR_SHA256_BAD_INPUT_DATA;
    ctx->private_total[0] = ctx->private_total[1] = 0;
    memcpy(ctx->private_state, is224 ? h224 : h256, sizeof(h256));
    ctx->private_is224 = is224;
    return 0;
}

int mbedtls_internal_sha256_process(mbedtls_sha256_context *ctx, const unsigned char data[64])
{
    uint32_t w[64], s[8];
    for (int i = 0; i < 16; i++) {
        w[i] = (uint32_t)data[4 * i] << 24 | (uint32_t)data[4 * i + 1] << 16 | (uint32_t)data[4 * i + 2] << 8 | data[4 * i + 3];
    }
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROTR(w[i - 15], 7) ^ ROTR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROTR(w[i - 2], 17) ^ ROTR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    memcpy(s, ctx->private_state, sizeof(s));
    for (int i = 0; i < 64; i++) {
        uint32_t S1 = ROTR(s[4], 6) ^ ROTR(s[4], 11) ^ ROTR(s[4], 25);
        uint32_t ch = (s[4] & s[5]) ^ (~s[4] & s[6]);
        uint32_t t1 = s[7] + S1 + ch + K[i] + w[i];
        uint32_t S0 = ROTR(s[0], 2) ^ ROTR(s[0], 13) ^ ROTR(s[0], 22);
        uint32_t maj = (s[0] & s[1]) ^ (s[0] & s[2]) ^ (s[1] & s[2]);
        uint32_t t2 = S0 + maj;
        s[7] = s[6];
        s[6] = s[5];
        s[5] = s[4];
        s[4] = s[3] + t1;
        s[3] = s[2];
        s[2] = s[1];
        s[1] = s[0];
        s[0] = t1 + t2;
    }
    for (int i = 0; i < 8; i++) ctx->private_state[i] += s[i];
    return 0;
}

int mbedtls_sha256_update(mbedtls_sha256_context *ctx, const unsigned char *input, size_t ilen)
{
    if (ilen == 0) return 0;
    size_t left = ctx->private_total[0] & 0x3F;
    size_t fill = 64 - left;
    ctx->private_total[0] += (uint32_t)ilen;
    if (ctx->private_total[0] < (uint32_t)ilen) ctx->private_total[1]++;
    if (left && ilen >= fill) {
        memcpy(ctx->private_buffer + left, input, fill);
        mbedtls_internal_sha256_process(ctx, ctx->private_buffer);
        input += fill;
        ilen -= fill;
        left = 0;
    }
    while (ilen >= 64) {
        mbedtls_internal_sha256_process(ctx, input);
        input += 64;
        ilen -= 64;
    }
    if (ilen > 0) memcpy(ctx->private_buffer + left, input, ilen);
    return 0;
}

int mbedtls_sha256_finish(mbedtls_sha256_context *ctx, unsigned char *output)
{
    uint32_t used = ctx->private_total[0] & 0x3F;
    ctx->private_buffer[used++] = 0x80;
    if (used <= 56) {
        memset(ctx->private_buffer + used, 0, 56 - used);
    } else {
        memset(ctx->private_buffer + used, 0, 64 - used);
        mbedtls_internal_sha256_process(ctx, ctx->private_buffer);
        memset(ctx->private_buffer, 0, 56);
    }
    uint32_t high = (ctx->private_total[0] >> 29) | (ctx->private_total[1] << 3);
    uint32_t low = ctx->private_total[0] << 3;
    for (int i = 0; i < 4; i++) {
        ctx->private_buffer[56 + i] = (unsigned char)(high >> (24 - 8 * i));
        ctx->private_buffer[60 + i] = (unsigned char)(low >> (24 - 8 * i));
    }
    mbedtls_internal_sha256_process(ctx, ctx->private_buffer);
    int words = ctx->private_is224 ? 7 : 8;
    for (int i = 0; i < words; i++) {
        output[4 * i] = (unsigned char)(ctx->private_state[i] >> 24);
        output[4 * i + 1] = (unsigned char)(ctx->private_state[i] >> 16);
        output[4 * i + 2] = (unsigned char)(ctx->private_state[i] >> 8);
        output[4 * i + 3] = (unsigned char)(ctx->private_state[i]);
    }
    return 0;
}

int mbedtls_sha256(const unsigned char *input, size_t ilen, unsigned char *output, int is224)
{
    mbedtls_sha256_context ctx;
    mbedtls_sha256_init(&ctx);
    int ret = mbedtls_sha256_starts(&ctx, is224);
    if (ret == 0) ret = mbedtls_sha256_update(&ctx, input, ilen);
    if (ret == 0) ret = mbedtls_sha256_finish(&ctx, output);
    mbedtls_sha256_free(&ctx);
    return ret;
}
