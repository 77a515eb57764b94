/* npu_graph_ext.h: phi3c's own minimal declarations of the Level Zero graph extension ABI (the
 * Intel NPU's way to run graphs), written from the documentation in ze_graph_ext.h of
 * intel/level-zero-npu-extensions (MIT), extension version 1.8: only the structures and the
 * function-table prefix phi3c uses; entries it does not call are kept as untyped pointers so the
 * offsets of the table stay those of the ABI. Tables of later versions (up to 1.18) only append
 * entries, so a driver offering a newer version serves this prefix unchanged. */
#ifndef P3_NPU_GRAPH_EXT_H
#define P3_NPU_GRAPH_EXT_H

#include <level_zero/ze_api.h>
#include <stddef.h>

#define P3_ZE_GRAPH_EXT_NAME        "ZE_extension_graph" /* drivers list e.g. ZE_extension_graph_1_8 */
#define P3_ZE_GRAPH_EXT_MIN_VERSION ZE_MAKE_VERSION(1, 8)

typedef struct p3_ze_graph_s *p3_ze_graph_handle_t; /* ze_graph_handle_t */

enum { /* ze_structure_type_graph_ext_t */
       P3_ZE_STYPE_DEVICE_GRAPH_PROPERTIES = 0x1,
       P3_ZE_STYPE_GRAPH_ARGUMENT_PROPERTIES = 0x4,
       P3_ZE_STYPE_GRAPH_DESC_2 = 0xE,
       P3_ZE_STYPE_GRAPH_PROPERTIES_2 = 0x10
};

enum {
    P3_ZE_GRAPH_FORMAT_NGRAPH_LITE = 0x2
}; /* ze_graph_format_t: IR for the compiler-in-driver */

enum { /* ze_graph_init_stage_t */
       P3_ZE_GRAPH_STAGE_COMMAND_LIST_INITIALIZE = 0x1,
       P3_ZE_GRAPH_STAGE_INITIALIZE = 0x2
};

enum { P3_ZE_GRAPH_ARGUMENT_TYPE_INPUT = 0, P3_ZE_GRAPH_ARGUMENT_TYPE_OUTPUT = 1 };

/* ze_device_graph_properties_t (enums are 32-bit; the compiler version is two u16). */
typedef struct p3_ze_device_graph_properties {
    uint32_t stype;
    void *pNext;
    uint32_t graphExtensionVersion;
    uint16_t compilerMajor, compilerMinor; /* what NGRAPH_LITE's header must carry */
    uint32_t graphFormatsSupported;
    uint32_t maxOVOpsetVersionSupported;
} p3_ze_device_graph_properties;

/* ze_graph_desc_2_t */
typedef struct p3_ze_graph_desc_2 {
    uint32_t stype;
    void *pNext;
    uint32_t format;
    size_t inputSize;
    const uint8_t *pInput;
    const char *pBuildFlags; /* --inputs_precisions="name:FP16 ..." --inputs_layouts=... */
    uint32_t flags;
} p3_ze_graph_desc_2;

/* ze_graph_properties_2_t */
typedef struct p3_ze_graph_properties_2 {
    uint32_t stype;
    void *pNext;
    uint32_t numGraphArgs;
    uint32_t initStageRequired; /* P3_ZE_GRAPH_STAGE_* bits */
} p3_ze_graph_properties_2;

/* ze_graph_argument_properties_t */
typedef struct p3_ze_graph_argument_properties {
    uint32_t stype;
    void *pNext;
    char name[256];
    uint32_t type; /* P3_ZE_GRAPH_ARGUMENT_TYPE_* */
    uint32_t dims[5];
    uint32_t networkPrecision, networkLayout, devicePrecision, deviceLayout;
} p3_ze_graph_argument_properties;

