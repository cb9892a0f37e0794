/* esp_partition: the partition table at CONFIG_PARTITION_TABLE_OFFSET of the board's flash; reads, writes
 * and erases go to the board's flash model (counted operations, NOR rules, power cuts). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sdkconfig.h"
#include "esp_err.h"
#include "esp_log.h"
#include "esp_partition.h"
#include "esp_flash_partitions.h"
#include "spi_flash_mmap.h"
#include "hil_board.h"

#define MAX_PARTITIONS 95
#define CHUNK (32 * 1024)

static esp_partition_t parts[MAX_PARTITIONS];
static int part_count = -1;

struct esp_partition_iterator_opaque_ {
    esp_partition_type_t type;
    esp_partition_subtype_t subtype;
    const char *label;
    int next;
    const esp_partition_t *info;
};

static esp_err_t flash_call(const char *op, uint32_t addr, const void *data, size_t len, void *out)
{
    hil_msg_t m;
    hil_reply_t r;
    hil_msg_init(&m, op);
    hil_put_int(&m, addr);
    if (data) {
        hil_put_bytes(&m, data, len);
    } else {
        hil_put_int(&m, (int64_t)len);
    }
    esp_err_t err = hil_call(&m, &r);
    if (err == ESP_OK && out) {
        size_t n;
        const uint8_t *p = hil_bytes(&r, 0, &n);
        if (p && n == len) {
            memcpy(out, p, n);
        } else {
            err = ESP_ERR_FLASH_OP_FAIL;
        }
    }
    hil_reply_free(&r);
    return err;
}

esp_err_t hil_flash_read(uint32_t addr, void *dst, size_t size)
{
    uint8_t *p = dst;
    while (size) {
        size_t n = size > CHUNK ? CHUNK : size;
        esp_err_t err = flash_call("flash_read", addr, NULL, n, p);
        if (err != ESP_OK) return err;
        addr += (uint32_t)n;
        p += n;
        size -= n;
    }
    return ESP_OK;
}

esp_err_t hil_flash_write(uint32_t addr, const void *src, size_t size)
{
    const uint8_t *p = src;
    while (size) {
        size_t n = size > CHUNK ? CHUNK : size;
        esp_err_t err = flash_call("flash_write", addr, p, n, NULL);
        if (err != ESP_OK) return err;
        addr += (uint32_t)n;
        p += n;
        size -= n;
    }
    return ESP_OK;
}

esp_err_t hil_flash_erase(uint32_t addr, size_t size)
{
    return flash_call("flash_erase", addr, NULL, size, NULL);
}

static void load_table(void)
{
    if (part_count >= 0) return;
    part_count = 0;
    static uint8_t table[ESP_PARTITION_TABLE_MAX_LEN];
    if (hil_flash_read(CONFIG_PARTITION_TABLE_OFFSET, table, sizeof(table)) != ESP_OK) return;
    for (size_t off = 0; off + sizeof(esp_partition_info_t) <= sizeof(table) && part_count < MAX_PARTITIONS;
         off += sizeof(esp_partition_info_t)) {
        esp_partition_info_t e;
        memcpy(&e, table + off, sizeof(e));
        if (e.magic == ESP_PARTITION_MAGIC_MD5) continue;
        if (e.magic != ESP_PARTITION_MAGIC) break;
        esp_partition_t *p = &parts[part_count++];
        memset(p, 0, sizeof(*p));
        p->type = (esp_partition_type_t)e.type;
        p->subtype = (esp_partition_subtype_t)e.subtype;
        p->address = e.pos.offset;
        p->size = e.pos.size;
        p->erase_size = SPI_FLASH_SEC_SIZE;
        memcpy(p->label, e.label, 16);
        p->label[16] = 0;
        p->encrypted = (e.flags & PART_FLAG_ENCRYPTED) != 0;
        p->readonly = (e.flags & PART_FLAG_READONLY) != 0;
    }
}

int hil_partition_count(void)
{
    load_table();
    return part_count;
}

const esp_partition_t *hil_partition_at(int i) { load_table(); return i < part_count ? &parts[i] : NULL; }

const esp_partition_t *hil_partition_by_address(uint32_t addr)
{
    load_table();
    for (int i = 0; i < part_count; i++) {
        if (parts[i].address == addr) return &parts[i];
    }
    return NULL;
}

static bool matches(const esp_partition_t *p, esp_partition_type_t type, esp_partition_subtype_t subtype, const char *label)
{
    if (type != ESP_PARTITION_TYPE_ANY && p->type != type) return false;
    if (subtype != ESP_PARTITION_SUBTYPE_ANY && p->subtype != subtype) return false;
    if (label && strcmp(label, p->label) != 0) return false;
    return true;
}

static esp_partition_iterator_t advance(esp_partition_iterator_t it)
{
    for (int i = it->next; i < part_count; i++) {
        if (matches(&parts[i], it->type, it->subtype, it->label)) {
            it->info = &parts[i];
            it->next = i + 1;
            return it;
        }
    }
    free(it);
    return NULL;
}

esp_partition_iterator_t esp_partition_find(esp_partition_type_t type, esp_partition_subtype_t subtype, const char *label)
{
    load_table();
    if (type == ESP_PARTITION_TYPE_ANY && subtype != ESP_PARTITION_SUBTYPE_ANY) return NULL;
    esp_partition_iterator_t it = calloc(1, sizeof(*it));
    if (!it) return NULL;
    it->type = type;
    it->subtype = subtype;
    it->label = label;
    return advance(it);
}

const esp_partition_t *esp_partition_find_first(esp_partition_type_t type, esp_partition_subtype_t subtype, const char *label)
{
    esp_partition_iterator_t it = esp_partition_find(type, subtype, label);
    if (it == NULL) return NULL;
    const esp_partition_t *p = esp_partition_get(it);
    esp_partition_iterator_release(it);
    return p;
}

const esp_partition_t *esp_partition_get(esp_partition_iterator_t iterator)
{
    assert(iterator != NULL);
    return iterator->info;
}

esp_partition_iterator_t esp_partition_next(esp_partition_iterator_t iterator)
{
    assert(iterator != NULL);
    return advance(iterator);
}

void esp_partition_iterator_release(esp_partition_iterator_t iterator) { free(iterator); }

const esp_partition_t *esp_partition_verify(const esp_partition_t *partition)
{
    assert(partition != NULL);
    load_table();
    for (int i = 0; i < part_count; i++) {
        const esp_partition_t *p = &parts[i];
        if (p->type == partition->type && p->subtype == partition->subtype && p->address == partition->address &&
            p->size == partition->size && strncmp(p->label, partition->label, sizeof(p->label)) == 0) {
            return p;
        }
    }
    return NULL;
}

esp_err_t esp_partition_read(const esp_partition_t *partition, size_t src_offset, void *dst, size_t size)
{
    assert(partition != NULL);
    if (src_offset > partition->size) return ESP_ERR_INVALID_ARG;
    if (src_offset + size > partition->size) return ESP_ERR_INVALID_SIZE;
    return hil_flash_read(partition->address + (uint32_t)src_offset, dst, size);
}

esp_err_t esp_partition_read_raw(const esp_partition_t *partition, size_t src_offset, void *dst, size_t size)
{
    return esp_partition_read(partition, src_offset, dst, size);
}

esp_err_t esp_partition_write(const esp_partition_t *partition, size_t dst_offset, const void *src, size_t size)
{
    assert(partition != NULL);
    if (partition->readonly) return ESP_ERR_NOT_ALLOWED;
    if (dst_offset > partition->size) return ESP_ERR_INVALID_ARG;
    if (dst_offset + size > partition->size) return ESP_ERR_INVALID_SIZE;
    return hil_flash_write(partition->address + (uint32_t)dst_offset, src, size);
}

esp_err_t esp_partition_write_raw(const esp_partition_t *partition, size_t dst_offset, const void *src, size_t size)
{
    return esp_partition_write(partition, dst_offset, src, size);
}

esp_err_t esp_partition_erase_range(const esp_partition_t *partition, size_t offset, size_t size)
{
    assert(partition != NULL);
    if (partition->readonly) return ESP_ERR_NOT_ALLOWED;
    if (offset > partition->size) return ESP_ERR_INVALID_ARG;
    if (offset + size > partition->size) return ESP_ERR_INVALID_SIZE;
    if (size % partition->erase_size != 0) return ESP_ERR_INVALID_SIZE;
    if (offset % partition->erase_size != 0) return ESP_ERR_INVALID_ARG;
    if (size == 0) return ESP_OK;
    return hil_flash_erase(partition->address + (uint32_t)offset, size);
}

bool esp_partition_check_identity(const esp_partition_t *partition_1, const esp_partition_t *partition_2)
{
    return partition_1 && partition_2 && partition_1->address == partition_2->address &&
           partition_1->size == partition_2->size;
}
