/* Build-time settings of the FOTA client (the NONOS SDK's osapi.h includes this file). */
#ifndef USER_CONFIG_H
#define USER_CONFIG_H

/* The access point the station joins (override with -DWIFI_SSID=... -DWIFI_PASS=... or edit here). */
#ifndef WIFI_SSID
#define WIFI_SSID "hil-bench"
#endif
#ifndef WIFI_PASS
#define WIFI_PASS ""
#endif

/* This build's version (the Makefile passes APP_VERSION) and the project name in the version record. */
#ifndef APP_VERSION
#define APP_VERSION "1.0.0"
#endif
#ifndef APP_PROJECT
#define APP_PROJECT "esp8266_sdk_fota"
#endif

/* The slot this build is linked for: 1 (user1, irom0 at 0x40201010) or 2 (user2); the Makefile passes APP. */
#ifndef FOTA_LINKED_SLOT
#define FOTA_LINKED_SLOT 1
#endif

/* Console speed: NONOS apps start at the ROM's 74880 baud (26 MHz crystal); the client switches UART0 to this. */
#define FOTA_CONSOLE_BAUD 115200

#endif
