/* esp_idf_version.h: the ESP-IDF release this API set stands for. */
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

#define ESP_IDF_VERSION_MAJOR   5
#define ESP_IDF_VERSION_MINOR   5
#define ESP_IDF_VERSION_PATCH   1

#define ESP_IDF_VERSION_VAL(major, minor, patch) ((major << 16) | (minor << 8) | (patch))

#define ESP_IDF_VERSION  ESP_IDF_VERSION_VAL(ESP_IDF_VERSION_MAJOR, \
                                             ESP_IDF_VERSION_MINOR, \
                                             ESP_IDF_VERSION_PATCH)

#ifndef __ASSEMBLER__
const char* esp_get_idf_version(void);
#endif

#ifdef __cplusplus
}
#endif
