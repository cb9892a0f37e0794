/* ESP8266 NONOS SDK 3.x: the firmware upgrade API (writing the other user bin). */
#ifndef __UPGRADE_H__
#define __UPGRADE_H__

#include "c_types.h"

#define SPI_FLASH_SEC_SIZE      4096
#define LIMIT_ERASE_SIZE		0x10000

#define USER_BIN1               0x00
#define USER_BIN2               0x01

#define UPGRADE_FLAG_IDLE       0x00
#define UPGRADE_FLAG_START      0x01
#define UPGRADE_FLAG_FINISH     0x02

#define UPGRADE_FW_BIN1         0x00
#define UPGRADE_FW_BIN2         0x01

void system_upgrade_init();
void system_upgrade_deinit();
bool system_upgrade(uint8 *data, uint16 len);

#endif
