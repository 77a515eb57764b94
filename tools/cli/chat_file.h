/* chat_file.h: `phi3c chat`'s /save and /load: a conversation as a JSON file
 * {"messages": [{"role": "system"|"user"|"assistant", "content": "..."}, ...]}, the shape of the
 * OpenAI-style chat APIs, so a saved chat can be read by other tools and written by hand. */
#ifndef P3_CHAT_FILE_H
#define P3_CHAT_FILE_H

#include "p3.h"

/* Writes the messages to path (through a temp file and a rename). */
p3_status chat_file_save(const char *path, const phi3c_chat_message *msgs, size_t n, p3_error *err);
/* Reads a file written by chat_file_save (or a bare array of messages) into a new array whose
 * contents are malloc'd copies (roles point at string constants); free each content and the
 * array. */
p3_status chat_file_load(const char *path, phi3c_chat_message **msgs, size_t *n, p3_error *err);

#endif /* P3_CHAT_FILE_H */
