/* ESP8266 NONOS SDK 3.x: heap (os_malloc and friends go to the SDK's allocator, counted by the virtual board). */
#ifndef __MEM_H__
#define __MEM_H__

#include <stddef.h>
#include "c_types.h"

void *pvPortMalloc (size_t sz, const char *, unsigned, bool);
void vPortFree (void *p, const char *, unsigned);
void *pvPortZalloc (size_t sz, const char *, unsigned);
void *pvPortRealloc (void *p, size_t n, const char *, unsigned);
void* pvPortCalloc(size_t count,size_t size,const char *,unsigned);
void* pvPortCallocIram(size_t count,size_t size,const char *,unsigned);
void *pvPortZallocIram (size_t sz, const char *, unsigned);

#define MEMLEAK_DEBUG_ENABLE    0
#define os_free(s)        vPortFree(s, "", __LINE__)
#define os_malloc_iram(s) pvPortMalloc(s, "", __LINE__,true)
#define os_malloc_dram(s) pvPortMalloc(s, "", __LINE__,false)
#define os_calloc_iram(l, s)   pvPortCallocIram(l, s, "", __LINE__)
#define os_calloc_dram(l, s)   pvPortCalloc(l, s, "", __LINE__)
#define os_realloc(p, s)  pvPortRealloc(p, s, "", __LINE__)
#define os_zalloc_iram(s)      pvPortZallocIram(s, "", __LINE__)
#define os_zalloc_dram(s)      pvPortZalloc(s, "", __LINE__)

#ifdef MEM_DEFAULT_USE_DRAM
#define os_malloc           os_malloc_dram
#define os_zalloc           os_zalloc_dram
#define os_calloc           os_calloc_dram
#else
#define os_malloc           os_malloc_iram
#define os_zalloc           os_zalloc_iram
#define os_calloc           os_calloc_iram
#endif

#endif
