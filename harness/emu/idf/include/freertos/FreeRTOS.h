/* freertos/FreeRTOS.h: the FreeRTOS types and tick macros ESP-IDF v5.x apps use (virtual ESP32). */
#pragma once

#include <stdint.h>
#include <stddef.h>
#include <stdbool.h>
#include "sdkconfig.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef int BaseType_t;
typedef unsigned int UBaseType_t;
typedef uint32_t TickType_t;
typedef uint32_t StackType_t;

#define portMAX_DELAY ( TickType_t ) 0xffffffffUL
#define portTICK_PERIOD_MS ( ( TickType_t ) 1000 / configTICK_RATE_HZ )
#define portTICK_RATE_MS portTICK_PERIOD_MS
#define configTICK_RATE_HZ CONFIG_FREERTOS_HZ
#define configMINIMAL_STACK_SIZE 768
#define configMAX_PRIORITIES 25
#define portNUM_PROCESSORS 2
#define tskNO_AFFINITY 0x7FFFFFFF

#define pdFALSE ( ( BaseType_t ) 0 )
#define pdTRUE ( ( BaseType_t ) 1 )
#define pdPASS ( pdTRUE )
#define pdFAIL ( pdFALSE )

#ifndef pdMS_TO_TICKS
#define pdMS_TO_TICKS( xTimeInMs ) ( ( TickType_t ) ( ( ( TickType_t ) ( xTimeInMs ) * ( TickType_t ) configTICK_RATE_HZ ) / ( TickType_t ) 1000U ) )
#endif
#ifndef pdTICKS_TO_MS
#define pdTICKS_TO_MS( xTicks ) ( ( TickType_t ) ( ( uint64_t ) ( xTicks ) * 1000 / configTICK_RATE_HZ ) )
#endif

#ifdef __cplusplus
}
#endif