/* ze_graph_dditable_ext_t up to version 1.8, in ABI order. */
typedef struct p3_ze_graph_table {
    void *pfnCreate; /* 1.0 */
    ze_result_t(ZE_APICALL *pfnDestroy)(p3_ze_graph_handle_t);
    void *pfnGetProperties;
    ze_result_t(ZE_APICALL *pfnGetArgumentProperties)(p3_ze_graph_handle_t, uint32_t,
                                                      p3_ze_graph_argument_properties *);
    ze_result_t(ZE_APICALL *pfnSetArgumentValue)(p3_ze_graph_handle_t, uint32_t, const void *);
    ze_result_t(ZE_APICALL *pfnAppendGraphInitialize)(ze_command_list_handle_t,
                                                      p3_ze_graph_handle_t, ze_event_handle_t,
                                                      uint32_t, ze_event_handle_t *);
    ze_result_t(ZE_APICALL *pfnAppendGraphExecute)(ze_command_list_handle_t, p3_ze_graph_handle_t,
                                                   void * /* profiling query, optional */,
                                                   ze_event_handle_t, uint32_t,
                                                   ze_event_handle_t *);
    void *pfnGetNativeBinary;
    ze_result_t(ZE_APICALL *pfnDeviceGetGraphProperties)(ze_device_handle_t,
                                                         p3_ze_device_graph_properties *);
    void *pfnGraphGetArgumentMetadata; /* 1.1 */
    void *pfnGetArgumentProperties2;
    void *pfnGetArgumentProperties3; /* 1.2 */
    void *pfnQueryNetworkCreate;     /* 1.3 */
    void *pfnQueryNetworkDestroy;
    void *pfnQueryNetworkGetSupportedLayers;
    ze_result_t(ZE_APICALL *pfnBuildLogGetString)(p3_ze_graph_handle_t, uint32_t *,
                                                  char *); /* 1.4 */
    ze_result_t(ZE_APICALL *pfnCreate2)(ze_context_handle_t, ze_device_handle_t,
                                        const p3_ze_graph_desc_2 *,
                                        p3_ze_graph_handle_t *); /* 1.5 */
    void *pfnQueryNetworkCreate2;
    void *pfnQueryContextMemory;
    void *pfnDeviceGetGraphProperties2; /* 1.6 */
    void *pfnGetNativeBinary2;          /* 1.7 */
    ze_result_t(ZE_APICALL *pfnGetProperties2)(p3_ze_graph_handle_t,
                                               p3_ze_graph_properties_2 *); /* 1.8 */
    ze_result_t(ZE_APICALL *pfnGraphInitialize)(p3_ze_graph_handle_t);
} p3_ze_graph_table;

/* The ABI as ze_graph_ext.h lays it out on LP64 (x86-64 Linux, where the NPU driver runs): the
 * table's entries by their position in its field list, the structures by their fields. */
_Static_assert(offsetof(p3_ze_graph_table, pfnSetArgumentValue) == 4 * sizeof(void *), "table");
_Static_assert(offsetof(p3_ze_graph_table, pfnAppendGraphExecute) == 6 * sizeof(void *), "table");
_Static_assert(offsetof(p3_ze_graph_table, pfnDeviceGetGraphProperties) == 8 * sizeof(void *),
               "table");
_Static_assert(offsetof(p3_ze_graph_table, pfnBuildLogGetString) == 15 * sizeof(void *), "table");
_Static_assert(offsetof(p3_ze_graph_table, pfnCreate2) == 16 * sizeof(void *), "table");
_Static_assert(offsetof(p3_ze_graph_table, pfnGetProperties2) == 21 * sizeof(void *), "table");
_Static_assert(offsetof(p3_ze_graph_table, pfnGraphInitialize) == 22 * sizeof(void *), "table");
#if defined(__LP64__)
_Static_assert(sizeof(p3_ze_device_graph_properties) == 32, "ze_device_graph_properties_t");
_Static_assert(sizeof(p3_ze_graph_desc_2) == 56, "ze_graph_desc_2_t");
_Static_assert(sizeof(p3_ze_graph_properties_2) == 24, "ze_graph_properties_2_t");
_Static_assert(sizeof(p3_ze_graph_argument_properties) == 312, "ze_graph_argument_properties_t");
#endif

#endif /* P3_NPU_GRAPH_EXT_H */
