/* Does not compile (an undeclared function): the host build must say so, naming this file. */
#include "esp_log.h"

void app_main(void)
{
    ESP_LOGI("broken", "%d", esp_no_such_function());
}
