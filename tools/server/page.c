/* page.c: the chat page (tools/server/chat.html) embedded in the binary as it is, by the
 * assembler's .incbin: one static file, no generator step. The Makefile rebuilds this object
 * when the page changes. */
#include "server.h"

__asm__(".section .rodata\n"
        ".balign 16\n"
        ".globl p3_chat_page_start\n"
        ".hidden p3_chat_page_start\n"
        ".globl p3_chat_page_end\n"
        ".hidden p3_chat_page_end\n"
        "p3_chat_page_start:\n"
        ".incbin \"tools/server/chat.html\"\n"
        "p3_chat_page_end:\n"
        ".byte 0\n"
        ".previous\n");

extern const char p3_chat_page_start[] __attribute__((visibility("hidden")));
extern const char p3_chat_page_end[] __attribute__((visibility("hidden")));

const char *chat_page(size_t *len) {
    *len = (size_t)(p3_chat_page_end - p3_chat_page_start);
    return p3_chat_page_start;
}
