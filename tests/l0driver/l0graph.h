/* l0graph.h: the test driver's mock of the Intel NPU graph extension (l0graph.c), enabled with
 * P3_L0DRV_GRAPH_EXT=1, and the one hook it needs from the driver (l0driver.c). */
#ifndef P3_L0GRAPH_H
#define P3_L0GRAPH_H

#include <level_zero/ze_api.h>

ze_result_t l0graph_ext_props(uint32_t *count, ze_driver_extension_properties_t *props);
ze_result_t l0graph_ext_address(const char *name, void **out);

/* l0driver.c: appends a host call that runs, in order, when the list executes (arg is copied,
 * at most 64 bytes). */
ze_result_t l0drv_append_host(ze_command_list_handle_t l, void (*fn)(const void *arg),
                              const void *arg, size_t size);

#endif /* P3_L0GRAPH_H */
