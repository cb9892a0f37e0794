/* Settings of the upgrade API probe (a NONOS SDK app the virtual ESP8266's tests run). */
#ifndef USER_CONFIG_H
#define USER_CONFIG_H
#ifndef APP_VERSION
#define APP_VERSION "0.0.1"
#endif
#endif
