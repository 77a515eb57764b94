/* chat_input.h: how `phi3c chat` reads the user's messages: line editing and history through
 * libedit when stdin is a terminal, plain reads when it is piped, and multi-line messages between
 * two `"""` as ollama reads them. */
#ifndef P3_CHAT_INPUT_H
#define P3_CHAT_INPUT_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct chat_input {
    bool tty; /* stdin is a terminal: libedit with a prompt */
    const char *prompt, *more_prompt;
    char *buf; /* getline's buffer (piped input) */
    size_t cap;
    volatile sig_atomic_t *interrupted; /* set by the SIGINT handler */
} chat_input;

typedef enum chat_read {
    CHAT_READ_MESSAGE,     /* *msg is a message (malloc'd; may start with '/') */
    CHAT_READ_END,         /* Ctrl-D or end of input */
    CHAT_READ_INTERRUPTED, /* Ctrl-C while reading: nothing read */
} chat_read;

void chat_input_init(chat_input *in, volatile sig_atomic_t *interrupted);
void chat_input_free(chat_input *in);
/* Reads one message: one line, or the lines from one starting with `"""` to one ending with it
 * (the quotes dropped, the newlines kept). Empty lines are skipped; trailing '\r' dropped. */
chat_read chat_input_read(chat_input *in, char **msg);

#endif /* P3_CHAT_INPUT_H */
