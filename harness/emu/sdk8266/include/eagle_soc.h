/* ESP8266 NONOS SDK 3.x: register definitions. The virtual ESP8266 has no registers an app may touch:
 * this header is empty on purpose (code that pokes registers does not build for it). */
#ifndef _EAGLE_SOC_H_
#define _EAGLE_SOC_H_
#endif
