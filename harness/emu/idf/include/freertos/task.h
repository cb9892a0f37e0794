/* freertos/task.h: task delay and tick count (one task: app_main; delays sleep). */
#pragma once

#include "FreeRTOS.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef void * TaskHandle_t;
typedef void (*TaskFunction_t)( void * );

void vTaskDelay( const TickType_t xTicksToDelay );
void vTaskDelayUntil( TickType_t * const pxPreviousWakeTime, const TickType_t xTimeIncrement );
TickType_t xTaskGetTickCount( void );
TaskHandle_t xTaskGetCurrentTaskHandle( void );
char *pcTaskGetName( TaskHandle_t xTaskToQuery );
UBaseType_t uxTaskGetStackHighWaterMark( TaskHandle_t xTask );
void vTaskDelete( TaskHandle_t xTaskToDelete );

#ifdef __cplusplus
}
#endif
